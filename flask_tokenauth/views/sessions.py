"""A user's sessions (one per login and device), log out elsewhere or
everywhere, and password change.  All need an access token.

Every revocation here also stops the access tokens of the revoked sessions
at their next request (see :mod:`._revocation`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from flask import Response, current_app, jsonify

from .. import _identity as bound_identity
from .. import _linktokens as linktokens
from .. import signals
from .._headers import clear_refresh_cookie
from .._ratelimit import LOGIN, limited
from .._session_start import start_family as _start_family
from .._session_start import token_response as _token_response
from .._sessions import active_sessions, announce_revoked, revoke_in, revoke_sessions
from .._state import get_state
from .._validation import check_password
from ..decorators import login_required
from ..errors import InvalidPassword, SessionNotFound, UserNotFound
from ..globals import _get_user as load_current_user
from ..globals import current_claims
from ..openapi._ops_core import PASSWORD_CHANGE
from ._common import allow, check_current_password, switched

#: Session ids are uuid4 hex strings; anything else names no session.
SESSION_ID = re.compile(r"[0-9a-f]{32}")


def _user_id() -> str:
    """The caller's ``sub`` (checked to be the user store's canonical form
    when the token was verified), once the user is loaded: these views act
    on the user's sessions, so the token must still be that user's (see
    :mod:`.._identity`: after a table reset, an old token names the next
    user's id).

    :raises UserNotFound: the user is gone, disabled, or someone else now.
    """
    load_current_user()
    return str(current_claims["sub"])


@login_required
def list_sessions() -> Response:
    """``{"sessions": [...]}``: the caller's active sessions, most recently
    used first, the one of the presented token marked ``"current": true``."""
    allow("GET")
    user_id = _user_id()
    # Only the sessions of this identity: those of the id's former holder
    # (bound to another one, see .._identity) are not this user's to see.
    sessions = active_sessions(
        get_state(), user_id, identity=current_claims.get(bound_identity.CLAIM)
    )
    current = current_claims["sid"]
    return jsonify(sessions=[s.to_json(current) for s in sessions])


@login_required
def revoke_session(session_id: str) -> Response:
    """Revoke one of the caller's sessions (404 for anyone else's)."""
    allow("DELETE")
    if not SESSION_ID.fullmatch(session_id):
        raise SessionNotFound()
    revoked = revoke_sessions(
        get_state(), _user_id(), only=[session_id], reason="revoked"
    )
    if not revoked:
        raise SessionNotFound()
    return jsonify(message="Session revoked")


@login_required
def logout_others() -> Response:
    """Revoke every session of the caller but the current one."""
    allow("POST")
    revoked = revoke_sessions(
        get_state(), _user_id(), keep=current_claims["sid"], reason="logout-others"
    )
    return jsonify(message="Logged out of other sessions", revoked=len(revoked))


@login_required
def logout_all() -> Response:
    """Revoke every session of the caller, this one included, and every
    access token issued to them so far."""
    allow("POST")
    state = get_state()
    revoked = revoke_sessions(state, _user_id(), reason="logout-all", cutoff=True)
    response = jsonify(message="Logged out everywhere", revoked=len(revoked))
    clear_refresh_cookie(response, state.settings)
    return response


@switched("password_change_enabled")
# Checks the current password: limited like a login, before the token check.
@limited(LOGIN)
@login_required
def change_password() -> Response:
    """``{"currentPassword", "newPassword"}``: change the password and end
    every session of the user, the current one included, in one
    transaction; answer ``{"accessToken"}`` for a new session of the caller,
    with its refresh cookie, as a login does.

    Ending the current session too makes "every access token issued before
    the change is refused" exact: an older token of any session is refused
    by its session's revocation, whatever second it was issued in.

    A wrong current password counts against the account's failure limits,
    shared with ``/login`` (see :mod:`._lockout`).
    """
    allow("POST")
    state = get_state()
    settings = state.settings
    body = PASSWORD_CHANGE.read()
    current: str = body["currentPassword"]
    if not current:
        raise InvalidPassword("Current password is required")
    new = check_password(body["newPassword"], settings)
    store = state.user_store
    user_id = _user_id()
    user = store.get(user_id)
    if user is None or not store.is_active(user):
        raise UserNotFound()
    attempt = check_current_password(state, user, current)
    # Compared with the login only now: before the current password is
    # checked, the refusal would tell the holder of a stolen access token
    # whether a guess is part of the account's login.
    check_password(new, settings, [store.login_of(user)])
    now = datetime.now(timezone.utc)
    with state.db.begin() as conn:
        # In our transaction (a host store's too, when its users are in our
        # database; one elsewhere commits its own first).  Hashed before
        # our first statement, so the transaction holds its locks briefly.
        store.set_password(user, new, conn)
        # Told to the revocation store before the commit: if it refuses,
        # the new hash is rolled back with the revocation (503, retry works).
        revoked = revoke_in(state, conn, user_id, cutoff=True, now=now)
        # Reset and address-change links mailed before: dead by their
        # binding to the old hash already, except with a store that binds
        # nothing (``identity_attribute = None``), so spent here too.
        linktokens.revoke(conn, user_id, [linktokens.RESET, linktokens.CHANGE], now=now)
        # The new session keeps the level of the one that asked (a second
        # factor done stays done), authenticated now: the password was.
        issued = _start_family(
            state,
            conn,
            user_id,
            now,
            user=user,
            methods=current_claims.get("amr") or ["pwd"],
            aal=current_claims.get("aal") or 1,
        )
    # The new session is bound to the new hash, read back now it is stored.
    identity = bound_identity.read(state, user_id)
    if identity is not None:
        with state.db.begin() as conn:
            bound_identity.bind(conn, issued.family_id, identity)
    announce_revoked(state, user_id, revoked, "password-changed")
    signals.password_changed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=store.user_id(user_id),
    )
    access = state.access_tokens.issue(
        user_id,
        issued.family_id,
        user=user,
        identity=identity,
        email_verified=issued.email_verified,
        assurance=issued.assurance,
    )
    response = _token_response({"accessToken": access}, 200, state, issued)
    attempt.trust_device(response)
    return response
