"""Password reset (see docs/password-reset.md): a one-time link
mailed to an account's address, which sets a new password through the user
store and ends every session and access token of the user.

Built on :mod:`._linktokens` (purpose ``reset``) and :mod:`._mail`; the
views (:mod:`.views.password_reset`) and the CLI (``flask tokenauth users
reset-link``) call this module, no other flow does.

A reset token is *bound* to the user's identity fingerprint when it is
issued (:mod:`._identity`: a keyed HMAC of the stored password hash), and
refused (``LINK_INVALID``) once the stored hash is another: a password
changed by any route since the mail (``/password``, another reset, the
CLI, the host's own form, a rehash at login) kills every reset link sent
before it, as Django's token generator does.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone
from typing import Any

from flask import current_app

from . import _identity as bound_identity
from . import _linktokens, signals
from ._linktokens import RESET, Issued
from ._mail import send_mail
from ._sessions import announce_revoked, revoke_in
from ._state import TokenAuthState
from ._validation import check_password
from ._verification import announce, mark_verified
from .errors import LinkInvalid

#: The ``reason`` of the ``session_revoked`` signal a reset sends.
REVOKED_REASON = "password-reset"


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def issue_link(state: TokenAuthState, user: Any, email: str) -> tuple[Issued, str]:
    """Make a reset token for ``user`` (whose address is ``email``), bound
    to the password hash stored now; the token and its link."""
    store = state.user_store
    settings = state.settings
    sub = store.sub_of(user)
    # Read from the database, not from ``user`` (an ORM object may hold a
    # hash rewritten since it was loaded): the value the reset compares.
    binding = bound_identity.read(state, sub)
    with state.db.begin() as conn:
        issued = _linktokens.issue(
            settings,
            conn,
            RESET,
            sub,
            email,
            settings.reset_password_expires,
            binding=binding,
        )
    return issued, _linktokens.link(settings, settings.reset_password_url, issued.token)


def _minutes(state: TokenAuthState) -> int:
    return max(1, round(state.settings.reset_password_expires.total_seconds() / 60))


def mail_link(state: TokenAuthState, email: str) -> None:
    """The work of ``/forgot-password`` after the response (see
    :func:`._outbox.defer`): look the address up; mail a link to an active
    account's, nothing to anyone else's.  Each outcome is a signal."""
    store = state.user_store
    user = store.find_by_email(email)
    # To the address the account has, never to the one typed: a host's
    # lookup may find a user by another spelling or an alias, and a link
    # is only good for the account's own mailbox (see :func:`reset`).
    address = None if user is None else store.email_of(user)
    if user is None or address is None or not store.is_active(user):
        signals.password_reset_unknown.send(_app(), email=email)
        return
    _, link = issue_link(state, user, address)
    send_mail(
        "reset_password", address, email=address, link=link, minutes=_minutes(state)
    )
    signals.password_reset_requested.send(
        _app(), user_id=store.user_id(store.sub_of(user)), email=address
    )


def _context_words(state: TokenAuthState, user: Any) -> list[str]:
    """The user's own words a new password must not contain: the login and
    the address (as registration checks the login)."""
    store = state.user_store
    words = [store.login_of(user)]
    email = store.email_of(user)
    if email and email not in words:
        words.append(email)
    return words


def reset(state: TokenAuthState, token: object, password: str) -> Any:
    """Spend ``token`` and set ``password`` (checked as at registration),
    end every session and access token of the user, mail a notice; the
    user.

    The order is the point.  Everything is one transaction of ours, in
    which the token is spent with the change.  A store whose users are in
    our database (the built-in one, a host model on our engine) writes the
    password in it too: any failure leaves nothing changed and the link
    still good.  A host model elsewhere is committed by the host's session
    on its own, so the password is written before our first write (SQLite
    allows one writer: a write of ours first would lock the host out), with
    the token's row held (``FOR UPDATE`` on PostgreSQL) so that a second
    request with the same link waits, then finds it spent, rather than
    writing its own password too.  If our transaction then fails (the
    revocation store down: 503), the new password stays, and the link is
    dead all the same (its binding names the old hash), and so are the
    sessions at their next refresh or ``current_user`` (theirs too).

    :raises LinkInvalid: not a live reset token, its user gone, disabled,
        or with another password or address than when it was mailed.
    :raises LinkExpired: a genuine, unused token past its lifetime.
    :raises InvalidPassword: (and subclasses) the new password is refused.
    """
    settings = state.settings
    store = state.user_store
    now = datetime.now(timezone.utc)
    with state.db.begin() as conn:
        found = _linktokens.check(settings, conn, token, RESET, lock=True)
        sub = found.user_id
        user = store.get(sub) if store.is_subject(sub) else None
        # A link in a mailbox that is no longer the account's resets
        # nothing, however the address changed (an address change's
        # confirmation revokes the links it knows of; the host's own form,
        # or a mail racing it, leaves one behind).
        if (
            user is None
            or not store.is_active(user)
            or store.email_of(user) != found.email
        ):
            raise LinkInvalid()
        if found.binding is not None:
            current = bound_identity.read(state, sub) or ""
            if not hmac.compare_digest(found.binding, current):
                raise LinkInvalid()
        check_password(password, settings, _context_words(state, user))
        store.set_password(user, password, conn)
        # Following the link proved the mailbox (still the account's, see
        # above): the address is verified.
        verified = not store.is_email_verified(user)
        if verified:
            mark_verified(state, conn, user, found.email)
        _linktokens.spend(settings, conn, token, RESET)
        # The user's other reset links: dead by their binding already, and
        # marked spent, so that they read as what they are.
        _linktokens.revoke(conn, sub, [RESET], now=now)
        revoked = revoke_in(state, conn, sub, cutoff=True, now=now)
    announce_revoked(state, sub, revoked, REVOKED_REASON)
    if verified:
        announce(state, user, found.email)
    send_mail("password_changed_notice", found.email, email=found.email, when=now)
    signals.password_reset.send(_app(), user_id=store.user_id(sub))
    return user
