"""Verified addresses: recording one (shared by every flow that proves it:
the verification link, a password reset or an email sign-in followed from
the mailbox, an address change confirmed from the new address, and the
CLI, so that none reaches into another's module), mailing the verification
link, and the ``email_verified`` claim.

The store records it (its column, or ``tokenauth_email_verifications``);
the user's live sessions learn it too (``tokenauth_sessions.email_verified``),
so that the tokens their next refresh issues carry ``email_verified: true``
without a query per refresh: the rotation reads the session row anyway.

While ``TOKENAUTH_EMAIL_VERIFICATION`` is ``off`` none of this runs at a
login or a refresh: no claim, no column written, tokens as they always were.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from flask import Response, current_app, jsonify
from sqlalchemy import Connection, Table, update

from . import _linktokens, signals
from ._mail import duration_text, send_mail
from ._refresh_results import Rotation
from ._state import TokenAuthState, get_state
from .globals import _get_user
from .models import Session

_sessions = cast(Table, Session.__table__)

#: ``TOKENAUTH_EMAIL_VERIFICATION`` values.
OFF = "off"
OPTIONAL = "optional"
REQUIRED = "required"
#: The mail's templates: ``tokenauth/mail/verify_email.*``.
TEMPLATE = "verify_email"


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def is_on(state: TokenAuthState) -> bool:
    """Whether verification is ``optional`` or ``required``."""
    return state.settings.email_verification != OFF


def is_required(state: TokenAuthState) -> bool:
    return state.settings.email_verification == REQUIRED


# -- The claim ---------------------------------------------------------------


def claim_of(state: TokenAuthState, user: Any) -> bool | None:
    """The ``email_verified`` claim of a session that starts now for
    ``user``, from the store; ``None`` (no claim) while verification is
    off."""
    if not is_on(state):
        return None
    return bool(state.user_store.is_email_verified(user))


def claim_of_sub(state: TokenAuthState, sub: str) -> bool | None:
    """:func:`claim_of` for a user named by its ``sub`` (``False`` if there
    is no such user)."""
    if not is_on(state):
        return None
    user = state.user_store.get(sub)
    return user is not None and bool(state.user_store.is_email_verified(user))


def refresh_claim(state: TokenAuthState, rotation: Rotation) -> bool | None:
    """The ``email_verified`` claim of the token a refresh issues: the
    session's column, which the rotation read with the session row.

    A session started while verification was off (or before the column
    existed) has none: the store is asked this once, and the session row
    remembers the answer (unless :func:`mark_verified` wrote it meanwhile),
    as an unbound session is bound at its first refresh (see
    :mod:`._identity`)."""
    if not is_on(state):
        return None
    if rotation.email_verified is not None:
        return rotation.email_verified
    verified = claim_of_sub(state, rotation.user_id)
    with state.db.begin() as conn:
        conn.execute(
            update(_sessions)
            .where(
                _sessions.c.id == rotation.family_id,
                _sessions.c.email_verified.is_(None),
            )
            .values(email_verified=verified)
        )
    return verified


def user_json(
    state: TokenAuthState, user: Any, verified: bool | None
) -> dict[str, Any]:
    """The ``user`` object of the register and login answers: the store's,
    and ``emailVerified`` while verification is on."""
    body = state.user_store.to_json(user)
    if verified is not None:
        body["emailVerified"] = verified
    return body


# -- Recording a verified address --------------------------------------------


def mark_verified(
    state: TokenAuthState, conn: Connection, user: Any, email: str
) -> None:
    """Record in ``conn`` (the caller's transaction) that ``user``'s address
    ``email`` is verified, and tell the user's live sessions (their next
    refresh carries ``email_verified: true``); the caller sends
    :func:`announce` after its commit."""
    store = state.user_store
    store.set_email_verified(user, email, conn)
    conn.execute(
        update(_sessions)
        .where(
            _sessions.c.user_id == store.sub_of(user),
            _sessions.c.revoked_at.is_(None),
        )
        .values(email_verified=True)
    )


def announce(state: TokenAuthState, user: Any, email: str) -> None:
    """Send :data:`~.signals.email_verified`."""
    store = state.user_store
    signals.email_verified.send(
        _app(), user_id=store.user_id(store.sub_of(user)), email=email
    )


def is_email_verified(user: Any = None) -> bool:
    """Whether ``user``'s current address is verified, as the user store
    records it (any store: the built-in users' ``email_verified_at``, a host
    model's ``email_verified=`` column, or our own table).

    :param user: a user of the user store or its id; by default
        :data:`~flask_tokenauth.current_user` (``False`` for an anonymous
        one).  To decide on the access token alone, with no lookup, use
        ``@login_required(verified=True)`` or
        ``current_claims.get("email_verified")``.
    :raises LookupError: ``user`` is an id of no user.
    """
    state = get_state()
    store = state.user_store
    if user is None:
        user = _get_user()
        if not getattr(user, "is_authenticated", True):
            return False
    elif isinstance(user, (str, int, uuid.UUID)):
        sub = store.to_sub(user)
        user = store.get(sub)
        if user is None:
            raise LookupError(f"is_email_verified: no user {sub!r}")
    return bool(store.is_email_verified(user))


# -- The verification mail ---------------------------------------------------


def issue_link(state: TokenAuthState, conn: Connection, user: Any, email: str) -> str:
    """A verification link for ``user``'s address ``email``, issued in
    ``conn`` (the caller's transaction; mail it with :func:`mail_link`
    after the commit).  An older link of the user's stops working: only the
    newest mail's does."""
    settings = state.settings
    issued = _linktokens.issue(
        settings,
        conn,
        _linktokens.VERIFY,
        state.user_store.sub_of(user),
        email,
        settings.verify_email_expires,
        supersede=True,
    )
    return _linktokens.link(settings, settings.verify_email_url, issued.token)


def mail_link(state: TokenAuthState, user: Any, email: str, link: str) -> None:
    """Mail ``link`` to ``email`` (delivered after the response) and send
    :data:`~.signals.verification_sent`."""
    send_mail(
        TEMPLATE,
        email,
        link=link,
        email=email,
        valid_for=duration_text(state.settings.verify_email_expires),
    )
    store = state.user_store
    signals.verification_sent.send(
        _app(), user_id=store.user_id(store.sub_of(user)), email=email
    )


def send_link(state: TokenAuthState, user: Any, email: str) -> None:
    """Issue a verification link for ``user``'s address ``email`` and mail it."""
    with state.db.begin() as conn:
        link = issue_link(state, conn, user, email)
    mail_link(state, user, email, link)


def link_for_new_user(
    state: TokenAuthState, conn: Connection, user: Any
) -> tuple[str, str] | None:
    """At ``/register``, in its transaction: ``(address, link)`` to mail
    once it commits (:func:`mail_link`), or ``None`` while verification is
    off or the user has no address."""
    email = needs_link(state, user) if is_on(state) else None
    return None if email is None else (email, issue_link(state, conn, user, email))


def registered_unverified(state: TokenAuthState, user: Any) -> Response:
    """``/register``'s answer under ``required`` verification: ``201`` and
    the user, but no session (no access token, no refresh cookie) until the
    address is verified, as Flask-Security's ``/register`` answers with
    confirmation required."""
    response = jsonify(
        user=user_json(state, user, claim_of(state, user)),
        message="Registered: follow the link mailed to you to verify your"
        " address, then log in",
    )
    response.status_code = 201
    return response


def needs_link(state: TokenAuthState, user: Any | None) -> str | None:
    """The address to mail a verification link to for ``user``: its
    current address if it has one and it is not verified yet, and the user
    is active; else ``None``."""
    if user is None:
        return None
    store = state.user_store
    email = store.email_of(user)
    if email is None or not store.is_active(user) or store.is_email_verified(user):
        return None
    return email
