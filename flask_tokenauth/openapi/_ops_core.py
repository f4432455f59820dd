"""The operations of the core routes: register, login, refresh, logout,
the sessions and the password change.  Each body declared here is the one
its view reads (``CREDENTIALS.read()``); the public documents (the browser
client, the keys, this description) are in :mod:`._ops_public`.

The schemas are as precise as the views: a password's lengths are the app's
settings, an address is ``format: email``, so that a value a fuzzer draws
from the schema is one the view takes (the policy's other checks, a common
password or one containing the login, cannot be said in JSON Schema: they
are the operation's ``INVALID_PASSWORD`` family of errors).
"""

from __future__ import annotations

from typing import Any

from .._config import Settings
from .._validation import MAX_EMAIL_LENGTH
from ..errors import (
    CrossSiteRequest,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    InvalidPassword,
    MfaEnrollmentRequired,
    MfaRequired,
    PasswordHasContextWord,
    PasswordTooCommon,
    RefreshTokenAmbiguous,
    RefreshTokenError,
    RefreshTokenExpired,
    RefreshTokenMissing,
    RefreshTokenReused,
    RefreshTokenRevoked,
    SessionNotFound,
    TokenAuthError,
    WrongPassword,
)
from ._components import ref
from ._declare import (
    BEARER,
    LOGIN,
    REFRESH_COOKIE,
    REFRESH_COOKIE_OPTIONAL,
    Body,
    Field,
    Operation,
    Operations,
    Reply,
    Schema,
)

# -- The bodies -----------------------------------------------------------------


def login_limits(settings: Settings, login: str) -> Schema:
    """An address is an address (the default store's login); a host's
    username is whatever its store normalizes."""
    if login != "email":
        return {"minLength": 1}
    return {"format": "email", "maxLength": MAX_EMAIL_LENGTH}


def new_password_limits(settings: Settings, login: str) -> Schema:
    """A password the policy may take: its lengths (the minimum counts
    visible characters, which JSON Schema cannot say; a string of blanks
    is refused with ``INVALID_PASSWORD``)."""
    return {
        "minLength": settings.password_min_length,
        "maxLength": settings.password_max_length,
    }


def password_limits(settings: Settings, login: str) -> Schema:
    """A password to check: not empty, not longer than any we store."""
    return {"minLength": 1, "maxLength": settings.password_max_length}


#: The password policy's errors (``INVALID_PASSWORD`` and its refinements).
POLICY_ERRORS: tuple[type[TokenAuthError], ...] = (
    InvalidPassword,
    PasswordTooCommon,
    PasswordHasContextWord,
)

_LOGIN_FIELD = Field(
    LOGIN,
    {"type": "string"},
    description="The login (an address by default).",
    limits=login_limits,
)

#: ``/login``: a login and a password.
CREDENTIALS = Body(
    (
        _LOGIN_FIELD,
        Field("password", {"type": "string"}, limits=password_limits),
    )
)
#: ``/register``: the same members, the password under the policy.
REGISTRATION = Body(
    (
        _LOGIN_FIELD,
        Field(
            "password",
            {"type": "string"},
            description=(
                "The new password: within the configured lengths (visible"
                " characters), not a common password, not containing the login"
                " or the service's name."
            ),
            limits=new_password_limits,
        ),
    )
)
#: ``/password``.
PASSWORD_CHANGE = Body(
    (
        Field("currentPassword", {"type": "string", "minLength": 1}),
        Field(
            "newPassword",
            {"type": "string"},
            description="Under the same policy as a registration's password.",
            limits=new_password_limits,
        ),
    )
)

# -- The answers ----------------------------------------------------------------


def error_schema(*classes: type[TokenAuthError]) -> Schema:
    """The body of an error reply declared by hand (one that carries more
    headers than the document's own): an ``Error`` of these codes."""
    codes = list(dict.fromkeys(cls.error_code for cls in classes))
    return {"allOf": [ref("Error"), {"properties": {"code": {"enum": codes}}}]}


def _object(properties: dict[str, Any], *required: str) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required)}


