"""Authenticator apps: ``POST /mfa/totp/enroll``, ``POST /mfa/totp/confirm``
and ``DELETE /mfa/totp`` (``TOKENAUTH_TOTP_ENABLED``; see
docs/totp.md).

Enrolment is two steps, so that a secret the app never scanned is never
required at login: ``enroll`` stores a new secret unconfirmed and shows it
(``secret``, ``otpauthUri``, ``qrSvg``); ``confirm`` with a first code of
it turns it on and, at a first factor, answers the recovery codes.  A user
who already has a factor must have authenticated recently to enrol (or a
thief of an open session could add their own authenticator), and so must
anyone removing one.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, current_app, jsonify

from .. import _assurance as assurance
from .. import _factor_crypto as crypto
from .. import _lockout as lockout
from .. import _mfa_status as mfa_status
from .. import _recovery_codes as recovery
from .. import _totp as totp
from .. import signals
from .._state import TokenAuthState, get_state
from ..errors import MfaCodeInvalid, TotpAlreadyEnabled, TotpNotEnabled
from ..globals import current_claims
from ..openapi._ops_factors import TOTP_CONFIRM
from . import _factors as factors
from ._common import allow, switched

logger = logging.getLogger("flask_tokenauth")


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


@switched("totp_enabled")
@factors.enrolment_view
def enroll() -> Response:
    """A new secret for the caller's authenticator app, unconfirmed:
    ``{secret, otpauthUri, qrSvg}``.  A secret waiting for confirmation is
    replaced; a confirmed one must be removed first (``409
    TOTP_ALREADY_ENABLED``)."""
    allow("POST")
    state = get_state()
    user, user_id = factors.caller(state)
    with state.db.begin() as conn:
        if factors.has_usable_factor(state, conn, user_id):
            factors.require_to_add_factor()
        try:
            secret = totp.begin(state.settings, conn, user_id)
        except totp.AlreadyEnabled:
            raise TotpAlreadyEnabled() from None
    issuer = totp.issuer(state.settings, current_app.name)
    uri = totp.provisioning_uri(secret, state.user_store.login_of(user), issuer)
    return jsonify(secret=secret, otpauthUri=uri, qrSvg=totp.qr_svg(uri))


@switched("totp_enabled")
@factors.enrolment_view
def confirm() -> Response:
    """``{code}``: a first code of the enrolled secret turns it on, and
    upgrades the caller's session as ``/mfa/verify`` does.  Answers as
    ``/login`` (``{user, accessToken}``, the rotated refresh cookie) with
    ``recoveryCodes`` (ten new ones when the user had none left, a first
    factor; else ``null``) and ``recoveryCodesLeft``.  A wrong code counts
    against the account's second-factor budget (``MFA_CODE_INVALID``)."""
    allow("POST")
    state = get_state()
    code = str(TOTP_CONFIRM.read()["code"])
    user, user_id = factors.caller(state)
    attempt = lockout.guard(state, "user:" + user_id, lockout.SECOND_FACTOR)
    codes: list[str] | None = None
    with state.db.begin() as conn:
        # Asked again: a factor (a passkey) may have come since the enrolment
        # began, and this confirmation upgrades the session.
        if factors.has_usable_factor(state, conn, user_id):
            factors.require_to_add_factor()
        try:
            confirmed = totp.confirm(state.settings, conn, user_id, code)
        except totp.NotEnrolled:
            raise TotpNotEnabled() from None
        except crypto.Unreadable as e:
            factors.log_unreadable(e, user_id)
            confirmed = False
        if confirmed and recovery.remaining(conn, user_id) == 0:
            codes = recovery.generate(state.settings, conn, user_id)
        left = recovery.remaining(conn, user_id)
    if not confirmed:
        attempt.failed()
        signals.mfa_failed.send(
            _app(), user_id=_public_id(state, user_id), method="totp"
        )
        raise MfaCodeInvalid()
    # The session has just proved the authenticator too: upgraded as
    # /mfa/verify upgrades one (aal 2, the refresh token rotated), so that
    # a user who had to enrol (TOKENAUTH_MFA = "required") goes on at once.
    response = factors.complete(state, user)
    body = response.get_json()
    body.update(recoveryCodes=codes, recoveryCodesLeft=left)
    response.set_data(current_app.json.dumps(body))
    # The client has just proved the authenticator: a known device for the
    # second-factor limits (see .._lockout).
    attempt.trust_device(response)
    public = _public_id(state, user_id)
    signals.totp_enrolled.send(_app(), user_id=public)
    if codes is not None:
        signals.recovery_codes_generated.send(_app(), user_id=public)
    return response


@switched("totp_enabled")
@factors.fresh_view
def remove() -> Response:
    """``DELETE``: turn the authenticator app off (fresh authentication
    required).  With no factor left, the recovery codes go too (they would
    recover nothing).  Answers the state of the factors, as ``GET /mfa``."""
    allow("DELETE")
    state = get_state()
    _, user_id = factors.caller(state)
    with state.db.begin() as conn:
        if not totp.is_enabled(conn, user_id):
            raise TotpNotEnabled()
        assurance.require_to_change_factors(dict(current_claims))
        if not totp.remove(conn, user_id):
            raise TotpNotEnabled()
        if not mfa_status.has_factor(conn, user_id):
            recovery.delete_all(conn, user_id)
        body = mfa_status.summary(conn, user_id)
    signals.totp_removed.send(_app(), user_id=_public_id(state, user_id))
    return jsonify(body)


def _public_id(state: TokenAuthState, user_id: str) -> Any:
    """The user's id as signals carry it (the store's type)."""
    return state.user_store.user_id(user_id)
