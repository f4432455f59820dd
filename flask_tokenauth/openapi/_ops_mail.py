"""The operations of the mail flows: address verification, password reset,
address change and sign-in by email.  Each body declared here is the one
its view reads (``RESET_PASSWORD.read()``).

Every one of them is a :func:`..views._common.mail_flow` view: it answers
``404 NOT_FOUND`` while its setting is off (and is then left out of the
description, by ``when``) and also when the app's user store has no
addresses, which the settings cannot tell (so ``NOT_FOUND`` is among its
errors); and it counts the per-client mail limit
(``TOKENAUTH_RATELIMIT_MAIL``) before anything else: ``429``.  The tokens
these flows spend come by mail, so no answer here feeds the next request
(no OpenAPI ``links``).
"""

from __future__ import annotations

from .._config import Settings
from .._validation import MAX_EMAIL_LENGTH
from ..errors import (
    CodeInvalid,
    EmailTaken,
    InvalidEmail,
    InvalidPassword,
    LinkExpired,
    LinkInvalid,
    MfaEnrollmentRequired,
    MfaRequired,
    NotFound,
    PasswordHasContextWord,
    PasswordTooCommon,
    TokenAuthError,
    WrongPassword,
)
from ._components import ref
from ._declare import (
    BEARER,
    BEARER_OPTIONAL,
    Body,
    Field,
    Operation,
    Operations,
    Reply,
    Schema,
)

# -- The bodies -----------------------------------------------------------------

#: An address, as :func:`.._validation.normalize_email` takes it.
_EMAIL: Schema = {"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}
#: A mailed link's token (``<32 hex>.<base64url>``, see :mod:`.._linktokens`):
#: anything else is ``400 LINK_INVALID``.
_TOKEN: Schema = {
    "type": "string",
    "maxLength": 128,
    "pattern": "^[0-9a-fA-F]{32}\\.[A-Za-z0-9_-]+$",
}
_TOKEN_FIELD = Field(
    "token",
    _TOKEN,
    description="The token of the mailed link (in its fragment, `#token=`).",
)

#: ``{"token"}``: verify, confirm and cancel.
LINK_TOKEN = Body((_TOKEN_FIELD,))
#: ``{"email"}``: resend, forgot, sign-in by email.
EMAIL = Body((Field("email", _EMAIL),))
RESET_PASSWORD = Body(
    (
        _TOKEN_FIELD,
        Field(
            "password",
            {"type": "string"},
            description=(
                "The new password, checked as at registration"
                " (`TOKENAUTH_PASSWORD_MIN_LENGTH`, `..._MAX_LENGTH`, the"
                " common-password list)."
            ),
        ),
    )
)
#: In the order the view checks them.
CHANGE_EMAIL = Body(
    (
        Field(
            "password",
            {"type": "string", "minLength": 1},
            description="The account's current password.",
        ),
        Field("newEmail", _EMAIL, description="The address to change to."),
    )
)
EMAIL_LOGIN_VERIFY = Body(
    (
        Field("token", _TOKEN, required=False, description="The mailed link's token."),
        Field("email", _EMAIL, required=False, description="The address mailed."),
        Field(
            "code",
            {
                "type": "string",
                # Six digits; blanks and hyphens between them are ignored.
                "pattern": "^[ \\-\u00a0]*([0-9][ \\-\u00a0]*){6}$",
            },
            required=False,
            description=(
                "The 6-digit code of the mail (`123 456` and `123-456` do too)."
            ),
        ),
    ),
    one_of=(("token",), ("email", "code")),
    description="The link's token, or the address and the mailed code.",
)

# -- The answers ----------------------------------------------------------------

MESSAGE: Schema = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}
#: An address proved: verified, or changed to.
_PROVED: Schema = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "email": _EMAIL},
    "required": ["message", "email"],
}
_CANCELLED: Schema = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "restored": {
            "type": "boolean",
            "description": (
                "Whether the old address is the account's again (false: the"
                " change was not confirmed yet, or another account has it now)."
            ),
        },
    },
    "required": ["message", "restored"],
}