MESSAGE = _object({"message": {"type": "string"}}, "message")
REVOKED = _object(
    {
        "message": {"type": "string"},
        "revoked": {
            "type": "integer",
            "minimum": 0,
            "description": "How many sessions this ended.",
        },
    },
    "message",
    "revoked",
)
REGISTERED_UNVERIFIED = _object(
    {"user": ref("User"), "message": {"type": "string"}}, "user", "message"
)
_TIME = {"type": "string", "format": "date-time"}
SESSIONS = _object(
    {
        "sessions": {
            "type": "array",
            "description": "Most recently used first.",
            "items": _object(
                {
                    "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    "userAgent": {"type": ["string", "null"]},
                    "ipAddress": {"type": ["string", "null"]},
                    "createdAt": _TIME,
                    "lastUsedAt": _TIME,
                    "expiresAt": _TIME,
                    "current": {
                        "type": "boolean",
                        "description": "The session of the token presented.",
                    },
                },
                "id",
                "userAgent",
                "ipAddress",
                "createdAt",
                "lastUsedAt",
                "expiresAt",
                "current",
            ),
        }
    },
    "sessions",
)

#: What every view that takes a plain ``@login_required`` may answer besides
#: a bad token: a session that waits for its second factor, or a user who
#: must enrol one first (``TOKENAUTH_MFA = "required"``).
SIGNED_IN_ERRORS: tuple[type[TokenAuthError], ...] = (
    MfaRequired,
    MfaEnrollmentRequired,
)

#: Every refusal of a refresh: the cookie is cleared with it.
REFRESH_ERRORS: tuple[type[TokenAuthError], ...] = (
    RefreshTokenMissing,
    RefreshTokenError,
    RefreshTokenExpired,
    RefreshTokenRevoked,
    RefreshTokenReused,
    RefreshTokenAmbiguous,
)

_SESSION_LINKS = {
    "refresh": {
        "operationId": "refresh",
        "description": "The refresh cookie set here gets the next access token.",
    },
    "logout": {"operationId": "logout", "description": "Ends this session."},
}

