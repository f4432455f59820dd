"""The shapes many operations share: the error body, the user, a session's
answer, the headers, the security schemes, and the errors that a body or a
token implies (added to every such operation by :mod:`._document`)."""

from __future__ import annotations

from typing import Any

from .._config import Settings
from .._passkey_challenges import COOKIE_SUFFIX
from ..errors import (
    DatabaseUnavailable,
    InvalidJSON,
    PayloadTooLarge,
    RateLimited,
    RevocationStoreUnavailable,
    TokenAuthError,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    UnsupportedMediaType,
    UserNotFound,
    ValidationError,
)
from ._declare import Schema


def ref(name: str) -> Schema:
    """A reference to ``components.schemas.<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


#: Errors of every operation that reads a JSON body.
BODY_ERRORS: tuple[type[TokenAuthError], ...] = (
    InvalidJSON,
    ValidationError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
#: Errors of every operation that needs an access token.
BEARER_ERRORS: tuple[type[TokenAuthError], ...] = (
    TokenMissing,
    TokenInvalid,
    TokenExpired,
    TokenRevoked,
    UserNotFound,
)
#: Errors any operation may answer: a store that is down.
ALWAYS_ERRORS: tuple[type[TokenAuthError], ...] = (
    DatabaseUnavailable,
    RevocationStoreUnavailable,
)
RATE_LIMIT_ERRORS: tuple[type[TokenAuthError], ...] = (RateLimited,)


def schemas(login: str) -> dict[str, Any]:
    """``components.schemas``: the shared bodies.  ``login`` is the user
    store's login field (``email`` unless the host's store says else)."""
    return {
        "Error": {
            "type": "object",
            "description": "Every error: a human message and a stable code.",
            "properties": {
                "error": {"type": "string"},
                "code": {"type": "string"},
            },
            "required": ["error", "code"],
        },
        "User": {
            "type": "object",
            "description": (
                "The user as the user store shows it: its id and login, and"
                " emailVerified while address verification is on. A host's"
                " store may add members."
            ),
            "properties": {
                "id": {"type": ["string", "integer"]},
                login: {"type": "string"},
                "emailVerified": {"type": "boolean"},
            },
            "required": ["id", login],
        },
        "Session": {
            "type": "object",
            "description": (
                "A new session: the user, a short-lived access token (a JWT) and,"
                " in the Set-Cookie header, the refresh token. mfaRequired: the"
                " session waits for its second factor; mfaEnrollmentRequired: it"
                " may only enrol one."
            ),
            "properties": {
                "user": ref("User"),
                "accessToken": {"type": "string"},
                "mfaRequired": {"type": "boolean"},
                "mfaEnrollmentRequired": {"type": "boolean"},
            },
            "required": ["user", "accessToken"],
        },
        "AccessToken": {
            "type": "object",
            "properties": {"accessToken": {"type": "string"}},
            "required": ["accessToken"],
        },
    }


def headers(settings: Settings) -> dict[str, Any]:
    """``components.headers``."""
    cookie = settings.cookie_name
    return {
        "SetRefreshCookie": {
            "description": (
                f"The refresh token in the `{cookie}` cookie: HttpOnly,"
                " SameSite=Strict, restricted to the blueprint's path; after a"
                " password, with the device cookie (below)."
            ),
            "schema": {"type": "string"},
        },
        "SetDeviceCookie": {
            "description": (
                f"The `{settings.device_cookie_name}` cookie: this client proved"
                " the account's password, so the account's wrong-password limit"
                " spares it."
            ),
            "schema": {"type": "string"},
        },
        "SetPasskeyCookie": {
            "description": (
                f"The passkey sign-in cookie `{cookie}{COOKIE_SUFFIX}` (HttpOnly, 5"
                " minutes), to which the challenge is bound: /passkeys/login"
                " must carry it."
            ),
            "schema": {"type": "string"},
        },
        "ClearRefreshCookie": {
            "description": f"Expires the `{cookie}` cookie.",
            "schema": {"type": "string"},
        },
        "WWWAuthenticate": {
            "description": (
                "The Bearer challenge (RFC 6750): error, error_description and,"
                " for a step-up, max_age (RFC 9470)."
            ),
            "schema": {"type": "string"},
        },
        "RetryAfter": {
            "description": "Seconds before the limit lets the next request through.",
            "schema": {"type": "integer", "minimum": 1},
        },
        "ETag": {
            "description": (
                "The version of the body: sent back in If-None-Match, it gets"
                " a 304 while the body is the same."
            ),
            "schema": {"type": "string"},
        },
    }


def security_schemes(settings: Settings) -> dict[str, Any]:
    """``components.securitySchemes``: the access token and the refresh
    cookie."""
    return {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A short-lived access token from a login or /refresh.",
        },
        "refreshCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.cookie_name,
            "description": (
                "The opaque refresh token, set by a login; rotated on every use."
            ),
        },
    }
