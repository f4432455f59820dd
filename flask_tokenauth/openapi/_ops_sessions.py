"""The operations of a signed-in user's sessions (list them, end one, the
others or all) and of the password change; all need an access token.
``PASSWORD_CHANGE`` is the body ``/password`` reads."""

from __future__ import annotations

from ..errors import (
    MfaEnrollmentRequired,
    MfaRequired,
    SessionNotFound,
    TokenAuthError,
    WrongPassword,
)
from ._components import ref
from ._declare import BEARER, Body, Field, Operation, Operations, Reply
from ._limits import POLICY_ERRORS, new_password_limits
from ._ops_core import MESSAGE, object_schema

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

REVOKED = object_schema(
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
_TIME = {"type": "string", "format": "date-time"}
SESSIONS = object_schema(
    {
        "sessions": {
            "type": "array",
            "description": "Most recently used first.",
            "items": object_schema(
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


OPERATIONS: Operations = {
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
