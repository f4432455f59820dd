"""``POST /reauthenticate``: a step-up.  The caller proves again who they
are (the password, or a factor its module registered, see
:func:`.._assurance.reauth_factor`), and the session's ``auth_time`` is
renewed without a new session: views with ``@login_required(fresh=...)``
accept the access token it answers."""

from __future__ import annotations

from flask import Response, current_app, jsonify

from .. import _assurance as assurance
from .. import _lockout as lockout
from .. import signals
from .._ratelimit import LOGIN, limited
from .._state import get_state
from .._validation import require_string
from ..decorators import login_required
from ..errors import InvalidPassword, UserNotFound, WrongPassword
from ..globals import current_claims
from ..openapi._ops_factors import REAUTHENTICATE
from ._common import allow


@limited(LOGIN)
@login_required
def reauthenticate() -> Response:
    """``{"password"}`` (or a registered factor's body, e.g. ``{"code"}``):
    answer ``{"accessToken"}`` with a renewed ``auth_time``.

    A wrong password counts against the account's wrong-password budget,
    shared with ``/login`` (see :mod:`.._lockout`), and answers ``403
    WRONG_PASSWORD`` as ``/password`` does (not a 401: the token is fine).
    """
    allow("POST")
    state = get_state()
    settings = state.settings
    store = state.user_store
    body = REAUTHENTICATE.read()  # each member, if sent, of its type
    sub = str(current_claims["sub"])
    session_id = str(current_claims["sid"])
    user = store.get(sub)
    if user is None or not store.is_active(user):
        raise UserNotFound()
    factor = next((k for k in assurance.REAUTH_FACTORS if k in body), None)
    if factor is not None and "password" not in body:
        method = assurance.REAUTH_FACTORS[factor](state, user, body)
        response_cookie = None
    else:
        password = require_string(body, "password")
        if not password:
            raise InvalidPassword("Password is required")
        attempt = lockout.guard(state, lockout.account_of(store, user, ""))
        # As /password: a NUL or an overlong value is in no password we accept.
        if (
            len(password) > settings.password_max_length
            or "\x00" in password
            or not store.verify_password(user, password)
        ):
            attempt.failed()
            raise WrongPassword()
        method = assurance.PWD
        response_cookie = attempt
    access = assurance.renew_auth_time(state, session_id, [method])
    signals.reauthenticated.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=store.user_id(sub),
        session_id=session_id,
        method=method,
    )
    response = jsonify(accessToken=access)
    if response_cookie is not None:
        response_cookie.trust_device(response)
    return response
