"""Changing a user's address: ``POST /change-email`` asks, a link mailed to
the new address confirms (``/change-email/confirm``), and a link mailed to
the old one cancels (``/change-email/cancel``), before or after the
confirmation, for ``TOKENAUTH_CHANGE_EMAIL_EXPIRES``.

The request answers the same ``202`` whether or not the new address
belongs to another account: the lookup runs after the response
(:func:`._outbox.defer`), and the new address gets either the confirm link
or, if another account has it, a mail telling its owner so (no link).  The
old address gets the same notice with its cancel link either way, at
request time: its owner learns of the request at once, whatever comes of
it.

A confirm link is bound (a keyed hash in the token's ``binding``) to the
account's address when it was asked and to the user's password
fingerprint (:mod:`._identity`): a change of either, by any route, kills
it.  Confirming keeps the user's sessions (the user asked, with the
password; the new address is proved by the link); cancelling ends every
session and access token of the user, as whoever asked knew the password.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from typing import Any

from flask import Response, current_app, jsonify

from .. import _identity as bound_identity
from .. import _linktokens as links
from .. import _outbox, signals
from .._headers import clear_refresh_cookie
from .._mail import duration_text, send_mail
from .._ratelimit import LOGIN, limited, mail_allowed
from .._sessions import announce_revoked, revoke_in
from .._state import TokenAuthState, get_state
from .._verification import announce, mark_verified
from ..decorators import login_required
from ..errors import (
    EmailTaken,
    InvalidPassword,
    LinkInvalid,
    UserNotFound,
    ValidationError,
)
from ..globals import _get_user as load_current_user
from ..globals import current_claims
from ..openapi._ops_mail import CHANGE_EMAIL, LINK_TOKEN
from ._common import accepted, allow, check_current_password, mail_flow

_BINDING_CONTEXT = b"flask_tokenauth change-email binding\x00"
#: Tokens mailed to the address the account had: they die when it changes
#: (a sign-in or reset link must not work from a mailbox that is no longer
#: the account's).  Cancel links are not among them: see :func:`cancel`.
_MAILED_TO_THE_ADDRESS = [links.VERIFY, links.RESET, links.LOGIN]


def _binding(state: TokenAuthState, old: str | None, identity: str | None) -> str:
    """What a confirm link is bound to: the account's address and password
    fingerprint when the change was asked, as a keyed hash (64 hex: the
    column's size, and no address in clear twice)."""
    message = (
        _BINDING_CONTEXT + (identity or "").encode() + b"\x00" + (old or "").encode()
    )
    return hmac.new(state.settings.refresh_secret, message, hashlib.sha256).hexdigest()


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


@mail_flow("change_email_enabled")
# Checks the password: limited like a login, as /password is.
@limited(LOGIN)
@login_required
def request_change() -> Response:
    """``{"newEmail", "password"}``: mail a confirm link to the new address
    and a notice with a cancel link to the current one; ``202`` whatever
    the new address (see the module's docstring).

    The password is checked as ``/password`` checks it, on the same
    per-account budget of wrong passwords (:mod:`._lockout`).
    """
    allow("POST")
    state = get_state()
    store = state.user_store
    body = CHANGE_EMAIL.read()
    password: str = body["password"]
    if not password:
        raise InvalidPassword("Password is required")
    new = store.normalize_email(body["newEmail"])
    load_current_user()
    sub = str(current_claims["sub"])
    user = store.get(sub)
    if user is None or not store.is_active(user):
        raise UserNotFound()
    attempt = check_current_password(state, user, password)
    old = store.email_of(user)
    if new == old:
        raise ValidationError("'newEmail' is the account's address already")
    # Read from the database, not from the user object (an ORM session may
    # hold a hash that was just rewritten).
    binding = _binding(state, old, bound_identity.read(state, sub))
    # Both mailboxes' limits: the confirm link never goes without the
    # notice that can cancel it.  A spent limit answers as usual.
    if mail_allowed(links.CHANGE, new) and (
        old is None or mail_allowed(links.CANCEL, old)
    ):
        _outbox.defer(_send_links, sub, old, new, binding)
    response = accepted("If the address can be used, a confirmation link was sent")
    attempt.trust_device(response)
    return response


def _send_links(sub: str, old: str | None, new: str, binding: str) -> None:
    """After the response: look the new address up, make the links, mail
    them (the confirm link, or the "already has an account" notice, to the
    new address; the notice with the cancel link to the old one)."""
    state = get_state()
    settings = state.settings
    store = state.user_store
    owner = store.find_by_email(new)
    taken = owner is not None and store.sub_of(owner) != sub
    lifetime = settings.change_email_expires
    with state.db.begin() as conn:
        confirm = None
        if taken:
            # The newest request is the one that counts, taken or not.
            links.revoke(conn, sub, [links.CHANGE])
        else:
            confirm = links.issue(
                settings,
                conn,
                links.CHANGE,
                sub,
                new,
                lifetime,
                binding=binding,
                supersede=True,
            )
        cancel = None
        if old is not None:
            # Not superseding: a later request (made by whoever holds the
            # session) must not kill the cancel link already in the
            # owner's mailbox.
            related = None if confirm is None else confirm.id
            cancel = links.issue(
                settings, conn, links.CANCEL, sub, old, lifetime, related_id=related
            )
    context = {"valid_for": duration_text(lifetime)}
    user_id = store.user_id(sub)
    if confirm is None:
        send_mail("change_email_taken", new, **context)
        signals.email_change_taken.send(
            _app(), user_id=user_id, old_email=old, new_email=new
        )
    else:
        url = links.link(settings, settings.change_email_confirm_url, confirm.token)
        send_mail("change_email_confirm", new, link=url, **context)
        signals.email_change_requested.send(
            _app(), user_id=user_id, old_email=old, new_email=new
        )
    if cancel is not None and old is not None:
        url = links.link(settings, settings.change_email_cancel_url, cancel.token)
        send_mail("change_email_notice", old, link=url, **context)


def _token() -> str:
    token: str = LINK_TOKEN.read()["token"]
    return token


@mail_flow("change_email_enabled")
def confirm() -> Response:
    """``{"token"}`` from the link mailed to the new address: the account's
    address becomes it, verified.  ``LINK_INVALID`` if the account's
    address or password changed since the change was asked (or the link is
    spent, superseded or not one); ``409 EMAIL_TAKEN`` if another account
    took the address meanwhile (nothing is changed: the link still works
    if it is freed within its lifetime)."""
    allow("POST")
    state = get_state()
    settings = state.settings
    store = state.user_store
    token = _token()
    with state.db.begin() as conn:
        spent = links.spend(settings, conn, token, links.CHANGE)
        user = store.get(spent.user_id)
        if user is None or not store.is_active(user):
            raise LinkInvalid()
        old = store.email_of(user)
        expected = _binding(state, old, bound_identity.read(state, spent.user_id))
        if not hmac.compare_digest(expected.encode(), (spent.binding or "").encode()):
            raise LinkInvalid()
        owner = store.find_by_email(spent.email)
        if owner is not None and store.sub_of(owner) != spent.user_id:
            raise EmailTaken()
        # Raises EmailTaken too if another account takes it in between (the
        # unique index): rolled back whole, the link not spent.
        store.set_email(user, spent.email, conn)
        links.revoke(conn, spent.user_id, _MAILED_TO_THE_ADDRESS)
        mark_verified(state, conn, user, spent.email)
    user_id = store.user_id(spent.user_id)
    signals.email_changed.send(
        _app(), user_id=user_id, old_email=old, new_email=spent.email
    )
    announce(state, user, spent.email)
    return jsonify(message="Email address changed", email=spent.email)


@mail_flow("change_email_enabled")
def cancel() -> Response:
    """``{"token"}`` from the notice mailed to the old address: the change
    is cancelled and every session and access token of the user ends.

    Before the confirmation, the pending confirm links die.  After it (the
    account's address is no longer the one the notice went to), the old
    address is restored, verified, and the links mailed to the other one
    die.  If another account has the old address by then, the address is
    left as it is (``"restored": false``); the sessions end all the same.
    The cancel links of other requests are left alone: a request made with
    a stolen session must not be able to kill the owner's.
    """
    allow("POST")
    state = get_state()
    settings = state.settings
    store = state.user_store
    token = _token()
    now = datetime.now(timezone.utc)
    restored = False
    with state.db.begin() as conn:
        spent = links.spend(settings, conn, token, links.CANCEL)
        sub = spent.user_id
        # First, before the address is read: a confirmation in flight has
        # its link's row locked, so this waits for it to commit (on
        # PostgreSQL) and the address read next is the one it set, which
        # is then restored.  Read first, a confirmation committing in
        # between would win over the cancel.
        links.revoke(conn, sub, [links.CHANGE], now=now)
        user = store.get(sub)
        if user is None:
            raise LinkInvalid()
        current = store.email_of(user)
        changed = current != spent.email
        if changed:
            owner = store.find_by_email(spent.email)
            if owner is None or store.sub_of(owner) == sub:
                try:
                    store.set_email(user, spent.email, conn)
                    restored = True
                except EmailTaken:
                    pass  # taken in between: as taken before
            if restored:
                current = spent.email
                links.revoke(conn, sub, _MAILED_TO_THE_ADDRESS, now=now)
        revoked = revoke_in(state, conn, sub, cutoff=True, now=now)
    announce_revoked(state, sub, revoked, "email-change-cancelled")
    signals.email_change_cancelled.send(
        _app(), user_id=store.user_id(sub), email=current, restored=restored
    )
    if changed and not restored:
        message = (
            "Address change cancelled and every session ended; the old address"
            " belongs to another account now and could not be restored"
        )
    else:
        message = "Address change cancelled and every session ended"
    response = jsonify(message=message, restored=restored)
    clear_refresh_cookie(response, settings)
    return response
