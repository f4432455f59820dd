"""The operations of the second factor: the MFA status and verification,
recovery codes, authenticator apps (TOTP) and the step-up
(``/reauthenticate``); the passkeys' are in :mod:`._ops_passkeys`.  Each
body declared here is the one its view reads (``MFA_VERIFY.read()``).

A session's token may be restricted (see ``flask_tokenauth._authlevel``):
*pending*, waiting for its second factor, or *enrolling*, of a user who
must set one up first (``TOKENAUTH_MFA = "required"``).  Each operation
says which of them it lets through; the others answer ``401 MFA_REQUIRED``
or ``403 MFA_ENROLLMENT_REQUIRED``, which the errors listed here (beside
the step-up's ``401 REAUTHENTICATION_REQUIRED``) tell a client.
"""

from __future__ import annotations

from typing import Any

from .._config import Settings
from ..errors import (
    InvalidPassword,
    MfaCodeInvalid,
    MfaEnrollmentRequired,
    MfaNotEnabled,
    MfaRequired,
    NotFound,
    PasskeyChallengeInvalid,
    PasskeyInvalid,
    ReauthenticationRequired,
    TokenAuthError,
    TotpAlreadyEnabled,
    TotpNotEnabled,
    WrongPassword,
)
from ._components import ref
from ._declare import BEARER, Body, Field, Operation, Operations, Reply, Schema
from ._webauthn import ASSERTION_CREDENTIAL

#: A token of a session waiting for its second factor is refused.
PENDING_REFUSED: tuple[type[TokenAuthError], ...] = (MfaRequired,)
#: Neither a pending nor an enrolling token passes (an ordinary view).
RESTRICTED_REFUSED: tuple[type[TokenAuthError], ...] = (
    MfaRequired,
    MfaEnrollmentRequired,
)
#: Adding a factor for a user who has one: a factor proved, recently.
TO_ADD_FACTOR: tuple[type[TokenAuthError], ...] = (
    MfaRequired,
    ReauthenticationRequired,
)

#: Where a pending session may call an operation, its description says so.
PENDING_OK = (
    " A session waiting for its second factor (`mfaRequired`) may call it, and"
    " so may one that must enrol a factor first (`mfaEnrollmentRequired`)."
)
ENROLLING_OK = (
    " A session that must enrol a factor first (`mfaEnrollmentRequired`) may"
    " call it; one waiting for its second factor is refused (401 MFA_REQUIRED)."
)
FRESH = (
    " Needs a session that proved a second factor (401 MFA_REQUIRED) and"
    " authenticated within TOKENAUTH_REAUTHENTICATION_MAX_AGE (401"
    " REAUTHENTICATION_REQUIRED, its challenge naming `max_age`: call"
    " /reauthenticate)."
)


def any_factor(settings: Settings) -> bool:
    """``/mfa``, ``/mfa/verify``, ``/mfa/recovery-codes``: served while a
    factor kind is on."""
    return settings.totp_enabled or settings.passkeys_enabled


def totp_on(settings: Settings) -> bool:
    return settings.totp_enabled


def passkeys_on(settings: Settings) -> bool:
    return settings.passkeys_enabled


#: What a user may type between a code's characters (``123 456``).
_SEP = r"[ \u00a0-]*"
#: A six-digit authenticator-app code, separators allowed (``_totp.normalize``).
TOTP_CODE: Schema = {
    "type": "string",
    "pattern": rf"^{_SEP}(?:[0-9]{_SEP}){{6}}$",
    "examples": ["123456"],
}
#: A recovery code: ten characters of base32, any case, separators allowed
#: (``_recovery_codes.normalize``).
RECOVERY_CODE: Schema = {
    "type": "string",
    "pattern": rf"^{_SEP}(?:[a-zA-Z2-7]{_SEP}){{10}}$",
    "examples": ["abcde-fgh23"],
}
_DATE_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Schema] = {
    "MfaStatus": {
        "type": "object",
        "description": "The caller's second factors.",
        "properties": {
            "totp": {
                "type": "object",
                "properties": {
                    "enabled": {"type": "boolean"},
                    "confirmedAt": _DATE_TIME_OR_NULL,
                },
                "required": ["enabled", "confirmedAt"],
            },
            "passkeys": {
                "type": "integer",
                "minimum": 0,
                "description": "How many passkeys the user has.",
            },
            "recoveryCodesLeft": {"type": "integer", "minimum": 0},
        },
        "required": ["totp", "passkeys", "recoveryCodesLeft"],
    },
    "RecoveryCodes": {
        "type": "object",
        "description": "New recovery codes, shown once; the older ones are dead.",
        "properties": {
            "recoveryCodes": {"type": "array", "items": RECOVERY_CODE},
            "recoveryCodesLeft": {"type": "integer", "minimum": 0},
        },
        "required": ["recoveryCodes", "recoveryCodesLeft"],
    },
    "TotpEnrollment": {
        "type": "object",
        "description": (
            "A new authenticator-app secret, waiting for a first code of it"
            " (/mfa/totp/confirm)."
        ),
        "properties": {
            "secret": {"type": "string", "description": "Base32, to type in."},
            "otpauthUri": {
                "type": "string",
                "pattern": "^otpauth://totp/",
                "description": "The otpauth:// URI the QR code holds.",
            },
            "qrSvg": {
                "type": "string",
                "contentMediaType": "image/svg+xml",
                "description": "The URI as a QR code: an inline SVG element.",
            },
        },
        "required": ["secret", "otpauthUri", "qrSvg"],
    },
    "TotpConfirmation": {
        "description": (
            "The upgraded session, with the recovery codes: ten new ones at a"
            " first factor (shown once), else null."
        ),
        "allOf": [
            ref("Session"),
            {
                "type": "object",
                "properties": {
                    "recoveryCodes": {
                        "type": ["array", "null"],
                        "items": RECOVERY_CODE,
                    },
                    "recoveryCodesLeft": {"type": "integer", "minimum": 0},
                },
                "required": ["recoveryCodes", "recoveryCodesLeft"],
            },
        ],
    },
}

