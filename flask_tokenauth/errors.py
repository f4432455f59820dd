"""The exception tree.

Every failure a client can cause is a :class:`TokenAuthError`: a real
werkzeug :class:`~werkzeug.exceptions.HTTPException` that renders itself as
``{"error": "<human message>", "code": "<STABLE_CODE>"}``.  Because the
exceptions render themselves, the extension registers no error handler on the
host application; raising one from any view gives the same JSON.

``code`` on a werkzeug exception is the HTTP status, so the stable machine
code lives in :attr:`TokenAuthError.error_code`.  The codes are part of the
public contract (see "Error codes" in the documentation, docs/errors.md)
and never change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from flask import current_app, has_app_context
from flask.wrappers import Response
from werkzeug.exceptions import HTTPException


class TokenAuthError(HTTPException):
    """Base class of every error this extension raises to a client."""

    code: int | None = 400
    #: The stable machine code of the JSON body (``"TOKEN_EXPIRED"``, ...).
    error_code: ClassVar[str] = "BAD_REQUEST"
    #: The default human message; ``description`` overrides it per instance.
    message: ClassVar[str] = "Bad request"

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.message)

    def to_dict(self) -> dict[str, str]:
        return {"error": self.description or self.message, "code": self.error_code}

    def get_headers(
        self,
        environ: Any = None,
        scope: Any = None,
    ) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), *self.extra_headers()]

    def extra_headers(self) -> list[tuple[str, str]]:
        """Headers this error adds to its response."""
        return []

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return json.dumps(self.to_dict())

    def get_response(
        self,
        environ: Any = None,
        scope: Any = None,
    ) -> Response:
        return Response(
            self.get_body(environ, scope),
            self.code or 400,
            self.get_headers(environ, scope),
        )


# -- 400: the request itself is wrong ---------------------------------------


class InvalidJSON(TokenAuthError):
    code = 400
    error_code = "INVALID_JSON"
    message = "Request body must be a JSON object"


class ValidationError(TokenAuthError):
    code = 400
    error_code = "VALIDATION_ERROR"
    message = "Invalid request"


class InvalidEmail(TokenAuthError):
    code = 400
    error_code = "INVALID_EMAIL"
    message = "A valid email address is required"


class InvalidPassword(TokenAuthError):
    code = 400
    error_code = "INVALID_PASSWORD"
    message = "Password does not meet the requirements"


class PasswordTooCommon(InvalidPassword):
    """The password is on the list of common passwords (NIST SP 800-63B-4
    3.1.1.2).  A subclass of :class:`InvalidPassword`, so code that handles
    that one handles this one too."""

    error_code = "PASSWORD_TOO_COMMON"
    message = "This password is too common; choose another one"


class PasswordHasContextWord(InvalidPassword):
    """The password contains a word of its context: the user's login, the
    local part of their address, or the service's name
    (``TOKENAUTH_SERVICE_NAME``), words an attacker who targets this account
    tries first (NIST SP 800-63B-4 3.1.1.2).  A subclass of
    :class:`InvalidPassword`."""

    error_code = "PASSWORD_HAS_CONTEXT_WORD"
    message = "The password must not contain your login or the name of the service"


# -- 401: authentication failed ----------------------------------------------


def _challenge_scheme() -> str:
    """The scheme ``WWW-Authenticate`` names: the app's first non-empty
    ``TOKENAUTH_HEADER_TYPES`` (``Bearer`` by default, and outside an app).
    Read on the error path only: a refused request pays it, not a served one."""
    state = current_app.extensions.get("tokenauth") if has_app_context() else None
    types = () if state is None else state.settings.header_types
    return next((t for t in types if t), "Bearer")


class AuthenticationError(TokenAuthError):
    """A 401.  Carries ``WWW-Authenticate: Bearer`` as RFC 6750 section 3 asks
    (or the app's first header type, see ``TOKENAUTH_HEADER_TYPES``)."""

    code = 401
    error_code = "UNAUTHORIZED"
    message = "Authentication required"
    #: The RFC 6750 ``error`` attribute; ``None`` when no credentials were sent.
    bearer_error: ClassVar[str | None] = "invalid_token"
    realm: ClassVar[str] = "api"

    def extra_headers(self) -> list[tuple[str, str]]:
        challenge = f'{_challenge_scheme()} realm="{self.realm}"'
        if self.bearer_error:
            description = (self.description or self.message).replace('"', "'")
            challenge += (
                f', error="{self.bearer_error}", error_description="{description}"'
            )
        return [("WWW-Authenticate", challenge)]


class InsufficientAuthentication(AuthenticationError):
    """A valid token whose authentication is not enough for the view: RFC
    9470's ``insufficient_user_authentication``, with its ``max_age`` (a
    step-up) or ``acr_values`` where they apply."""

    bearer_error = "insufficient_user_authentication"

    def __init__(self, description: str | None = None, *, max_age: int | None = None):
        super().__init__(description)
        self.max_age = max_age

    def extra_headers(self) -> list[tuple[str, str]]:
        headers = super().extra_headers()
        if self.max_age is not None:
            name, value = headers[0]
            headers[0] = (name, f'{value}, max_age="{self.max_age}"')
        return headers


class MfaRequired(InsufficientAuthentication):
    """The session waits for its second factor (``aal`` 1 of a user who has
    one), or the view asks for a higher ``aal`` than the token's."""

    error_code = "MFA_REQUIRED"
    message = "A second factor is required"


class ReauthenticationRequired(InsufficientAuthentication):
    """The view wants a more recent authentication than the token's
    ``auth_time`` (``@login_required(fresh=...)``): ``/reauthenticate``."""

    error_code = "REAUTHENTICATION_REQUIRED"
    message = "Please authenticate again"


class PasskeyInvalid(AuthenticationError):
    """A passkey assertion (``/passkeys/login``, ``/passkeys/verify``) was
    not accepted: an unknown credential or another user's, a signature,
    origin or relying party that does not verify, no user verification
    where required, or a sign counter gone back (a cloned authenticator).
    One code for all: which check failed is logged and signalled, not told."""

    error_code = "PASSKEY_INVALID"
    message = "Passkey not accepted"


class InvalidCredentials(AuthenticationError):
    error_code = "INVALID_CREDENTIALS"
    message = "Invalid credentials"
    bearer_error = None


class TokenMissing(AuthenticationError):
    error_code = "TOKEN_MISSING"
    message = "Access token required"
    bearer_error = None


class TokenInvalid(AuthenticationError):
    error_code = "TOKEN_INVALID"
    message = "Invalid token"


class TokenExpired(TokenInvalid):
    error_code = "TOKEN_EXPIRED"
    message = "Token expired"


class TokenRevoked(TokenInvalid):
    error_code = "TOKEN_REVOKED"
    message = "Token revoked"


class UserNotFound(TokenInvalid):
    error_code = "USER_NOT_FOUND"
    message = "The user of this token no longer exists"


class RefreshTokenError(AuthenticationError):
    """A refresh-token failure.  The blueprint clears the cookie on every one,
    unless several cookies of its name were sent (see
    :class:`RefreshTokenAmbiguous`)."""

    error_code = "REFRESH_TOKEN_INVALID"
    message = "Invalid refresh token"


class RefreshTokenMissing(RefreshTokenError):
    error_code = "REFRESH_TOKEN_MISSING"
    message = "No refresh token"
    bearer_error = None


class RefreshTokenInvalid(RefreshTokenError):
    pass


class RefreshTokenExpired(RefreshTokenError):
    error_code = "REFRESH_TOKEN_EXPIRED"
    message = "Refresh token expired"


class RefreshTokenRevoked(RefreshTokenError):
    error_code = "REFRESH_TOKEN_REVOKED"
    message = "Refresh token revoked"


class RefreshTokenReused(RefreshTokenError):
    error_code = "REFRESH_TOKEN_REUSED"
    message = "Refresh token reuse detected; the session has been revoked"

    def __init__(
        self, description: str | None = None, *, family_id: str = "", user_id: str = ""
    ) -> None:
        super().__init__(description)
        #: The family (session) the reused token belongs to, and its user.
        self.family_id = family_id
        self.user_id = user_id


class RefreshTokenAmbiguous(RefreshTokenError):
    """Several refresh cookies were sent and more than one is a live token of
    a different session: one of them was put there by someone else (cookie
    tossing), and using either could sign the page into the wrong account.
    The page did not say which session is its own (the browser client does
    when it holds one): neither is rotated, both sessions are revoked and
    the answer clears every cookie of the name it can; the user logs in
    again."""

    error_code = "REFRESH_TOKEN_AMBIGUOUS"
    message = "Several refresh tokens were sent; log in again"

    def __init__(
        self, description: str | None = None, *, sessions: Sequence[Any] = ()
    ) -> None:
        super().__init__(description)
        #: The live sessions of the cookies sent (``KnownToken``\ s).
        self.sessions = list(sessions)


class LinkInvalid(TokenAuthError):
    """A mailed link's token that is unknown, tampered with, already used,
    of another purpose, or no longer valid for its account (the password
    or the address changed since it was sent): one code for all of them."""

    code = 400
    error_code = "LINK_INVALID"
    message = "This link is invalid or has already been used"


class LinkExpired(LinkInvalid):
    """A mailed link's token that is genuine and unused, but expired."""

    error_code = "LINK_EXPIRED"
    message = "This link has expired"


class CodeInvalid(TokenAuthError):
    """A sign-in code that is wrong, expired, used, superseded or out of
    attempts: one code for all of them."""

    code = 400
    error_code = "CODE_INVALID"
    message = "This code is invalid or has expired"


# -- other 4xx -----------------------------------------------------------------


class PasskeyChallengeInvalid(TokenAuthError):
    """The passkey ceremony's challenge is unknown, spent, expired, or not
    this session's (or this browser's): ask for new options and start
    again."""

    code = 400
    error_code = "PASSKEY_CHALLENGE_INVALID"
    message = "Passkey challenge expired or already used; start again"


class PasskeyRejected(TokenAuthError):
    """A passkey registration (``/passkeys/register``) that does not verify,
    or of a credential already registered."""

    code = 400
    error_code = "PASSKEY_REJECTED"
    message = "Passkey registration not accepted"


class WrongPassword(TokenAuthError):
    """The current password given to change it is wrong (403, not 401: the
    access token is fine, and a 401 would make clients refresh)."""

    code = 403
    error_code = "WRONG_PASSWORD"
    message = "Current password is incorrect"


class EmailNotVerified(TokenAuthError):
    """``TOKENAUTH_EMAIL_VERIFICATION = "required"``: the account's address
    is not verified yet.  Answered by ``/login`` only after the password
    matched (so it tells nothing to whom does not know it), and by
    ``@login_required(verified=True)``."""

    code = 403
    error_code = "EMAIL_NOT_VERIFIED"
    message = "Email address not verified"


class MfaEnrollmentRequired(TokenAuthError):
    """``TOKENAUTH_MFA = "required"`` and the user has no second factor yet:
    only the enrolment endpoints (and views that opt in) answer."""

    code = 403
    error_code = "MFA_ENROLLMENT_REQUIRED"
    message = "Set up a second factor to continue"


class MfaCodeInvalid(TokenAuthError):
    """A second-factor code (authenticator app or recovery code) that is
    wrong, already used, or of a step already used: one code for all."""

    code = 400
    error_code = "MFA_CODE_INVALID"
    message = "This code is invalid or has already been used"


class TotpAlreadyEnabled(TokenAuthError):
    """``/mfa/totp/enroll`` for a user whose authenticator app is set up:
    remove it first (``DELETE /mfa/totp``)."""

    code = 409
    error_code = "TOTP_ALREADY_ENABLED"
    message = "An authenticator app is already set up"


class TotpNotEnabled(TokenAuthError):
    """No authenticator app to confirm (no enrolment waiting), remove or
    verify."""

    code = 409
    error_code = "TOTP_NOT_ENABLED"
    message = "No authenticator app is set up"


class MfaNotEnabled(TokenAuthError):
    """A second-factor action for a user with no second factor (recovery
    codes of a user without one)."""

    code = 409
    error_code = "MFA_NOT_ENABLED"
    message = "No second factor is set up"


class CrossSiteRequest(TokenAuthError):
    code = 403
    error_code = "CROSS_SITE_REQUEST"
    message = "Cross-site request refused"


class NotFound(TokenAuthError):
    code = 404
    error_code = "NOT_FOUND"
    message = "Not found"


class PasskeyNotFound(NotFound):
    """No passkey of the caller has this id (or the caller has none)."""

    error_code = "PASSKEY_NOT_FOUND"
    message = "Passkey not found"


class MethodNotAllowed(TokenAuthError):
    code = 405
    error_code = "METHOD_NOT_ALLOWED"
    message = "Method not allowed"

    def __init__(self, valid_methods: Iterable[str], description: str | None = None):
        super().__init__(description)
        self.valid_methods = sorted(valid_methods)

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Allow", ", ".join(self.valid_methods))]


class SessionNotFound(TokenAuthError):
    code = 404
    error_code = "SESSION_NOT_FOUND"
    message = "No such session"


class EmailTaken(TokenAuthError):
    code = 409
    error_code = "EMAIL_TAKEN"
    message = "Email already in use"


class PayloadTooLarge(TokenAuthError):
    code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    message = "Request body too large"


class UnsupportedMediaType(TokenAuthError):
    code = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"
    message = "Content-Type must be application/json"


class RateLimited(TokenAuthError):
    code = 429
    error_code = "RATE_LIMITED"
    message = "Too many requests, try again later"

    def __init__(self, description: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = max(int(retry_after), 1)

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after))]


