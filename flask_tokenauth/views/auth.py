"""``/register``, ``/login``, ``/refresh`` and ``/logout``.

The JSON shapes are the tutorial's, so its browser client works unchanged.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

from flask import Response, current_app, jsonify, request
from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import _lockout as lockout
from .. import signals
from .._cookies import choose_refresh_token, presented_sessions, refresh_cookie_values
from .._headers import clear_refresh_cookie, set_refresh_cookie
from .._origin import refuse_cross_site
from .._passwords import hash_password, needs_rehash, verify_password
from .._ratelimit import LOGIN, REFRESH, REGISTER, client_ip, limited
from .._refresh import IssuedToken
from .._sessions import revoke_sessions
from .._state import TokenAuthState, get_state
from .._validation import (
    cached_json_object,
    check_password,
    normalize_email,
    require_string,
)
from ..errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidPassword,
    RefreshTokenError,
    RefreshTokenMissing,
    RefreshTokenReused,
)
from ..models import User
from ._common import allow

_users = cast(Table, User.__table__)


def _app() -> Any:
    """The real app object, the sender of our signals."""
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _token_response(
    body: dict[str, Any], status: int, state: TokenAuthState, issued: IssuedToken | None
) -> Response:
    response = jsonify(body)
    response.status_code = status
    if issued is not None:
        set_refresh_cookie(response, state.settings, issued.token, issued.expires_at)
    return response


def _start_family(
    state: TokenAuthState, conn: Connection, user_id: int, now: datetime | None = None
) -> IssuedToken:
    """Start a session, recording the client's user agent and address."""
    return state.refresh_tokens.start_family(
        conn,
        user_id,
        now,
        user_agent=request.user_agent.string,
        ip_address=client_ip(state.settings.trusted_proxies),
    )


def _session_response(
    state: TokenAuthState, user_id: int, email: str, status: int, issued: IssuedToken
) -> Response:
    """The answer to a register or login: the user, an access token for the
    new session and its refresh cookie."""
    access = state.access_tokens.issue(user_id, issued.family_id)
    body = {"user": {"id": user_id, "email": email}, "accessToken": access}
    return _token_response(body, status, state, issued)


def _start_session(
    state: TokenAuthState, user_id: int, email: str, status: int
) -> tuple[Response, str]:
    """Respond to a login: a new session, its cookie and an access token."""
    with state.db.begin() as conn:
        issued = _start_family(state, conn, user_id)
    return _session_response(state, user_id, email, status, issued), issued.family_id


def _credentials() -> tuple[str, str]:
    """The normalized email and the password of a JSON body."""
    body = cached_json_object(request)
    return normalize_email(require_string(body, "email")), require_string(
        body, "password"
    )


@limited(REGISTER)
def register() -> Response:
    allow("POST")
    state = get_state()
    settings = state.settings
    email, password = _credentials()
    check_password(password, settings)
    with state.db.begin() as conn:
        taken = conn.execute(select(_users.c.id).where(_users.c.email == email)).first()
    if taken:
        raise EmailTaken()
    password_hash = hash_password(password, settings.bcrypt_rounds)
    now = datetime.now(timezone.utc)
    try:
        with state.db.begin() as conn:
            user_id = conn.execute(
                insert(_users)
                .values(
                    email=email,
                    password_hash=password_hash,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_users.c.id)
            ).scalar_one()
            issued = _start_family(state, conn, user_id, now)
    except IntegrityError as e:
        # A concurrent registration of the same email won the race.
        raise EmailTaken() from e
    signals.user_registered.send(_app(), user_id=user_id, email=email)
    response = _session_response(state, user_id, email, 201, issued)
    # The client that chose the password is the account's first device.
    lockout.trust_device(response, state, email)
    return response


@limited(LOGIN)
def login() -> Response:
    allow("POST")
    state = get_state()
    settings = state.settings
    email, password = _credentials()
    # The tutorial's ``!password`` check: no password is a malformed request
    # (400, as register answers it), not a wrong one, and counts as no guess.
    if not password:
        raise InvalidPassword("Password is required")
    if len(password) > settings.password_max_length or "\x00" in password:
        raise InvalidPassword()
    attempt = lockout.guard(state, email)
    with state.db.begin() as conn:
        user = conn.execute(
            select(_users.c.id, _users.c.email, _users.c.password_hash).where(
                _users.c.email == email
            )
        ).first()
    # An unknown email is checked against a real hash of the same cost, so it
    # takes as long as a wrong password and fails with the same response; it
    # counts against the same limits, which so tell nothing either.
    stored = user.password_hash if user else state.dummy_hash
    matched = verify_password(password, stored, rounds=settings.bcrypt_rounds)
    if not matched or user is None:
        attempt.failed()
        signals.login_failed.send(_app(), email=email, user_id=user and user.id)
        raise InvalidCredentials()
    if needs_rehash(stored, settings.bcrypt_rounds):
        with state.db.begin() as conn:
            conn.execute(
                update(_users)
                .where(_users.c.id == user.id)
                .values(
                    password_hash=hash_password(password, settings.bcrypt_rounds),
                    updated_at=datetime.now(timezone.utc),
                )
            )
    response, session_id = _start_session(state, user.id, user.email, 200)
    attempt.trust_device(response)
    signals.login_succeeded.send(_app(), user_id=user.id, session_id=session_id)
    return response


@limited(REFRESH)
def refresh() -> Response:
    allow("POST")
    state = get_state()
    refuse_cross_site(state)
    # Several values: someone else's cookie of our name is in the jar (see
    # ._cookies); pick ours, and clear nothing, as the bad value may not be
    # the one our Set-Cookie would hit.
    values = refresh_cookie_values(state)
    try:
        if not values:
            raise RefreshTokenMissing()
        token = values[0] if len(values) == 1 else choose_refresh_token(state, values)
        try:
            with state.db.single_statement() as conn:
                rotation = state.refresh_tokens.rotate(conn, token)
        except RefreshTokenReused as e:
            # Whoever holds the newest token of this family may be a thief:
            # revoke the whole family, so that both sides must log in again.
            signals.refresh_token_reused.send(
                _app(), user_id=e.user_id, session_id=e.family_id
            )
            revoke_sessions(state, e.user_id, only=[e.family_id], reason="reuse")
            raise
    except RefreshTokenError as e:
        response = e.get_response()
        if len(values) <= 1:
            clear_refresh_cookie(response, state.settings)
        return response
    signals.token_refreshed.send(
        _app(),
        user_id=rotation.user_id,
        session_id=rotation.family_id,
        rotated=rotation.issued is not None,
    )
    if rotation.issued is None:
        signals.refresh_grace_used.send(
            _app(), user_id=rotation.user_id, session_id=rotation.family_id
        )
    access = state.access_tokens.issue(rotation.user_id, rotation.family_id)
    return _token_response({"accessToken": access}, 200, state, rotation.issued)


def logout() -> Response:
    allow("POST")
    state = get_state()
    refuse_cross_site(state)
    sessions = presented_sessions(state, refresh_cookie_values(state))
    for session in sessions:
        revoke_sessions(
            state, session.user_id, only=[session.family_id], reason="logout"
        )
        signals.logged_out.send(
            _app(), user_id=session.user_id, session_id=session.family_id
        )
    if not sessions:
        signals.logged_out.send(_app(), user_id=None, session_id=None)
    response = jsonify(message="Logged out successfully")
    clear_refresh_cookie(response, state.settings)
    return response
