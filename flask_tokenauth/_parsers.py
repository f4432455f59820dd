"""The value parsers of the configuration keys: one value in, one typed value
out, or a :class:`ConfigurationError` that names the key.

Each parser has the signature ``(value, key) -> parsed`` so that the table
of keys (:mod:`._config_keys`) can name it; ``key`` is the full
``TOKENAUTH_*`` name, for the message.  The values come from ``app.config``,
from code, or straight from the environment, so every parser accepts the
string form of what it parses.  Checks that need two keys at once live in
:mod:`._config_checks`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from ._blocklist import blocklist_file
from ._keys import ALGORITHMS
from .errors import ConfigurationError

T = TypeVar("T")
#: A parser: the value as configured and the key's full name, for messages.
Parser = Callable[[Any, str], Any]

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _duration(value: object, key: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        return int(number) * _UNITS[(unit or "s").lower()]
    raise ConfigurationError(
        f"{key} must be a timedelta, a number of seconds, or a string like"
        f" '900s', '15m', '12h' or '7d'; got {value!r}."
    )


def parse_duration(value: object, key: str = "duration") -> timedelta:
    """Turn a :class:`~datetime.timedelta`, a number of seconds, or a string
    such as ``"900"``, ``"900s"``, ``"15m"``, ``"12h"``, ``"7d"`` into a
    :class:`~datetime.timedelta`.

    :raises ConfigurationError: naming ``key`` if the value is none of these,
        or not positive.
    """
    result = _duration(value, key)
    if result <= timedelta(0):
        raise ConfigurationError(f"{key} must be positive; got {value!r}.")
    return result


def duration_or_zero(value: object, key: str) -> timedelta:
    """A duration where zero (unset, ``0``, ``"0"``, ``"0s"``) means "none":
    the configuration reference shows the default as ``0``, so ``0`` from
    the environment must parse too."""
    if not value:
        return timedelta(0)
    result = _duration(value, key)
    if result < timedelta(0):
        raise ConfigurationError(f"{key} must not be negative; got {value!r}.")
    return result


def parse_interval(value: object, key: str) -> timedelta:
    """A duration that may be a fraction of a second, also from the
    environment (``"0.5"``)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return parse_duration(value, key)


def parse_bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{key} must be true or false; got {value!r}.")


def int_range(low: int, high: int) -> Parser:
    """A parser of an integer between ``low`` and ``high`` inclusive; the
    range is shown in the message, so the table's entry is the one place it
    is written."""

    def parse(value: object, key: str) -> int:
        try:
            number: int = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{key} must be an integer; got {value!r}."
            ) from None
        if isinstance(value, bool) or not low <= number <= high:
            raise ConfigurationError(
                f"{key} must be between {low} and {high}; got {value!r}."
            )
        return number

    return parse