# -- 5xx -----------------------------------------------------------------------


class InternalError(TokenAuthError):
    code = 500
    error_code = "INTERNAL_ERROR"
    message = "Internal server error"


class DatabaseNotMigrated(InternalError):
    """Our tables are missing or older than this release: the operator has
    not run the migrations.  A 500 with no ``Retry-After``, not a 503: a
    retry cannot help, and the message says what the operator must run."""

    error_code = "DATABASE_NOT_MIGRATED"
    message = "The database is not set up: run 'flask tokenauth db upgrade'"


class ServiceUnavailable(TokenAuthError):
    """A 503 the client should retry: it carries ``Retry-After: 1``."""

    code = 503
    error_code = "SERVICE_UNAVAILABLE"
    message = "Service temporarily unavailable"

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", "1")]


class DatabaseUnavailable(ServiceUnavailable):
    error_code = "DATABASE_UNAVAILABLE"
    message = "Database unavailable, try again shortly"


class RevocationStoreUnavailable(ServiceUnavailable):
    error_code = "REVOCATION_STORE_UNAVAILABLE"
    message = "Revocation store unavailable, try again shortly"


# Werkzeug's own HTTP errors (raised before our code runs, e.g. a malformed
# request line or a body over ``MAX_CONTENT_LENGTH``) are translated to ours by
# status so that the blueprint never answers with HTML.
# Only statuses whose meaning is the same as ours map to our classes; any
# other keeps werkzeug's name as its code (a 409 is "CONFLICT", not
# "EMAIL_TAKEN").
_BY_STATUS: dict[int, type[TokenAuthError]] = {
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimited,
    500: InternalError,
    503: ServiceUnavailable,
}


class HTTPError(TokenAuthError):
    """Any other werkzeug HTTP error, in our JSON shape, with a code made from
    its name (``Bad Request`` is ``BAD_REQUEST``)."""

    def __init__(self, exc: HTTPException) -> None:
        super().__init__(exc.description)
        self.code = exc.code
        self.name_code = re.sub(r"[^A-Z0-9]+", "_", exc.name.upper()).strip("_")

    def to_dict(self) -> dict[str, str]:
        return {"error": self.description or self.message, "code": self.name_code}


def from_http_exception(exc: HTTPException) -> TokenAuthError:
    """Return ``exc`` as one of ours, keeping its status."""
    if isinstance(exc, TokenAuthError):
        return exc
    if exc.code == 405:
        return MethodNotAllowed(getattr(exc, "valid_methods", None) or ())
    cls = _BY_STATUS.get(exc.code or 500)
    return cls() if cls is not None else HTTPError(exc)


class ConfigurationError(RuntimeError):
    """The application is misconfigured; raised at start-up, never per request."""
