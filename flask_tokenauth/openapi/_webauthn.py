"""WebAuthn Level 3's JSON forms, as the API description shows them: the
options the ``webauthn`` package writes (``options_to_json``:
``PublicKeyCredentialCreationOptionsJSON``, ``...RequestOptionsJSON``,
binary members base64url) and the credentials a browser sends back
(``PublicKeyCredential.toJSON()``: ``RegistrationResponseJSON``,
``AuthenticationResponseJSON``).  Described member by member, so a client
generator and a fuzzer know them; open to members a later version adds."""

from __future__ import annotations

from typing import Any

from ._components import ref
from ._declare import Schema

#: Bytes, as WebAuthn's JSON forms carry them.
BASE64URL: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}
_USER_VERIFICATION = {
    "type": "string",
    "enum": ["required", "preferred", "discouraged"],
}


def _credential(kind: str, response: dict[str, Any], required: list[str]) -> Schema:
    """A ``PublicKeyCredential`` as ``toJSON()`` gives it (``kind``: the
    WebAuthn name of the form)."""
    return {
        "type": "object",
        "description": f"The browser's PublicKeyCredential as JSON ({kind}).",
        "properties": {
            "id": BASE64URL,
            "rawId": BASE64URL,
            "type": {"type": "string", "enum": ["public-key"]},
            "response": {
                "type": "object",
                "properties": response,
                "required": required,
            },
            "authenticatorAttachment": {
                "type": ["string", "null"],
                "enum": ["platform", "cross-platform", None],
            },
            "clientExtensionResults": {"type": "object"},
        },
        "required": ["id", "rawId", "type", "response"],
    }


REGISTRATION_CREDENTIAL = _credential(
    "RegistrationResponseJSON",
    {
        "clientDataJSON": BASE64URL,
        "attestationObject": BASE64URL,
        "transports": {"type": "array", "items": {"type": "string"}},
    },
    ["clientDataJSON", "attestationObject"],
)
ASSERTION_CREDENTIAL = _credential(
    "AuthenticationResponseJSON",
    {
        "clientDataJSON": BASE64URL,
        "authenticatorData": BASE64URL,
        "signature": BASE64URL,
        "userHandle": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]*$"},
    },
    ["clientDataJSON", "authenticatorData", "signature"],
)

SCHEMAS: dict[str, Schema] = {
    "PublicKeyCredentialDescriptorJSON": {
        "type": "object",
        "properties": {
            "id": BASE64URL,
            "type": {"type": "string", "enum": ["public-key"]},
            "transports": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "type"],
    },
    "PublicKeyCredentialCreationOptionsJSON": {
        "type": "object",
        "description": (
            "WebAuthn L3 creation options (binary members base64url), for"
            " PublicKeyCredential.parseCreationOptionsFromJSON() and"
            " navigator.credentials.create(): a discoverable credential, no"
            " attestation, the user's passkeys excluded."
        ),
        "properties": {
            "rp": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                "required": ["name"],
            },
            "user": {
                "type": "object",
                "properties": {
                    "id": BASE64URL,
                    "name": {"type": "string"},
                    "displayName": {"type": "string"},
                },
                "required": ["id", "name", "displayName"],
            },
            "challenge": BASE64URL,
            "pubKeyCredParams": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["public-key"]},
                        "alg": {
                            "type": "integer",
                            "description": "A COSE algorithm (-7: ES256).",
                        },
                    },
                    "required": ["type", "alg"],
                },
            },
            "timeout": {"type": "integer", "description": "Milliseconds."},
            "excludeCredentials": {
                "type": "array",
                "items": ref("PublicKeyCredentialDescriptorJSON"),
            },
            "authenticatorSelection": {
                "type": "object",
                "properties": {
                    "authenticatorAttachment": {
                        "type": "string",
                        "enum": ["platform", "cross-platform"],
                    },
                    "residentKey": {
                        "type": "string",
                        "enum": ["required", "preferred", "discouraged"],
                    },
                    "requireResidentKey": {"type": "boolean"},
                    "userVerification": _USER_VERIFICATION,
                },
            },
            "attestation": {
                "type": "string",
                "enum": ["none", "indirect", "direct", "enterprise"],
            },
            "hints": {"type": "array", "items": {"type": "string"}},
            "extensions": {"type": "object"},
        },
        "required": ["rp", "user", "challenge", "pubKeyCredParams"],
    },
    "PublicKeyCredentialRequestOptionsJSON": {
        "type": "object",
        "description": (
            "WebAuthn L3 request options (binary members base64url), for"
            " PublicKeyCredential.parseRequestOptionsFromJSON() and"
            " navigator.credentials.get(). allowCredentials is empty for a"
            " sign-in (the authenticator offers its discoverable credentials)."
        ),
        "properties": {
            "challenge": BASE64URL,
            "timeout": {"type": "integer", "description": "Milliseconds."},
            "rpId": {"type": "string"},
            "allowCredentials": {
                "type": "array",
                "items": ref("PublicKeyCredentialDescriptorJSON"),
            },
            "userVerification": _USER_VERIFICATION,
            "hints": {"type": "array", "items": {"type": "string"}},
            "extensions": {"type": "object"},
        },
        "required": ["challenge"],
    },
}
