"""The members of a field's schema that depend on the app: an address's
syntax, a password's lengths under the policy, and the pattern of "at least
*n* visible characters" (:func:`visible_pattern`).

They make the description as strict as the views, so that a value a fuzzer
draws from the schema is one the view takes, and one outside it is refused.
Shared by every table with a login or a new password.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from .._config import Settings
from .._password_text import is_blank
from .._validation import MAX_EMAIL_LENGTH
from ..errors import (
    InvalidPassword,
    PasswordHasContextWord,
    PasswordTooCommon,
    TokenAuthError,
)
from ._declare import Schema

# -- At least n visible characters ------------------------------------------------


#: Where the blank code points are: the planes with controls, format
#: characters and spaces (the Basic and Supplementary Multilingual planes,
#: and plane 14's tags and variation selectors); not the surrogates, which
#: are not characters.
_PLANES = (range(0xD800), range(0xE000, 0x20000), range(0xE0000, 0xE1000))


@functools.cache
def _blank_ranges() -> tuple[tuple[int, int], ...]:
    """The blank code points of :func:`.._password_text.is_blank`, as
    inclusive ranges: computed from Python's Unicode database, once per
    process (a few hundredths of a second, at the first description)."""
    ranges: list[tuple[int, int]] = []
    for plane in _PLANES:
        for code_point in plane:
            if not is_blank(chr(code_point)):
                continue
            if ranges and ranges[-1][1] == code_point - 1:
                ranges[-1] = (ranges[-1][0], code_point)
            else:
                ranges.append((code_point, code_point))
    return tuple(ranges)


def _escape(code_point: int) -> str:
    return f"\\u{code_point:04x}" if code_point <= 0xFFFF else f"\\U{code_point:08x}"


def _character_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(
        _escape(start) if start == end else f"{_escape(start)}-{_escape(end)}"
        for start, end in ranges
        if start <= end
    )


#: No NUL anywhere: the views refuse a password with one (it would end the
#: string in a C library's hash).
NO_NUL = "^[^\\u0000]*$"


@functools.cache
def visible_pattern(count: int) -> str:
    """A ``pattern`` matched by a string of at least ``count`` visible
    characters, as the password policy counts them, and no NUL.

    ``minLength`` counts every code point: eight spaces or zero-width
    joiners would be a valid password to the schema, refused by the view.
    Python's ``re`` syntax (``\\U`` escapes for astral code points), which
    the fuzzer and the validators use.  What NFKC normalization changes (a
    ligature counted as two letters) the pattern does not follow: a rare
    string for a fuzzer to draw."""
    ranges = _blank_ranges()
    blanks = _character_class(ranges)
    # The blanks but NUL (the first range starts at it): NUL matches nothing.
    blanks_but_nul = _character_class([(max(s, 1), e) for s, e in ranges])
    return f"^(?:[{blanks_but_nul}]*[^{blanks}]){{{count}}}[^\\u0000]*$"


# -- Logins and passwords ---------------------------------------------------------


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


#: The special-use domains (RFC 6761) email_validator refuses addresses at
#: (its ``SPECIAL_USE_DOMAIN_NAMES``; not imported from it here, as it costs
#: a process's start-up 20 ms: a test keeps the two the same).
SPECIAL_USE_DOMAIN_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")

#: An address at a special-use domain, which is ``format: email`` but which
#: no mail reaches, and which :func:`.._validation.normalize_email` refuses.
_SPECIAL_USE = (
    "[.@](?:" + "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES) + ")$"
)


def login_limits(settings: Settings, login: str) -> Schema:
    """An address is an address (the default store's login), not at a
    special-use domain; a host's username is whatever its store
    normalizes."""
    if login != "email":
        return {"minLength": 1}
    return {
        "format": "email",
        "maxLength": MAX_EMAIL_LENGTH,
        "not": {"pattern": _SPECIAL_USE},
    }


def new_password_limits(settings: Settings, login: str) -> Schema:
    """A password the policy may take: its lengths, the minimum in visible
    characters (:func:`visible_pattern`).  Its other checks (a common
    password, one that contains the login) JSON Schema cannot say: they
    are the ``INVALID_PASSWORD`` family of errors (:data:`POLICY_ERRORS`)."""
    return {
        "minLength": settings.password_min_length,
        "maxLength": settings.password_max_length,
        "pattern": visible_pattern(settings.password_min_length),
    }


def password_limits(settings: Settings, login: str) -> Schema:
    """A password to check: not empty, not longer than any we store."""
    return {
        "minLength": 1,
        "maxLength": settings.password_max_length,
        "pattern": NO_NUL,
    }


#: The password policy's errors (``INVALID_PASSWORD`` and its refinements).
POLICY_ERRORS: tuple[type[TokenAuthError], ...] = (
    InvalidPassword,
    PasswordTooCommon,
    PasswordHasContextWord,
)
