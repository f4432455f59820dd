"""``/register``, ``/login``, ``/refresh`` and ``/logout``.

The JSON shapes are the tutorial's, so its browser client works unchanged.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy.exc import IntegrityError

from .. import _identity as bound_identity
from .. import _lockout as lockout
from .. import _mfa_status as mfa_status
from .. import _verification as verification
from .. import signals
from .._cookies import (
    choose_refresh_token,
    clear_refresh_cookies,
    presented_sessions,
    refresh_cookie_values,
    session_hint,
)
from .._headers import clear_refresh_cookie, set_refresh_cookie
from .._origin import refuse_cross_site
from .._ratelimit import LOGIN, REFRESH, REGISTER, limited
from .._refresh import KnownToken, Rotation
from .._session_start import session_response as _session_response
from .._session_start import start_family as _start_family
from .._sessions import revoke_sessions
from .._state import TokenAuthState, get_state
from .._validation import check_password
from ..errors import (
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidPassword,
    RefreshTokenAmbiguous,
    RefreshTokenError,
    RefreshTokenInvalid,
    RefreshTokenMissing,
    RefreshTokenReused,
    RefreshTokenRevoked,
)
from ..openapi._declare import Body
from ..openapi._ops_core import CREDENTIALS, REGISTRATION
from . import safe_register
from ._common import allow, switched


def _app() -> Any:
    """The real app object, the sender of our signals."""
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _revoke_planted(state: TokenAuthState, sessions: list[KnownToken]) -> None:
    """End the sessions of refresh cookies that were planted (or that the
    page no longer holds): dead, they cannot make a refresh ambiguous again,
    even where their cookie is out of our reach."""
    for session in sessions:
        revoke_sessions(
            state, session.user_id, only=[session.family_id], reason="cookie-conflict"
        )


def _start_session(
    state: TokenAuthState, user: Any, status: int
) -> tuple[Response, str]:
    """Respond to a login: a new session, its cookie and an access token.
    The session is bound to the user's identity as stored now: read again,
    as a login may just have rehashed the password."""
    sub = state.user_store.sub_of(user)
    identity = bound_identity.read(state, sub)
    with state.db.begin() as conn:
        issued = _start_family(state, conn, sub, identity=identity, user=user)
    return _session_response(state, user, status, issued), issued.family_id


def _credentials(state: TokenAuthState, declared: Body) -> tuple[str, str]:
    """The normalized login identifier and the password of a JSON body, read
    through its declaration (``/register``'s or ``/login``'s)."""
    body = declared.read()
    return state.user_store.normalize_login(body[state.user_store.login_field]), (
        body["password"]
    )


@switched("register_enabled")
@limited(REGISTER)
def register() -> Response:
    allow("POST")
    state = get_state()
    settings = state.settings
    store = state.user_store
    login, password = _credentials(state, REGISTRATION)
    check_password(password, settings, [login])
    if settings.register_enumeration_safe:
        # The same 202 for a taken login as for a new one (see there).
        return safe_register.register(state, login, password)
    if store.find_by_login(login) is not None:
        raise EmailTaken()
    # ``required`` verification: no session until the address is verified.
    session = not verification.is_required(state)
    try:
        with state.db.begin() as conn:
            user = store.create(login, password, conn)
            sub = store.sub_of(user)
            identity = bound_identity.of_user(state, user)
            link = verification.link_for_new_user(state, conn, user)
            issued = (
                _start_family(state, conn, sub, identity=identity, user=user)
                if session
                else None
            )
    except IntegrityError as e:
        # A concurrent registration of the same login won the race.
        raise EmailTaken() from e
    user_id = store.user_id(sub)
    named: dict[str, Any] = {store.login_field: login}
    signals.user_registered.send(_app(), user_id=user_id, **named)
    if link is not None:
        verification.mail_link(state, user, *link)
    if issued is None:
        response = verification.registered_unverified(state, user)
    else:
        response = _session_response(state, user, 201, issued)
    # The client that chose the password is the account's first device.
    lockout.trust_device(response, state, lockout.account_of(store, user, login))
    return response


@limited(LOGIN)
def login() -> Response:
    allow("POST")
    state = get_state()
    settings = state.settings
    store = state.user_store
    login, password = _credentials(state, CREDENTIALS)
    # The tutorial's ``!password`` check: no password is a malformed request
    # (400, as register answers it), not a wrong one, and counts as no guess.
    if not password:
        raise InvalidPassword("Password is required")
    if len(password) > settings.password_max_length or "\x00" in password:
        raise InvalidPassword()
    user = store.find_by_login(login)
    # Counted per matched user, whatever the spelling (see _lockout).
    attempt = lockout.guard(state, lockout.account_of(store, user, login))
    # An unknown login is checked against a real hash of the same cost, so it
    # takes as long as a wrong password and fails with the same response; it
    # counts against the same limits, which so tell nothing either.  A
    # disabled user is checked too, and fails the same way.
    if user is None:
        store.dummy_check(password)
        matched = False
    else:
        matched = store.verify_password(user, password) and store.is_active(user)
    if not matched:
        attempt.failed()
        named: dict[str, Any] = {store.login_field: login}
        signals.login_failed.send(
            _app(),
            user_id=None if user is None else store.user_id(store.sub_of(user)),
            **named,
        )
        raise InvalidCredentials()
    # Only now, after the right password: the answer tells nothing to whom
    # does not know it (a wrong one stays INVALID_CREDENTIALS).
    if verification.is_required(state) and not store.is_email_verified(user):
        signals.login_unverified.send(_app(), user_id=store.user_id(store.sub_of(user)))
        raise EmailNotVerified()
    store.rehash_if_needed(user, password)
    response, session_id = _start_session(state, user, 200)
    attempt.trust_device(response)
    signals.login_succeeded.send(
        _app(),
        user_id=store.user_id(store.sub_of(user)),
        session_id=session_id,
        method="password",
    )
    return response


def _check_user(state: TokenAuthState, rotation: Rotation) -> str | None:
    """After a rotation: the session's user must still exist and be active
    in the user store (a user deleted or disabled on the host, even by raw
    SQL, keeps no session).  If not, the session is revoked, the successor
    just issued with it.  The rotation statement read the user's status if
    the store could say it in SQL (see ``UserStore.status_clause``); else
    the store is asked now.

    The user must also be the one the session was issued to (see
    :mod:`.._identity`): a session bound to another identity value is
    revoked as if its user were gone.  A session not bound yet is bound now.
    Returns the session's fingerprint, for the access token.

    :raises RefreshTokenInvalid: the user is gone (or is someone else).
    :raises RefreshTokenRevoked: the user is disabled.
    """
    if rotation.user_checked:
        status, value = rotation.user_active, rotation.user_identity
    else:
        status, value = state.user_store.status_and_identity(rotation.user_id)
    current = bound_identity.of_sub(state, rotation.user_id, value)
    gone = status is None  # no such user at all (not someone else now)
    if status is not None and not bound_identity.matches(rotation.bound, current):
        # Bound to another identity: the id names another user now (a
        # table reset), or the password was changed: no account of theirs.
        status = None
    if not status:
        revoke_sessions(
            state, rotation.user_id, only=[rotation.family_id], reason="user-gone"
        )
        if gone:
            # Deleted (even by raw SQL): their second factors go too, before
            # a host's table gives the id to someone new.
            with state.db.begin() as conn:
                mfa_status.remove_all(conn, rotation.user_id)
        # No user: the credentials of no account, as before any rotation.
        raise RefreshTokenInvalid() if status is None else RefreshTokenRevoked()
    if rotation.bound is None and current is not None:
        # A session of before the binding: bound now, to whom holds the id.
        with state.db.begin() as conn:
            bound_identity.bind(conn, rotation.family_id, current)
        return current
    return rotation.bound


@limited(REFRESH)
def refresh() -> Response:
    allow("POST")
    state = get_state()
    store = state.user_store
    refuse_cross_site(state)
    # Several values: someone else's cookie of our name is in the jar (see
    # ._cookies); pick ours, by the session the page says it holds if need
    # be, and clear the others wherever we can.
    values = refresh_cookie_values(state)
    others: list[KnownToken] = []
    try:
        if not values:
            raise RefreshTokenMissing()
        if len(values) == 1:
            token = values[0]
        else:
            choice = choose_refresh_token(state, values, session_hint())
            token, others = choice.token, choice.others
        try:
            with state.db.single_statement() as conn:
                rotation = state.refresh_tokens.rotate(conn, token)
        except RefreshTokenReused as e:
            # Whoever holds the newest token of this family may be a thief:
            # revoke the whole family, so that both sides must log in again.
            signals.refresh_token_reused.send(
                _app(), user_id=store.user_id(e.user_id), session_id=e.family_id
            )
            revoke_sessions(state, e.user_id, only=[e.family_id], reason="reuse")
            raise
        identity = _check_user(state, rotation)
    except RefreshTokenAmbiguous as e:
        _revoke_planted(state, e.sessions)
        response = e.get_response()
        clear_refresh_cookies(response, state.settings, keep_own=False)
        return response
    except RefreshTokenError as e:
        response = e.get_response()
        if len(values) <= 1:
            clear_refresh_cookie(response, state.settings)
        return response
    _revoke_planted(state, others)
    user_id = store.user_id(rotation.user_id)
    signals.token_refreshed.send(
        _app(),
        user_id=user_id,
        session_id=rotation.family_id,
        rotated=rotation.issued is not None,
    )
    if rotation.issued is None:
        signals.refresh_grace_used.send(
            _app(), user_id=user_id, session_id=rotation.family_id
        )
    access = state.access_tokens.issue(
        rotation.user_id,
        rotation.family_id,
        identity=identity,
        email_verified=verification.refresh_claim(state, rotation),
        assurance=rotation.assurance,
    )
    # A JWT is base64url segments and dots: a JSON string as it stands, so
    # the body is written out rather than encoded (as jsonify does, compact).
    response = current_app.response_class(
        f'{{"accessToken":"{access}"}}\n', mimetype="application/json"
    )
    if len(values) > 1:
        clear_refresh_cookies(response, state.settings, keep_own=True)
    if rotation.issued is not None:
        issued = rotation.issued
        set_refresh_cookie(response, state.settings, issued.token, issued.expires_at)
    return response


def logout() -> Response:
    allow("POST")
    state = get_state()
    refuse_cross_site(state)
    values = refresh_cookie_values(state)
    sessions = presented_sessions(state, values)
    for session in sessions:
        revoke_sessions(
            state, session.user_id, only=[session.family_id], reason="logout"
        )
        signals.logged_out.send(
            _app(),
            user_id=state.user_store.user_id(session.user_id),
            session_id=session.family_id,
        )
    if not sessions:
        signals.logged_out.send(_app(), user_id=None, session_id=None)
    response = jsonify(message="Logged out successfully")
    if len(values) > 1:
        # A planted cookie among them: its session is revoked above, its
        # cookie goes too, wherever we can reach it.
        clear_refresh_cookies(response, state.settings, keep_own=False)
    else:
        clear_refresh_cookie(response, state.settings)
    return response


def refresh_paths(app: Flask) -> list[str]:
    """The paths ``/refresh`` is mounted at in ``app`` (one per mount of the
    blueprint, under any prefix, name or parent blueprint), which is where a
    refresh cookie that is not set by one of our own views must go."""
    return sorted(
        {
            rule.rule.rsplit("/", 1)[0] or "/"
            for rule in app.url_map.iter_rules()
            if app.view_functions.get(rule.endpoint) is refresh
        }
    )