MFA_VERIFY = Body(
    (
        Field(
            "code",
            TOTP_CODE,
            required=False,
            description="An authenticator-app code.",
            when=totp_on,
        ),
        Field("recoveryCode", RECOVERY_CODE, required=False),
    ),
    # The view's order: a recovery code, if sent, is the one checked.
    one_of=(("recoveryCode",), ("code",)),
)
TOTP_CONFIRM = Body(
    (Field("code", TOTP_CODE, description="A first code of the new secret."),)
)
REAUTHENTICATE = Body(
    (
        Field("password", {"type": "string", "minLength": 1}, required=False),
        Field("code", TOTP_CODE, required=False, when=totp_on),
        Field(
            "credential",
            ASSERTION_CREDENTIAL,
            required=False,
            description="A passkey's answer to /passkeys/verify/options.",
            when=passkeys_on,
        ),
    ),
    one_of=(("password",), ("code",), ("credential",)),
)

_SESSION = Reply(
    200,
    "The session, upgraded: aal 2; the refresh token rotated.",
    ref("Session"),
    ("SetRefreshCookie",),
)
_FACTOR_STATUS = Reply(200, "The caller's factors.", ref("MfaStatus"))


def _op(**kwargs: Any) -> Operation:
    """An operation of this area: tag ``mfa``, a Bearer token."""
    return Operation(tag="mfa", security=BEARER, **kwargs)


OPERATIONS: Operations = {
    "mfa": {
        "GET": _op(
            id="mfaStatus",
            summary="The caller's second factors",
            description="Which factors to offer." + PENDING_OK,
            replies=(_FACTOR_STATUS,),
            when=any_factor,
        ),
    },
    "mfa_verify": {
        "POST": _op(
            id="mfaVerify",
            summary="Complete the second factor with a code",
            description=(
                "An authenticator-app code or a recovery code (a used one is"
                " mailed about). Every wrong code counts against the account's"
                " second-factor budget (429 when spent). A `code` while"
                " authenticator apps are off is 404." + PENDING_OK
            ),
            body=MFA_VERIFY,
            replies=(_SESSION,),
            errors=(MfaCodeInvalid, NotFound),
            rate_limited=True,
            when=any_factor,
        ),
    },
    "mfa_recovery_codes": {
        "POST": _op(
            id="mfaRecoveryCodes",
            summary="Replace the recovery codes",
            description="Ten new codes; every older one stops working." + FRESH,
            replies=(Reply(200, "The new codes.", ref("RecoveryCodes")),),
            errors=(*RESTRICTED_REFUSED, ReauthenticationRequired, MfaNotEnabled),
            when=any_factor,
        ),
    },
    "mfa_totp": {
        "DELETE": _op(
            id="mfaTotpRemove",
            summary="Remove the authenticator app",
            description=("With no factor left, the recovery codes go too." + FRESH),
            replies=(_FACTOR_STATUS,),
            errors=(*RESTRICTED_REFUSED, ReauthenticationRequired, TotpNotEnabled),
            when=totp_on,
        ),
    },
    "mfa_totp_enroll": {
        "POST": _op(
            id="mfaTotpEnroll",
            summary="Start setting up an authenticator app",
            description=(
                "A new secret, unconfirmed until /mfa/totp/confirm (a waiting one"
                " is replaced). A user who has a factor already must have proved"
                " one recently." + ENROLLING_OK
            ),
            replies=(Reply(200, "The secret to scan.", ref("TotpEnrollment")),),
            errors=(*TO_ADD_FACTOR, TotpAlreadyEnabled),
            when=totp_on,
        ),
    },
    "mfa_totp_confirm": {
        "POST": _op(
            id="mfaTotpConfirm",
            summary="Turn the authenticator app on with a first code",
            description=(
                "Upgrades the session as /mfa/verify does. A wrong code counts"
                " against the second-factor budget." + ENROLLING_OK
            ),
            body=TOTP_CONFIRM,
            replies=(
                Reply(
                    200,
                    "The app is on; the session upgraded.",
                    ref("TotpConfirmation"),
                    ("SetRefreshCookie",),
                ),
            ),
            errors=(*TO_ADD_FACTOR, MfaCodeInvalid, TotpNotEnabled),
            rate_limited=True,
            when=totp_on,
        ),
    },
    "reauthenticate": {
        "POST": _op(
            id="reauthenticate",
            summary="Prove it is you again (a step-up)",
            description=(
                "The password, an authenticator-app `code` or a passkey"
                " `credential` (answering /passkeys/verify/options) renews the"
                " session's auth_time: the access token answered passes the views"
                " that want a recent authentication. A wrong password is 403"
                " WRONG_PASSWORD, counted as /login counts it; a `code` while"
                " authenticator apps are off is 404, a `credential` while passkeys"
                " are off 400."
            ),
            body=REAUTHENTICATE,
            replies=(Reply(200, "A renewed access token.", ref("AccessToken")),),
            errors=(
                *RESTRICTED_REFUSED,
                InvalidPassword,
                WrongPassword,
                MfaCodeInvalid,
                NotFound,
                PasskeyChallengeInvalid,
                PasskeyInvalid,
            ),
            rate_limited=True,
        ),
    },
}
