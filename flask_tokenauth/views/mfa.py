"""``GET /mfa`` (the caller's factors), ``POST /mfa/verify`` (the second
factor of a session that waits for it: an authenticator-app code or a
recovery code) and ``POST /mfa/recovery-codes`` (new codes, old ones die).

``/mfa/verify`` answers as ``/login`` does (``{user, accessToken}`` and the
rotated refresh cookie) once the session is upgraded by
:func:`.._assurance.complete_factor`.  Every wrong code counts against the
account's second-factor budget (:data:`.._lockout.SECOND_FACTOR`: the
password's limits, with counters and a device cookie of their own), checked
before the code, so a guess made over the budget tells nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, jsonify

from .. import _assurance as assurance
from .. import _factor_crypto as crypto
from .. import _lockout as lockout
from .. import _mfa_status as mfa_status
from .. import _recovery_codes as recovery
from .. import _totp as totp
from .. import signals
from .._mail import send_mail
from .._state import TokenAuthState, get_state
from .._validation import require_string
from ..errors import MfaCodeInvalid, MfaNotEnabled, NotFound, ValidationError
from ..globals import current_claims
from ..openapi._ops_factors import MFA_VERIFY
from . import _factors as factors
from ._common import allow

#: The ``method`` of the ``mfa_verified`` / ``mfa_failed`` signals.
TOTP = "totp"
RECOVERY_CODE = "recovery-code"


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


@factors.any_factor_on
@factors.pending_view
def status() -> Response:
    """``{totp: {enabled, confirmedAt}, passkeys, recoveryCodesLeft}``; a
    session waiting for its second factor may ask (to offer the right
    ones)."""
    allow("GET")
    state = get_state()
    _, user_id = factors.caller(state)
    with state.db.begin() as conn:
        return jsonify(mfa_status.summary(conn, user_id))


@factors.any_factor_on
@factors.pending_view
def verify() -> Response:
    """``{code}`` or ``{recoveryCode}``: complete the session's second
    factor; ``200 {user, accessToken}`` and the rotated refresh cookie."""
    allow("POST")
    state = get_state()
    body = MFA_VERIFY.read()  # each member, if sent, a string
    if body.get("recoveryCode") is not None:
        method, code = RECOVERY_CODE, str(body["recoveryCode"])
    elif body.get("code") is not None:
        if not state.settings.totp_enabled:
            raise NotFound()
        method, code = TOTP, str(body["code"])
    else:
        raise ValidationError("'code' or 'recoveryCode' is required")
    user, user_id = factors.caller(state)
    public = state.user_store.user_id(user_id)
    attempt = lockout.guard(state, "user:" + user_id, lockout.SECOND_FACTOR)
    left: int | None = None
    with state.db.begin() as conn:
        if method == TOTP:
            accepted = _totp_accepted(state, conn, user_id, code)
        else:
            left = recovery.use(state.settings, conn, user_id, code)
            accepted = left is not None
    if not accepted:
        attempt.failed()
        signals.mfa_failed.send(_app(), user_id=public, method=method)
        raise MfaCodeInvalid()
    response = factors.complete(state, user)
    attempt.trust_device(response)
    signals.mfa_verified.send(
        _app(), user_id=public, session_id=current_claims["sid"], method=method
    )
    if left is not None:
        _notify_recovery_code_used(state, user, left)
        signals.recovery_code_used.send(_app(), user_id=public, remaining=left)
    return response


def _totp_accepted(state: TokenAuthState, conn: Any, user_id: str, code: str) -> bool:
    try:
        return totp.verify(state.settings, conn, user_id, code)
    except totp.NotEnrolled:
        return False
    except crypto.Unreadable as e:
        factors.log_unreadable(e, user_id)
        return False


def _notify_recovery_code_used(state: TokenAuthState, user: Any, left: int) -> None:
    """Mail the owner that a recovery code was used (rendered now, sent
    after the response): if it was not them, they learn it, and how many
    codes are left.  Nothing for a user without an address."""
    store = state.user_store
    address = store.email_of(user) if store.has_email else None
    if address:
        send_mail("recovery_code_used", address, remaining=left)


@factors.any_factor_on
@factors.fresh_view
def recovery_codes() -> Response:
    """New recovery codes (fresh authentication required): ``{recoveryCodes,
    recoveryCodesLeft}``; every older code stops working.  ``409
    MFA_NOT_ENABLED`` for a user without a second factor."""
    allow("POST")
    state = get_state()
    _, user_id = factors.caller(state)
    with state.db.begin() as conn:
        if not mfa_status.has_factor(conn, user_id):
            raise MfaNotEnabled()
        assurance.require_to_change_factors(dict(current_claims))
        codes = recovery.generate(state.settings, conn, user_id)
    signals.recovery_codes_generated.send(
        _app(), user_id=state.user_store.user_id(user_id)
    )
    return jsonify(recoveryCodes=codes, recoveryCodesLeft=len(codes))


@assurance.reauth_factor("code")
def reauthenticate_by_code(
    state: TokenAuthState, user: Any, body: Mapping[str, Any]
) -> str:
    """``POST /reauthenticate {code}``: an authenticator-app code renews the
    session's ``auth_time``, under the same rules and budget as
    ``/mfa/verify``.

    :raises MfaCodeInvalid: a wrong, used or malformed code.
    """
    if not state.settings.totp_enabled:
        raise NotFound()
    code = require_string(dict(body), "code")
    user_id = state.user_store.sub_of(user)
    attempt = lockout.guard(state, "user:" + user_id, lockout.SECOND_FACTOR)
    with state.db.begin() as conn:
        accepted = _totp_accepted(state, conn, user_id, code)
    if not accepted:
        attempt.failed()
        signals.mfa_failed.send(
            _app(), user_id=state.user_store.user_id(user_id), method=TOTP
        )
        raise MfaCodeInvalid()
    return assurance.OTP
