"""The operations of the core routes: register, login, refresh and logout.
Each body declared here is the one its view reads (``CREDENTIALS.read()``);
the sessions and the password change are in :mod:`._ops_sessions`, the
public documents (the browser client, the keys, this description) in
:mod:`._ops_public`, the app-dependent parts of the schemas (an address,
a password's lengths) in :mod:`._limits`.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    CrossSiteRequest,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    InvalidPassword,
    RefreshTokenAmbiguous,
    RefreshTokenError,
    RefreshTokenExpired,
    RefreshTokenMissing,
    RefreshTokenReused,
    RefreshTokenRevoked,
    TokenAuthError,
)
from ._components import ref
from ._declare import (
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
from ._limits import POLICY_ERRORS, login_limits, new_password_limits, password_limits

# -- The bodies -----------------------------------------------------------------


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

# -- The answers ----------------------------------------------------------------


def error_schema(*classes: type[TokenAuthError]) -> Schema:
    """The body of an error reply declared by hand (one that carries more
    headers than the document's own): an ``Error`` of these codes."""
    codes = list(dict.fromkeys(cls.error_code for cls in classes))
    return {"allOf": [ref("Error"), {"properties": {"code": {"enum": codes}}}]}


def object_schema(properties: dict[str, Any], *required: str) -> Schema:
    """An object with these members, ``required`` of them required."""
    return {"type": "object", "properties": properties, "required": list(required)}


MESSAGE = object_schema({"message": {"type": "string"}}, "message")
REGISTERED_UNVERIFIED = object_schema(
    {"user": ref("User"), "message": {"type": "string"}}, "user", "message"
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
}