def optional(parser: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    """``parser``, with an unset value (``None``, ``""`` or any other false
    value) read as ``None``: the key's feature is off or derived."""

    def parse(value: object, key: str) -> T | None:
        return parser(value, key) if value else None

    return parse


def none_or(parser: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    """``parser``, with only ``None`` read as unset: ``""`` or ``0`` are
    values, refused by ``parser`` if they are invalid."""

    def parse(value: object, key: str) -> T | None:
        return None if value is None else parser(value, key)

    return parse


def as_is(value: object, key: str) -> Any:
    """The value unchanged: checked later, together with other keys (see
    :mod:`._config_checks`)."""
    return value


def as_str(value: object, key: str) -> str:
    return str(value)


def non_empty_str(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{key} must be a non-empty string.")
    return value


def as_dict(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{key} must be a dict.")
    return dict(value)


def choice(*choices: str) -> Parser:
    """One of ``choices``, given in any case."""

    def parse(value: object, key: str) -> str:
        chosen = str(value).lower()
        if chosen not in choices:
            raise ConfigurationError(
                f"{key} must be one of {', '.join(choices)}; got {value!r}."
            )
        return chosen

    return parse


def parse_algorithm(value: object, key: str) -> str | None:
    """A JWS algorithm of :data:`._keys.ALGORITHMS` in its canonical case, or
    ``None`` (unset): the signing key's own."""
    if not value:
        return None
    by_upper = {a.upper(): a for a in ALGORITHMS}
    algorithm = by_upper.get(str(value).upper())
    if algorithm is None:
        raise ConfigurationError(
            f"{key} must be one of {', '.join(ALGORITHMS)}; got {value!r}."
        )
    return algorithm


def parse_samesite(value: object, key: str) -> str | None:
    if value is None:
        return None
    samesite = str(value).capitalize()
    if samesite not in {"Strict", "Lax", "None"}:
        raise ConfigurationError(
            f"{key} must be 'Strict', 'Lax' or 'None'; got {value!r}."
        )
    return samesite


def parse_cookie_name(value: object, key: str) -> str:
    name = str(value)
    if not _COOKIE_NAME.match(name):
        raise ConfigurationError(f"{key} {name!r} is not a valid cookie name.")
    return name


def parse_device_cookie_name(value: object, key: str) -> str:
    """A cookie name without the ``__Host-`` prefix: the device cookie is
    scoped to the blueprint's path, which ``__Host-`` forbids."""
    name = parse_cookie_name(value, key)
    if name.startswith("__Host-"):
        raise ConfigurationError(
            f"{key} cannot start with '__Host-': browsers drop such a cookie"
            " unless its Path is '/'. Use '__Secure-'."
        )
    return name


def parse_cookie_path(value: object, key: str) -> str | None:
    """An explicit cookie ``Path`` (``None``: derive it from the blueprint)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"/[^\x00-\x20;,\x7f]*", value):
        raise ConfigurationError(
            f"{key} must be a URL path starting with '/', such as '/' or"
            f" '/api/auth'; got {value!r}."
        )
    return value


def parse_jwks_path(value: object, key: str) -> str | None:
    if not value:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"/[A-Za-z0-9._~\-/]*", value):
        raise ConfigurationError(
            f"{key} must be a path starting with '/', such as"
            " '/.well-known/jwks.json', or empty to turn it off;"
            f" got {value!r}."
        )
    return value


def parse_origins(value: object, key: str) -> frozenset[str]:
    if isinstance(value, str):
        items = [item for item in re.split(r"[\s,]+", value) if item]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = [str(item) for item in value]
    else:
        raise ConfigurationError(f"{key} must be a list of origins; got {value!r}.")
    for item in items:
        if not re.match(r"^https?://[^/\s]+$", item):
            raise ConfigurationError(
                f"{key}: {item!r} is not an origin like 'https://app.example.com'"
                " (scheme and host, no path)."
            )
    return frozenset(item.lower() for item in items)


def parse_limit(value: object, key: str) -> str:
    """A Flask-Limiter limit string such as ``"5/minute;20/hour"``."""
    from limits import parse_many

    try:
        parse_many(str(value))
    except ValueError:
        raise ConfigurationError(
            f"{key} must be a rate limit like '5/minute' or '10 per minute;100 per"
            f" hour'; got {value!r}."
        ) from None
    return str(value)


def parse_blocklist(value: object, key: str) -> bool:
    """On by default, as NIST SP 800-63B-4 requires; off only for a host that
    checks passwords against a list of its own.  An install missing the list
    fails here, at start-up, not on the first registration."""
    enabled = parse_bool(value, key)
    if enabled and not blocklist_file().is_file():
        raise ConfigurationError(
            f"The common-password list {blocklist_file()} is missing: reinstall"
            f" flask_tokenauth, or set {key}=False if the app checks passwords"
            " against a list of its own."
        )
    return enabled


def parse_service_names(value: object, key: str) -> tuple[str, ...]:
    """``TOKENAUTH_SERVICE_NAME``: a name or a list of names ("Acme",
    "acme.example"), words a new password must not contain; each must have a
    letter or digit to compare."""
    if value is None or value is False or value == "":
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(
        isinstance(name, str) and any(c.isalnum() for c in name) for name in names
    ):
        raise ConfigurationError(
            f"{key} must be the service's name or a list of its names, each"
            f" with a letter or digit (e.g. 'Acme'); got {value!r}."
        )
    return tuple(names)


def parse_listen_url(value: object, key: str) -> str | None:
    """A PostgreSQL URL, or ``None``: LISTEN is PostgreSQL's."""
    if not value:
        return None
    try:
        backend = make_url(str(value)).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in {"postgres", "postgresql"}:
        raise ConfigurationError(
            f"{key} must be a PostgreSQL URL that reaches the database directly"
            " (or through PgBouncer in session mode), such as"
            " 'postgresql://user@db-host:5432/app'; got a value that is not one."
        )
    return str(value)


#: An RFC 9110 auth-scheme: a ``token``.
_SCHEME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def parse_header_types(value: object, key: str) -> tuple[str, ...]:
    """``TOKENAUTH_HEADER_TYPES``: a list, or one string with types separated
    by commas (``"Bearer,Token"``); ``""`` in a list means a bare token."""
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",")] if value.strip() else [""]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigurationError(
            f"{key} must be a list of auth schemes such as ['Bearer', 'Token'];"
            f" got {value!r}."
        )
    types = tuple(dict.fromkeys(value))
    for scheme in types:
        if not isinstance(scheme, str) or (scheme and not _SCHEME.fullmatch(scheme)):
            raise ConfigurationError(
                f"{key}: {scheme!r} is not an auth scheme (a word such as"
                " 'Bearer' or 'Token', or '' for a bare token)."
            )
    return types


def parse_keys_dir(value: object, key: str) -> Path | None:
    """An existing directory (see :mod:`._keysdir`), or ``None``."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"{key} must be a path; got {value!r}.")
    path = Path(value)
    if not path.is_dir():
        raise ConfigurationError(
            f"{key}={str(path)!r} is not a directory. Create it with"
            f" 'flask tokenauth keys rotate --publish --dir {path}'."
        )
    return path


def parse_password(value: object, key: str) -> bytes | None:
    """The password of encrypted PEM keys, as bytes."""
    if not value:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise ConfigurationError(f"{key} must be a string; got a {type(value).__name__}.")


def parse_base_url(value: object, key: str) -> str | None:
    """The scheme, host and optional path prefix of the links in mails:
    ``https://app.example.com`` (no query, no fragment, no trailing slash
    kept)."""
    if value is None or value == "":
        return None
    from urllib.parse import urlsplit

    text = str(value)
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or (parts.fragment or "#" in text)
    ):
        raise ConfigurationError(
            f"{key} must be an http(s) URL such as 'https://app.example.com'; got"
            f" {value!r}."
        )
    return text.rstrip("/")


def parse_link_template(value: object, key: str) -> str:
    """A link's path after the base URL, with ``{token}`` once, e.g.
    ``"/reset-password#token={token}"``."""
    text = value if isinstance(value, str) else ""
    if (
        text.count("{token}") != 1
        or not text.startswith(("/", "#"))
        or text.replace("{token}", "").count("{") + text.count("}") > 1
    ):
        raise ConfigurationError(
            f"{key} must be a path such as '/reset-password#token={{token}}' with"
            f" '{{token}}' once; got {value!r}."
        )
    return text