def _accepted(what: str) -> Reply:
    return Reply(202, what + " The same answer whatever the address.", MESSAGE)


# -- The errors and switches ----------------------------------------------------

#: A mailed link that is not live.
_LINK_ERRORS: tuple[type[TokenAuthError], ...] = (LinkInvalid, LinkExpired, NotFound)
#: The password policy's refusals.
_POLICY_ERRORS: tuple[type[TokenAuthError], ...] = (
    InvalidPassword,
    PasswordTooCommon,
    PasswordHasContextWord,
)
#: A token of a session that waits for its second factor, or of a user who
#: must enrol one first.
_SIGNED_IN_ERRORS: tuple[type[TokenAuthError], ...] = (
    MfaRequired,
    MfaEnrollmentRequired,
)
_NO_ADDRESSES = " Answers 404 `NOT_FOUND` where the app's user store has no addresses."


def _verification_on(settings: Settings) -> bool:
    return settings.email_verification != "off"


def _reset_on(settings: Settings) -> bool:
    return settings.password_reset_enabled


def _change_on(settings: Settings) -> bool:
    return settings.change_email_enabled


def _email_login_on(settings: Settings) -> bool:
    return settings.email_login_enabled


def _flow(description: str) -> str:
    """An operation's description, with what the settings cannot say."""
    return description + _NO_ADDRESSES


