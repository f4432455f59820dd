"""The operations of the core routes: register, login, refresh, logout,
the sessions, the password change, the browser client, the public keys and
this description itself.  Each body declared here is the one its view
reads (``REGISTER.read()``)."""

from __future__ import annotations

from ..errors import EmailTaken, InvalidCredentials, InvalidEmail, InvalidPassword
from ._components import ref
from ._declare import LOGIN, Body, Field, Operation, Operations, Reply

CREDENTIALS = Body(
    (
        Field(
            LOGIN, {"type": "string"}, description="The login (an address by default)."
        ),
        Field("password", {"type": "string"}),
    )
)

OPERATIONS: Operations = {
    "register": {
        "POST": Operation(
            id="register",
            summary="Create an account and start a session",
            tag="auth",
            body=CREDENTIALS,
            replies=(
                Reply(
                    201,
                    "The account and its session.",
                    ref("Session"),
                    ("SetRefreshCookie",),
                ),
            ),
            errors=(InvalidEmail, InvalidPassword, EmailTaken),
            rate_limited=True,
            when=lambda settings: settings.register_enabled,
        ),
    },
    "login": {
        "POST": Operation(
            id="login",
            summary="Log in with a password",
            tag="auth",
            body=CREDENTIALS,
            replies=(
                Reply(200, "The session.", ref("Session"), ("SetRefreshCookie",)),
            ),
            errors=(InvalidEmail, InvalidCredentials),
            rate_limited=True,
        ),
    },
}