OPERATIONS: Operations = {
    "register": {
        "POST": Operation(
            id="register",
            summary="Create an account and start a session",
            description=(
                "The account and its first session, or, while address"
                " verification is `required`, the account without a session"
                " (log in once the mailed link is followed). In the"
                " enumeration-safe mode (`TOKENAUTH_REGISTER_ENUMERATION_SAFE`)"
                " every well-formed registration is answered 202, a taken login"
                " as a new one."
            ),
            tag="auth",
            body=REGISTRATION,
            replies=(
                Reply(
                    201,
                    "The account and its session.",
                    ref("Session"),
                    ("SetRefreshCookie",),
                    when=lambda s: (
                        not s.register_enumeration_safe
                        and s.email_verification != "required"
                    ),
                ),
                Reply(
                    201,
                    "The account, without a session until its address is verified.",
                    REGISTERED_UNVERIFIED,
                    ("SetDeviceCookie",),
                    when=lambda s: (
                        not s.register_enumeration_safe
                        and s.email_verification == "required"
                    ),
                ),
                Reply(
                    202,
                    "Received: the account is created (or its owner is mailed)"
                    " after the answer, the same for a taken login as a new one.",
                    MESSAGE,
                    when=lambda s: s.register_enumeration_safe,
                ),
            ),
            errors=(InvalidEmail, *POLICY_ERRORS, EmailTaken),
            rate_limited=True,
            when=lambda settings: settings.register_enabled,
            links={
                201: {
                    "login": {
                        "operationId": "login",
                        "requestBody": "$request.body",
                        "description": "Log in with the credentials just registered.",
                    }
                }
            },
        ),
    },
    "login": {
        "POST": Operation(
            id="login",
            summary="Log in with a password",
            description=(
                "A wrong password and an unknown login get the same 401. A user"
                " with a second factor gets a session that waits for it"
                " (`mfaRequired`); one who must enrol one, a session that may"
                " only do that (`mfaEnrollmentRequired`). Wrong passwords are"
                " limited per account and per client (429 with Retry-After)."
            ),
            tag="auth",
            body=CREDENTIALS,
            replies=(
                Reply(200, "The session.", ref("Session"), ("SetRefreshCookie",)),
            ),
            errors=(
                InvalidEmail,
                InvalidPassword,
                InvalidCredentials,
                EmailNotVerified,
            ),
            rate_limited=True,
            links={200: _SESSION_LINKS},
        ),
    },
    "refresh": {
        "POST": Operation(
            id="refresh",
            summary="Get a new access token with the refresh cookie",
            description=(
                "Rotates the refresh token: the answer sets its successor (a"
                " repeat within the grace interval gets a token without a new"
                " cookie). A spent token presented again revokes its session."
                " Refused from another site (`Origin`, `Sec-Fetch-Site`)."
            ),
            tag="auth",
            security=REFRESH_COOKIE,
            query={
                # Any string: a hint, which the view ignores unless it is a
                # session id (schemathesis found a pattern here that the
                # view does not enforce).
                "session": {
                    "type": "string",
                    "description": (
                        "The session the page holds, which picks its cookie when"
                        " several of the name were sent; ignored unless a"
                        " session id."
                    ),
                }
            },
            replies=(
                Reply(
                    200,
                    "A new access token.",
                    ref("AccessToken"),
                    ("SetRefreshCookie",),
                ),
                Reply(
                    401,
                    "No usable refresh token: the cookie is cleared.",
                    error_schema(*REFRESH_ERRORS),
                    ("WWWAuthenticate", "ClearRefreshCookie"),
                ),
            ),
            errors=(CrossSiteRequest,),
            rate_limited=True,
            links={200: _SESSION_LINKS},
        ),
    },
    "logout": {
        "POST": Operation(
            id="logout",
            summary="End the session of the refresh cookie",
            description=(
                "Revokes the session of the cookie sent, if any, and clears the"
                " cookie: 200 with or without one. Refused from another site."
            ),
            tag="auth",
            security=REFRESH_COOKIE_OPTIONAL,
            replies=(Reply(200, "Logged out.", MESSAGE, ("ClearRefreshCookie",)),),
            errors=(CrossSiteRequest,),
        ),
    },
    "list_sessions": {
        "GET": Operation(
            id="listSessions",
            summary="The caller's active sessions",
            tag="sessions",
            security=BEARER,
            replies=(Reply(200, "The sessions.", SESSIONS),),
            errors=SIGNED_IN_ERRORS,
            links={
                200: {
                    "revokeSession": {
                        "operationId": "revokeSession",
                        "parameters": {"session_id": "$response.body#/sessions/0/id"},
                    }
                }
            },
        ),
    },
    "revoke_session": {
        "DELETE": Operation(
            id="revokeSession",
            summary="End one of the caller's sessions",
            description="Another user's session, or none, is 404 alike.",
            tag="sessions",
            security=BEARER,
            replies=(Reply(200, "Revoked.", MESSAGE),),
            errors=(*SIGNED_IN_ERRORS, SessionNotFound),
        ),
    },
    "logout_others": {
        "POST": Operation(
            id="logoutOthers",
            summary="End every session of the caller but this one",
            tag="sessions",
            security=BEARER,
            replies=(Reply(200, "The others are ended.", REVOKED),),
            errors=SIGNED_IN_ERRORS,
        ),
    },
    "logout_all": {
        "POST": Operation(
            id="logoutAll",
            summary="End every session of the caller, this one included",
            description="Every access token issued to the user so far stops working.",
            tag="sessions",
            security=BEARER,
            replies=(
                Reply(200, "Every session is ended.", REVOKED, ("ClearRefreshCookie",)),
            ),
            errors=SIGNED_IN_ERRORS,
        ),
    },
    "change_password": {
        "POST": Operation(
            id="changePassword",
            summary="Change the password and end every other session",
            description=(
                "Ends every session of the user, this one included, and starts"
                " a new one for the caller (its access token and refresh"
                " cookie). A wrong current password counts against the same"
                " limits as a login's."
            ),
            tag="account",
            security=BEARER,
            body=PASSWORD_CHANGE,
            replies=(
                Reply(
                    200,
                    "The new session's access token.",
                    ref("AccessToken"),
                    ("SetRefreshCookie",),
                ),
            ),
            errors=(*POLICY_ERRORS, WrongPassword, *SIGNED_IN_ERRORS),
            rate_limited=True,
            when=lambda settings: settings.password_change_enabled,
        ),
    },
}
