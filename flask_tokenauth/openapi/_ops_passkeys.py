"""The operations of passkeys (``TOKENAUTH_PASSKEYS_ENABLED``): register,
list, rename, remove; sign in without a password; a passkey as the second
factor.  Each body declared here is the one its view reads.

The WebAuthn options the ``*/options`` operations answer, and the
credentials sent back, are described in :mod:`._webauthn`.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    EmailNotVerified,
    PasskeyChallengeInvalid,
    PasskeyInvalid,
    PasskeyNotFound,
    PasskeyRejected,
    ReauthenticationRequired,
)
from ._components import ref
from ._declare import (
    BEARER,
    PUBLIC,
    Body,
    Field,
    Operation,
    Operations,
    Reply,
    Schema,
)
from ._ops_factors import (
    ENROLLING_OK,
    FRESH,
    PENDING_OK,
    PENDING_REFUSED,
    RESTRICTED_REFUSED,
    TO_ADD_FACTOR,
    passkeys_on,
)
from ._webauthn import ASSERTION_CREDENTIAL, BASE64URL, REGISTRATION_CREDENTIAL
from ._webauthn import SCHEMAS as WEBAUTHN_SCHEMAS

#: A passkey's name: trimmed, 1 to 64 printable characters (the view's
#: ``_name``); the pattern refuses control characters and a blank name.
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f]"
NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": rf"^{_PRINTABLE}*[^\s\x00-\x1f\x7f-\x9f]{_PRINTABLE}*$",
    "description": "1 to 64 printable characters once trimmed.",
}

SCHEMAS: dict[str, Schema] = {
    **WEBAUTHN_SCHEMAS,
    "Passkey": {
        "type": "object",
        "properties": {
            "id": {**BASE64URL, "description": "The credential id."},
            "name": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "lastUsedAt": {"type": ["string", "null"], "format": "date-time"},
            "backedUp": {
                "type": "boolean",
                "description": "A synced passkey (backed up by its provider).",
            },
        },
        "required": ["id", "name", "createdAt", "lastUsedAt", "backedUp"],
    },
    "PasskeyReply": {
        "type": "object",
        "properties": {"passkey": ref("Passkey")},
        "required": ["passkey"],
    },
}


REGISTER = Body(
    (
        Field("credential", REGISTRATION_CREDENTIAL),
        Field("name", NAME, required=False),
    )
)
ASSERTION = Body((Field("credential", ASSERTION_CREDENTIAL),))
RENAME = Body((Field("name", NAME),))


def _op(**kwargs: Any) -> Operation:
    """An operation of this area: tag ``passkeys``, served while they are on."""
    kwargs.setdefault("security", BEARER)
    return Operation(tag="passkeys", when=passkeys_on, **kwargs)


def _link(operation: str, pointer: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": {"passkey_id": pointer}}


#: A passkey's answer feeds its rename and removal (stateful fuzzing, clients).
_ONE = "$response.body#/passkey/id"
_FIRST = "$response.body#/passkeys/0/id"
_CREATION = Reply(
    200, "The creation options.", ref("PublicKeyCredentialCreationOptionsJSON")
)
_REQUEST = Reply(
    200, "The request options.", ref("PublicKeyCredentialRequestOptionsJSON")
)
_SESSION = Reply(
    200,
    "The session (aal 2), as /login answers.",
    ref("Session"),
    ("SetRefreshCookie",),
)

OPERATIONS: Operations = {
    "passkeys": {
        "GET": _op(
            id="passkeysList",
            summary="The caller's passkeys",
            description=ENROLLING_OK.strip(),
            replies=(
                Reply(
                    200,
                    "The passkeys, oldest first.",
                    {
                        "type": "object",
                        "properties": {
                            "passkeys": {"type": "array", "items": ref("Passkey")}
                        },
                        "required": ["passkeys"],
                    },
                ),
            ),
            errors=PENDING_REFUSED,
            links={
                200: {
                    "renameFirstPasskey": _link("passkeysRename", _FIRST),
                    "removeFirstPasskey": _link("passkeysRemove", _FIRST),
                }
            },
        ),
    },
    "passkeys_one": {
        "PATCH": _op(
            id="passkeysRename",
            summary="Rename a passkey",
            body=RENAME,
            replies=(Reply(200, "The passkey, renamed.", ref("PasskeyReply")),),
            errors=(*RESTRICTED_REFUSED, PasskeyNotFound),
        ),
        "DELETE": _op(
            id="passkeysRemove",
            summary="Remove a passkey",
            description=FRESH.strip(),
            replies=(
                Reply(
                    200,
                    "Removed.",
                    {
                        "type": "object",
                        "properties": {"message": {"type": "string"}},
                        "required": ["message"],
                    },
                ),
            ),
            errors=(*RESTRICTED_REFUSED, ReauthenticationRequired, PasskeyNotFound),
        ),
    },
    "passkeys_register_options": {
        "POST": _op(
            id="passkeysRegisterOptions",
            summary="Start adding a passkey",
            description=(
                "The challenge is bound to the session. A user who has a factor"
                " already must have proved one recently." + ENROLLING_OK
            ),
            replies=(_CREATION,),
            errors=TO_ADD_FACTOR,
        ),
    },
    "passkeys_register": {
        "POST": _op(
            id="passkeysRegister",
            summary="Add a passkey",
            description=(
                "The answer of navigator.credentials.create() to"
                " /passkeys/register/options, asked with the same session."
                + ENROLLING_OK
            ),
            body=REGISTER,
            replies=(Reply(201, "The passkey.", ref("PasskeyReply")),),
            errors=(
                *TO_ADD_FACTOR,
                PasskeyChallengeInvalid,
                PasskeyRejected,
                PasskeyInvalid,
            ),
            links={
                201: {
                    "renamePasskey": _link("passkeysRename", _ONE),
                    "removePasskey": _link("passkeysRemove", _ONE),
                }
            },
        ),
    },
    "passkeys_login_options": {
        "POST": _op(
            id="passkeysLoginOptions",
            summary="Start signing in with a passkey",
            description=(
                "No user named: the authenticator offers its discoverable"
                " credentials. The challenge is bound to the sign-in cookie set"
                " here (5 minutes), which /passkeys/login must carry."
            ),
            security=PUBLIC,
            replies=(
                Reply(
                    200,
                    "The request options.",
                    ref("PublicKeyCredentialRequestOptionsJSON"),
                    ("SetPasskeyCookie",),
                ),
            ),
            rate_limited=True,
        ),
    },
    "passkeys_login": {
        "POST": _op(
            id="passkeysLogin",
            summary="Sign in with a passkey",
            description=(
                "The answer of navigator.credentials.get() to"
                " /passkeys/login/options, with its sign-in cookie; user"
                " verification required. A session of aal 2."
            ),
            security=PUBLIC,
            body=ASSERTION,
            replies=(_SESSION,),
            errors=(PasskeyChallengeInvalid, PasskeyInvalid, EmailNotVerified),
            rate_limited=True,
        ),
    },
    "passkeys_verify_options": {
        "POST": _op(
            id="passkeysVerifyOptions",
            summary="Start a passkey second factor (or re-authentication)",
            description=(
                "allowCredentials: the user's passkeys; the challenge bound to the"
                " session. Its answer goes to /passkeys/verify or, as"
                " `credential`, to /reauthenticate." + PENDING_OK
            ),
            replies=(_REQUEST,),
            errors=(PasskeyNotFound,),
        ),
    },
    "passkeys_verify": {
        "POST": _op(
            id="passkeysVerify",
            summary="Complete the second factor with a passkey",
            description=(
                "The answer of navigator.credentials.get() to"
                " /passkeys/verify/options, asked with the same session." + PENDING_OK
            ),
            body=ASSERTION,
            replies=(_SESSION,),
            errors=(PasskeyChallengeInvalid, PasskeyInvalid),
            rate_limited=True,
        ),
    },
}