OPERATIONS: Operations = {
    "verify_email": {
        "POST": Operation(
            id="verifyEmail",
            summary="Verify the account's address with the mailed link",
            rate_limited=True,
            description=_flow(
                "Spends the token of the link mailed at registration (or by"
                " /verify-email/resend) and records the address as verified, if"
                " it is still the account's. The user's sessions carry"
                " `email_verified: true` from their next refresh. While"
                " `TOKENAUTH_EMAIL_VERIFICATION` is `optional` or `required`."
            ),
            tag="verify-email",
            body=LINK_TOKEN,
            replies=(Reply(200, "The address is verified.", _PROVED),),
            errors=_LINK_ERRORS,
            when=_verification_on,
        ),
    },
    "verify_email_resend": {
        "POST": Operation(
            id="resendVerificationEmail",
            summary="Mail a new verification link",
            rate_limited=True,
            description=_flow(
                "With an access token: to the caller's own address (nothing if"
                " it is verified already), and the body is not read. Without"
                " one: to `email`, if it is the address of an account that"
                " waits for verification. The older link stops working. At"
                " most `TOKENAUTH_RATELIMIT_MAIL_ADDRESS` mails per address."
            ),
            tag="verify-email",
            body=EMAIL,
            security=BEARER_OPTIONAL,
            replies=(_accepted("Received: a link is mailed if one is due."),),
            errors=(InvalidEmail, NotFound, *_SIGNED_IN_ERRORS),
            when=_verification_on,
        ),
    },
    "forgot_password": {
        "POST": Operation(
            id="forgotPassword",
            summary="Mail a password-reset link",
            rate_limited=True,
            description=_flow(
                "Mails a link to reset the password if `email` is the address"
                " of an active account; the lookup and the mail happen after"
                " the answer. At most `TOKENAUTH_RATELIMIT_MAIL_ADDRESS` mails"
                " per address. While `TOKENAUTH_PASSWORD_RESET_ENABLED`."
            ),
            tag="password-reset",
            body=EMAIL,
            replies=(_accepted("Received: a link is mailed if the account exists."),),
            errors=(InvalidEmail, NotFound),
            when=_reset_on,
        ),
    },
    "reset_password": {
        "POST": Operation(
            id="resetPassword",
            summary="Set a new password with the mailed link",
            rate_limited=True,
            description=_flow(
                "Sets the new password, ends every session and access token of"
                " the user and mails a notice; the user then logs in. The link"
                " dies when the account's password or address changes. While"
                " `TOKENAUTH_PASSWORD_RESET_ENABLED`."
            ),
            tag="password-reset",
            body=RESET_PASSWORD,
            replies=(Reply(200, "The password is changed.", MESSAGE),),
            errors=(*_LINK_ERRORS, *_POLICY_ERRORS),
            when=_reset_on,
        ),
    },
    "change_email": {
        "POST": Operation(
            id="changeEmail",
            summary="Ask to change the account's address",
            rate_limited=True,
            description=_flow(
                "Checks the password (on the account's wrong-password budget,"
                " shared with /login), then mails a confirmation link to the"
                " new address (or, if another account has it, a notice without"
                " one) and a notice with a cancel link to the current address."
                " While `TOKENAUTH_CHANGE_EMAIL_ENABLED`."
            ),
            tag="change-email",
            body=CHANGE_EMAIL,
            security=BEARER,
            replies=(_accepted("Received: the links are mailed after the answer."),),
            errors=(
                InvalidPassword,
                InvalidEmail,
                WrongPassword,
                NotFound,
                *_SIGNED_IN_ERRORS,
            ),
            when=_change_on,
        ),
    },
    "change_email_confirm": {
        "POST": Operation(
            id="confirmEmailChange",
            summary="Confirm an address change with the link mailed to it",
            rate_limited=True,
            description=_flow(
                "The account's address becomes the new one, verified; the"
                " user's sessions go on. 409 `EMAIL_TAKEN` if another account"
                " took the address meanwhile (the link still works if it is"
                " freed within its lifetime). While"
                " `TOKENAUTH_CHANGE_EMAIL_ENABLED`."
            ),
            tag="change-email",
            body=LINK_TOKEN,
            replies=(Reply(200, "The address is changed.", _PROVED),),
            errors=(*_LINK_ERRORS, EmailTaken),
            when=_change_on,
        ),
    },
    "change_email_cancel": {
        "POST": Operation(
            id="cancelEmailChange",
            summary="Cancel an address change with the link mailed to the old one",
            rate_limited=True,
            description=_flow(
                "Cancels the change, before or after its confirmation (then the"
                " old address is restored if no other account has it), and ends"
                " every session and access token of the user. While"
                " `TOKENAUTH_CHANGE_EMAIL_ENABLED`."
            ),
            tag="change-email",
            body=LINK_TOKEN,
            replies=(
                Reply(
                    200,
                    "The change is cancelled and every session ended.",
                    _CANCELLED,
                    ("ClearRefreshCookie",),
                ),
            ),
            errors=_LINK_ERRORS,
            when=_change_on,
        ),
    },
    "email_login": {
        "POST": Operation(
            id="requestEmailLogin",
            summary="Mail a sign-in link and code",
            rate_limited=True,
            description=_flow(
                "Mails a one-time link and a 6-digit code if `email` is the"
                " address of an active account; the lookup and the mail happen"
                " after the answer. At most `TOKENAUTH_RATELIMIT_MAIL_ADDRESS`"
                " mails per address. While `TOKENAUTH_EMAIL_LOGIN_ENABLED`."
            ),
            tag="email-login",
            body=EMAIL,
            replies=(
                _accepted(
                    "Received: a link and code are mailed if the account exists."
                ),
            ),
            errors=(InvalidEmail, NotFound),
            when=_email_login_on,
        ),
    },
    "email_login_verify": {
        "POST": Operation(
            id="verifyEmailLogin",
            summary="Sign in with the mailed link or code",
            rate_limited=True,
            description=_flow(
                "Spends `token` (the link), or `email` and `code` (a wrong code"
                " counts against `TOKENAUTH_EMAIL_LOGIN_ATTEMPTS`), and starts a"
                " session, answered as /login answers. An unverified address is"
                " verified by it, and the account's earlier sessions end. While"
                " `TOKENAUTH_EMAIL_LOGIN_ENABLED`."
            ),
            tag="email-login",
            body=EMAIL_LOGIN_VERIFY,
            replies=(
                Reply(200, "The session.", ref("Session"), ("SetRefreshCookie",)),
            ),
            errors=(*_LINK_ERRORS, CodeInvalid, InvalidEmail),
            when=_email_login_on,
        ),
    },
}
