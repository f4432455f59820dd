"""Validation of what a client sends: the JSON body, emails and passwords.

Every failure is one of the 4xx errors of :mod:`flask_tokenauth.errors`; no
malformed input reaches the database or bcrypt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Request

from ._blocklist import contains_context_word, context_words, is_common_password
from ._config import Settings
from ._password_text import normalize_password, visible_characters
from ._state import get_state
from .errors import (
    InvalidEmail,
    InvalidJSON,
    InvalidPassword,
    PasswordHasContextWord,
    PasswordTooCommon,
    PayloadTooLarge,
    TokenAuthError,
    UnsupportedMediaType,
    ValidationError,
)

#: RFC 5321 limits a path to 254 characters; longer cannot be delivered.
MAX_EMAIL_LENGTH = 254


def cached_json_object(request: Request) -> dict[str, Any]:
    """:func:`read_json_object`, parsed once per request (the rate limiter
    reads the email before the view does).  Kept in the request's environ:
    ``g`` may be shared with earlier requests (see ``globals._CLAIMS_KEY``).
    """
    cached: dict[str, Any] | TokenAuthError | None = request.environ.get(
        "flask_tokenauth.body"
    )
    if cached is None:
        try:
            cached = read_json_object(request, get_state().settings.max_content_length)
        except TokenAuthError as e:
            cached = e
        request.environ["flask_tokenauth.body"] = cached
    if isinstance(cached, TokenAuthError):
        raise cached
    return cached


def read_json_object(request: Request, max_length: int) -> dict[str, Any]:
    """The request's body as a JSON object.

    Only ``application/json`` is accepted, so a cross-site HTML form (which
    can only send form encodings or ``text/plain``) can never reach a view.
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    if request.content_length is not None and request.content_length > max_length:
        raise PayloadTooLarge()
    # Read at most one byte more than allowed: a chunked body has no length.
    raw = request.stream.read(max_length + 1)
    if len(raw) > max_length:
        raise PayloadTooLarge()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise InvalidJSON("Request body is not valid JSON") from e
    if not isinstance(body, dict):
        raise InvalidJSON()
    return body


def require_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise ValidationError(f"'{field}' is required")
    if not isinstance(value, str):
        raise ValidationError(f"'{field}' must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. "\ud800" in the JSON
        raise ValidationError(f"'{field}' is not valid Unicode") from None
    return value


def normalize_email(value: str) -> str:
    """Trim, validate and lower-case an address.

    :raises InvalidEmail: if it is not a deliverable-looking address.
    """
    candidate = value.strip()
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH or "\x00" in candidate:
        raise InvalidEmail()
    # Imported on first use: 20 ms that only a request with an address
    # needs (never a host's own test suite, nor most processes' start-up).
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidEmail(f"Invalid email address: {e}") from e
    return result.normalized.lower()


def check_password(value: str, settings: Settings, context: Iterable[str] = ()) -> str:
    """Refuse a password that is too short, too long, contains NUL, is on
    the list of common passwords or contains a word of its context.

    The minimum is counted in visible characters
    (:func:`~._password_text.visible_characters`), so 64 characters of any
    script fit (OWASP ASVS 5.0, 6.2.9) and invisible or blank padding does
    not; the maximum in characters as sent, since it bounds the work of
    hashing them.  Every character counts when hashing.

    :param context: the user's login and any other words of theirs (NIST SP
        800-63B-4 3.1.1.2's context-specific words); the service's names
        (``TOKENAUTH_SERVICE_NAME``) are added here.
    :raises PasswordTooCommon: if the password, normalized
        (:func:`~._password_text.normalize_password`), is on the blocklist,
        perhaps with a short tail of digits and symbols (unless
        ``TOKENAUTH_PASSWORD_BLOCKLIST`` is off).
    :raises PasswordHasContextWord: if it contains the login, the local part
        of the address or a name of the service.
    :raises InvalidPassword: for the other failures.
    """
    if len(visible_characters(value)) < settings.password_min_length:
        raise InvalidPassword(
            f"Password must be at least {settings.password_min_length} characters"
            " (not counting spaces and invisible ones)"
        )
    if len(value) > settings.password_max_length:
        raise InvalidPassword(
            f"Password must be at most {settings.password_max_length} characters"
        )
    if "\x00" in value:
        raise InvalidPassword("Password must not contain NUL characters")
    normalized = normalize_password(value)
    if settings.password_blocklist and is_common_password(normalized):
        raise PasswordTooCommon()
    words = context_words([*settings.service_name, *context])
    if contains_context_word(normalized, words):
        raise PasswordHasContextWord()
    return value
