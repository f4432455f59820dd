"""Configuration: every ``TOKENAUTH_*`` key, its default, and its validation.

The keys are read once, in :meth:`TokenAuth.init_app`, into a frozen
:class:`Settings`.  A bad value raises :class:`ConfigurationError` at start-up
with a message that names the key to set; nothing is read lazily per request.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from ._blocklist import blocklist_file
from ._keys import ALGORITHMS, HMAC_ALGORITHMS, KeySet
from ._keysdir import load_keyset
from .errors import ConfigurationError

PREFIX = "TOKENAUTH_"

#: Every key with its default.  ``None`` means "required" for the secrets and
#: "derive it" for the others (see the README's configuration table).
DEFAULTS: dict[str, Any] = {
    "ACCESS_SECRET": None,
    "REFRESH_SECRET": None,
    "ACCESS_EXPIRES": timedelta(minutes=15),
    "REFRESH_EXPIRES": timedelta(days=7),
    # None: HS256, or the algorithm TOKENAUTH_SIGNING_KEY is for.
    "ALGORITHM": None,
    # None: HMAC with TOKENAUTH_ACCESS_SECRET.  A path to a PEM or JWK file,
    # or the PEM or JWK text itself (see _keys.py).
    "SIGNING_KEY": None,
    "SIGNING_KEY_PASSWORD": None,
    # Other keys whose tokens are accepted: previous and announced ones.
    "VERIFY_KEYS": (),
    # A directory of rotating keys (see _keysdir.py); replaces the two above.
    "KEYS_DIR": None,
    # How often each process looks for a change of the keys directory.
    "KEYS_RELOAD_INTERVAL": timedelta(seconds=1),
    # Relative to the blueprint's prefix; None or "" turns it off (404).
    "JWKS_PATH": "/.well-known/jwks.json",
    # None: a third of TOKENAUTH_ACCESS_EXPIRES (see Settings.jwks_max_age).
    "JWKS_MAX_AGE": None,
    "ISSUER": "flask-tokenauth",
    "AUDIENCE": "flask-tokenauth-client",
    "LEEWAY": timedelta(0),
    "DATABASE_URL": None,
    "ENGINE_OPTIONS": {},
    "COOKIE_NAME": "refresh_token",
    "COOKIE_SECURE": True,
    "COOKIE_SAMESITE": "Strict",
    "COOKIE_DOMAIN": None,
    "COOKIE_PATH": None,
    "BCRYPT_ROUNDS": 12,
    "PASSWORD_MIN_LENGTH": 8,
    "PASSWORD_MAX_LENGTH": 256,
    "PASSWORD_BLOCKLIST": True,
    "MAX_CONTENT_LENGTH": 10 * 1024,
    "ALLOWED_ORIGINS": (),
    "SECURITY_HEADERS_APP_WIDE": False,
    "HSTS": "max-age=31536000; includeSubDomains",
    "IDLE_TIMEOUT": None,
    "REUSE_INTERVAL": timedelta(0),
    "REFRESH_ASYNC_COMMIT": False,
    "REDIS_URL": None,
    "REDIS_PREFIX": "tokenauth:",
    "REVOCATION": "auto",
    "REVOCATION_FAIL_OPEN": False,
    # The database store: how old each process's copy of the revocations may
    # be, and the URL its PostgreSQL listener connects to (None: the
    # database's own; set it when the database URL goes through PgBouncer in
    # transaction mode, where LISTEN does not work).
    "REVOCATION_STALENESS": timedelta(seconds=1),
    "REVOCATION_LISTEN_URL": None,
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": None,
    "RATELIMIT_REGISTER": "10/minute;100/hour",
    "RATELIMIT_LOGIN": "20/minute;200/hour",
    "RATELIMIT_REFRESH": "60/minute",
    "RATELIMIT_LOGIN_FAILURES": "5/minute;20/hour",
    "RATELIMIT_ACCOUNT_FAILURES": "100/day",
    "DEVICE_COOKIE_NAME": "tokenauth_device",
    "TRUSTED_PROXIES": 0,
    "TOKEN_CACHE_SIZE": 4096,
    # Off: the endpoint answers 404 (the app registers users, or changes
    # passwords, its own way).
    "REGISTER_ENABLED": True,
    "PASSWORD_CHANGE_ENABLED": True,
}

REVOCATION_MODES = ("auto", "redis", "database", "off")

MIN_SECRET_BYTES = 32

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: object, key: str = "duration") -> timedelta:
    """Turn a :class:`~datetime.timedelta`, a number of seconds, or a string
    such as ``"900"``, ``"900s"``, ``"15m"``, ``"12h"``, ``"7d"`` into a
    :class:`~datetime.timedelta`.

    :raises ConfigurationError: naming ``key`` if the value is none of these.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        result = int(number) * _UNITS[(unit or "s").lower()]
    else:
        raise ConfigurationError(
            f"{key} must be a timedelta, a number of seconds, or a string like"
            f" '900s', '15m', '12h' or '7d'; got {value!r}."
        )
    if result <= timedelta(0):
        raise ConfigurationError(f"{key} must be positive; got {value!r}.")
    return result


def _parse_bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{key} must be true or false; got {value!r}.")


def _parse_int(value: object, key: str, low: int, high: int) -> int:
    try:
        number: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be an integer; got {value!r}.") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigurationError(
            f"{key} must be between {low} and {high}; got {value!r}."
        )
    return number


#: Secrets published in this repository's example and in the tutorial it
#: follows: anyone who read them can sign tokens for an app that uses them.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me-to-a-random-string-of-at-least-32-bytes-aaaa",
        "change-me-to-another-random-string-of-32-bytes-bbbbbb",
        "your-256-bit-secret-here-make-it-long-and-random",
        "another-256-bit-secret-different-from-access",
    }
)
#: Words that mark a value as a placeholder someone forgot to replace.  They
#: are looked for in the value lower-cased with everything but letters and
#: digits removed, so ``Change_Me``, ``CHANGEME`` and ``your-secret`` match.
#: A random secret of 48 bytes contains one by chance with a probability
#: below 1e-12.
PLACEHOLDER_MARKERS = ("changeme", "replaceme", "yoursecret")


def _is_placeholder(secret: bytes) -> bool:
    text = secret.decode("utf-8", "replace").lower()
    letters = "".join(c for c in text if c.isascii() and c.isalnum())
    return text.strip() in PLACEHOLDER_SECRETS or any(
        marker in letters for marker in PLACEHOLDER_MARKERS
    )


def _parse_secret(value: object, key: str, minimum: int = MIN_SECRET_BYTES) -> bytes:
    """The secret as bytes: set, long enough, and not a published placeholder.

    A placeholder is one of :data:`PLACEHOLDER_SECRETS` (compared
    case-insensitively) or any value containing one of
    :data:`PLACEHOLDER_MARKERS`; an app started from a hand-copied example
    file would otherwise run with a key everyone can read.
    """
    hint = (
        f"Set {key} to a random string of at least {minimum} bytes, e.g."
        ' python -c "import secrets; print(secrets.token_urlsafe(48))".'
    )
    if value is None or value == "":
        raise ConfigurationError(f"{key} is not set. {hint}")
    if isinstance(value, str):
        secret = value.encode()
    elif isinstance(value, bytes):
        secret = value
    else:
        raise ConfigurationError(f"{key} must be a string. {hint}")
    if len(secret) < minimum:
        raise ConfigurationError(
            f"{key} is {len(secret)} bytes long; at least {minimum} are"
            f" required. {hint}"
        )
    if _is_placeholder(secret):
        raise ConfigurationError(
            f"{key} is a placeholder from an example or tutorial (or contains"
            f" 'change-me', 'replace-me' or 'your-secret'), which anyone can"
            f" read. {hint}"
        )
    return secret


def _parse_blocklist(value: object, key: str) -> bool:
    """On by default, as NIST SP 800-63B-4 requires; off only for a host that
    checks passwords against a list of its own.  An install missing the list
    fails here, at start-up, not on the first registration."""
    enabled = _parse_bool(value, key)
    if enabled and not blocklist_file().is_file():
        raise ConfigurationError(
            f"The common-password list {blocklist_file()} is missing: reinstall"
            f" flask_tokenauth, or set {key}=False if the app checks passwords"
            " against a list of its own."
        )
    return enabled


def _parse_limit(value: object, key: str) -> str:
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


def _parse_origins(value: object, key: str) -> frozenset[str]:
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


def _parse_interval(value: object, key: str) -> timedelta:
    """A duration that may be a fraction of a second, also from the
    environment (``"0.5"``)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return parse_duration(value, key)


def _parse_keys_dir(
    value: object, signing_key: object, verify_keys: object
) -> Path | None:
    """``TOKENAUTH_KEYS_DIR``, refused beside the keys it replaces: two
    sources of keys would leave it unclear which one signs."""
    if value is None or value == "":
        return None
    if signing_key is not None or verify_keys:
        raise ConfigurationError(
            "TOKENAUTH_KEYS_DIR replaces TOKENAUTH_SIGNING_KEY and"
            " TOKENAUTH_VERIFY_KEYS: unset those two, or unset TOKENAUTH_KEYS_DIR."
        )
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"TOKENAUTH_KEYS_DIR must be a path; got {value!r}.")
    path = Path(value)
    if not path.is_dir():
        raise ConfigurationError(
            f"TOKENAUTH_KEYS_DIR={str(path)!r} is not a directory. Create it with"
            f" 'flask tokenauth keys rotate --publish --dir {path}'."
        )
    return path


def _parse_listen_url(value: object, key: str) -> str | None:
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


def _parse_cookie_path(value: object, key: str) -> str | None:
    """An explicit cookie ``Path`` (``None``: derive it from the blueprint)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"/[^\x00-\x20;,\x7f]*", value):
        raise ConfigurationError(
            f"{key} must be a URL path starting with '/', such as '/' or"
            f" '/api/auth'; got {value!r}."
        )
    return value


def _check_cookie_prefix(
    name: str, secure: bool, domain: str | None, path: str | None
) -> None:
    """Refuse a cookie the browser would drop because of its name's prefix.

    RFC 6265bis section 4.1.3: a ``__Secure-`` cookie must be ``Secure``; a
    ``__Host-`` cookie must be ``Secure``, without ``Domain`` and with
    ``Path=/``.  Browsers match the prefixes case-insensitively, so do we.
    Such a cookie cannot be set or overwritten by a sibling subdomain or over
    plain http, which is what makes the prefixes worth having (cookie
    tossing); a misconfigured one would silently never be stored.
    """
    lowered = name.lower()
    if lowered.startswith("__host-"):
        problems: list[str] = []
        if not secure:
            problems.append("TOKENAUTH_COOKIE_SECURE=True")
        if domain is not None:
            problems.append("no TOKENAUTH_COOKIE_DOMAIN")
        if path != "/":
            problems.append("TOKENAUTH_COOKIE_PATH='/'")
        if problems:
            raise ConfigurationError(
                f"TOKENAUTH_COOKIE_NAME {name!r} has the __Host- prefix, which"
                f" browsers accept only with {', '.join(problems)}; set those,"
                " or use the __Secure- prefix, which allows a path and a domain."
            )
    elif lowered.startswith("__secure-") and not secure:
        raise ConfigurationError(
            f"TOKENAUTH_COOKIE_NAME {name!r} has the __Secure- prefix, which"
            " browsers accept only with TOKENAUTH_COOKIE_SECURE=True."
        )


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one application."""

    #: ``None`` when an asymmetric TOKENAUTH_SIGNING_KEY signs on its own.
    access_secret: bytes | None
    refresh_secret: bytes
    access_expires: timedelta
    refresh_expires: timedelta
    #: The signing key's algorithm.
    algorithm: str
    #: The signing key and every key accepted (see :mod:`._keys`).
    keys: KeySet
    #: Where the blueprint serves the public keys; ``None``: not served.
    jwks_path: str | None
    #: The JWKS document's ``Cache-Control: max-age``.
    jwks_max_age: timedelta
    issuer: str
    audience: str
    leeway: timedelta
    database_url: str | None
    engine_options: Mapping[str, Any]
    cookie_name: str
    cookie_secure: bool
    cookie_samesite: str | None
    cookie_domain: str | None
    #: ``None``: the path the blueprint is mounted at (see ``cookie_path``).
    cookie_path: str | None
    bcrypt_rounds: int
    password_min_length: int
    password_max_length: int
    #: Refuse passwords on the shipped list of common passwords.
    password_blocklist: bool
    max_content_length: int
    allowed_origins: frozenset[str]
    security_headers_app_wide: bool
    hsts: str | None
    idle_timeout: timedelta | None
    reuse_interval: timedelta
    redis_url: str | None
    redis_prefix: str
    #: ``"redis"``, ``"database"`` or ``"off"`` (``"auto"`` resolved).
    revocation: str
    revocation_fail_open: bool
    ratelimit_enabled: bool
    ratelimit_storage_uri: str
    ratelimit_register: str
    ratelimit_login: str
    ratelimit_refresh: str
    #: Wrong passwords per (account, client address), and per (account,
    #: trusted device) for a client with a device cookie of the account.
    ratelimit_login_failures: str
    #: Wrong passwords per account from clients not trusted for it.
    ratelimit_account_failures: str
    device_cookie_name: str
    trusted_proxies: int
    token_cache_size: int
    #: ``/register`` answers 404 when off.
    register_enabled: bool = True
    #: ``/password`` answers 404 when off.
    password_change_enabled: bool = True
    #: The keys directory, when keys rotate without a restart.
    keys_dir: Path | None = None
    keys_reload_interval: timedelta = timedelta(seconds=1)
    #: The password of encrypted private keys (read again at each reload).
    signing_key_password: bytes | None = None
    #: The database store: a revocation made in another process is seen
    #: within this time (see :mod:`._dbmirror`).
    revocation_staleness: timedelta = timedelta(seconds=1)
    #: The database store on PostgreSQL: where the listener connects;
    #: ``None``: the database's own URL.
    revocation_listen_url: str | None = None
    #: A rotation on PostgreSQL commits without waiting for its WAL flush
    #: (``synchronous_commit = off`` for that transaction only).
    refresh_async_commit: bool = False

    @classmethod
    def from_mapping(
        cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read and validate the ``TOKENAUTH_*`` keys of ``config``.

        ``overrides`` (lower-case names without the prefix) take precedence;
        they are what :class:`~flask_tokenauth.TokenAuth` was given in code.
        """
        unknown = sorted(
            k
            for k in config
            if k.startswith(PREFIX) and k[len(PREFIX) :] not in DEFAULTS
        )
        if unknown:
            raise ConfigurationError(
                f"Unknown configuration key(s): {', '.join(unknown)}. Known keys:"
                f" {', '.join(PREFIX + k for k in DEFAULTS)}."
            )

        def get(name: str) -> Any:
            if overrides and name.lower() in overrides:
                return overrides[name.lower()]
            return config.get(PREFIX + name, DEFAULTS[name])

        def key(name: str) -> str:
            return PREFIX + name

        chosen = get("ALGORITHM")
        by_upper = {a.upper(): a for a in ALGORITHMS}
        algorithm = by_upper.get(str(chosen).upper()) if chosen else None
        if chosen and algorithm is None:
            raise ConfigurationError(
                f"TOKENAUTH_ALGORITHM must be one of {', '.join(ALGORITHMS)};"
                f" got {chosen!r}."
            )
        signing_key = get("SIGNING_KEY") or None
        access_secret: bytes | None = None
        if (signing_key is None and not get("KEYS_DIR")) or get("ACCESS_SECRET"):
            # Required for HMAC; with a signing key, still accepted (it only
            # verifies then) while the tokens it signed expire.
            access_secret = _parse_secret(
                get("ACCESS_SECRET"),
                key("ACCESS_SECRET"),
                HMAC_ALGORITHMS.get(algorithm or "HS256", MIN_SECRET_BYTES),
            )
        password = get("SIGNING_KEY_PASSWORD") or None
        if isinstance(password, str):
            password = password.encode()
        keys_dir = _parse_keys_dir(get("KEYS_DIR"), signing_key, get("VERIFY_KEYS"))
        if keys_dir is None:
            keys = KeySet.from_config(
                algorithm=algorithm,
                access_secret=access_secret,
                signing_key=signing_key,
                password=password,
                verify_keys=get("VERIFY_KEYS"),
            )
        else:
            keys = load_keyset(keys_dir, password, access_secret)
            if algorithm is not None and algorithm != keys.signing.algorithm:
                raise ConfigurationError(
                    f"TOKENAUTH_ALGORITHM={algorithm}, but the signing key of"
                    f" TOKENAUTH_KEYS_DIR is for {keys.signing.algorithm}: unset"
                    " TOKENAUTH_ALGORITHM (each key of the directory is pinned to"
                    " its own)."
                )
        refresh_secret = _parse_secret(get("REFRESH_SECRET"), key("REFRESH_SECRET"))
        if access_secret == refresh_secret:
            raise ConfigurationError(
                "TOKENAUTH_ACCESS_SECRET and TOKENAUTH_REFRESH_SECRET must be"
                " different, so that one token type can never pass for the other."
            )

        samesite = get("COOKIE_SAMESITE")
        if samesite is not None:
            samesite = str(samesite).capitalize()
            if samesite not in {"Strict", "Lax", "None"}:
                raise ConfigurationError(
                    "TOKENAUTH_COOKIE_SAMESITE must be 'Strict', 'Lax' or 'None';"
                    f" got {get('COOKIE_SAMESITE')!r}."
                )
        cookie_secure = _parse_bool(get("COOKIE_SECURE"), key("COOKIE_SECURE"))
        if samesite == "None" and not cookie_secure:
            raise ConfigurationError(
                "TOKENAUTH_COOKIE_SAMESITE='None' requires"
                " TOKENAUTH_COOKIE_SECURE=True; browsers drop such cookies otherwise."
            )

        cookie_name = str(get("COOKIE_NAME"))
        if not re.match(r"^[A-Za-z0-9_.\-]+$", cookie_name):
            raise ConfigurationError(
                f"TOKENAUTH_COOKIE_NAME {cookie_name!r} is not a valid cookie name."
            )
        cookie_domain = get("COOKIE_DOMAIN") or None
        cookie_path = _parse_cookie_path(get("COOKIE_PATH"), key("COOKIE_PATH"))
        _check_cookie_prefix(cookie_name, cookie_secure, cookie_domain, cookie_path)

        # Only ours: the app's Flask-SQLAlchemy database is _default_db.py's.
        database_url = get("DATABASE_URL")
        engine_options = get("ENGINE_OPTIONS")
        if not isinstance(engine_options, Mapping):
            raise ConfigurationError("TOKENAUTH_ENGINE_OPTIONS must be a dict.")

        minimum = _parse_int(
            get("PASSWORD_MIN_LENGTH"), key("PASSWORD_MIN_LENGTH"), 8, 64
        )
        maximum = _parse_int(
            get("PASSWORD_MAX_LENGTH"), key("PASSWORD_MAX_LENGTH"), 64, 4096
        )

        for name in ("ISSUER", "AUDIENCE"):
            if not isinstance(get(name), str) or not get(name):
                raise ConfigurationError(
                    f"TOKENAUTH_{name} must be a non-empty string."
                )

        hsts = get("HSTS")
        redis_url = get("REDIS_URL") or None
        revocation = str(get("REVOCATION")).lower()
        if revocation not in REVOCATION_MODES:
            raise ConfigurationError(
                f"TOKENAUTH_REVOCATION must be one of {', '.join(REVOCATION_MODES)};"
                f" got {get('REVOCATION')!r}."
            )
        if revocation == "auto":
            revocation = "redis" if redis_url else "database"
        if revocation == "redis" and not redis_url:
            raise ConfigurationError(
                "TOKENAUTH_REVOCATION='redis' needs TOKENAUTH_REDIS_URL, e.g."
                " 'redis://127.0.0.1:6379/0'."
            )
        listen_url = _parse_listen_url(
            get("REVOCATION_LISTEN_URL"), key("REVOCATION_LISTEN_URL")
        )
        storage_uri = (
            get("RATELIMIT_STORAGE_URI")
            or config.get("RATELIMIT_STORAGE_URI")
            or redis_url
            or "memory://"
        )
        limits = {
            name: _parse_limit(get(name), key(name))
            for name in (
                "RATELIMIT_REGISTER",
                "RATELIMIT_LOGIN",
                "RATELIMIT_REFRESH",
                "RATELIMIT_LOGIN_FAILURES",
                "RATELIMIT_ACCOUNT_FAILURES",
            )
        }
        device_cookie_name = str(get("DEVICE_COOKIE_NAME"))
        if not re.match(r"^[A-Za-z0-9_.\-]+$", device_cookie_name):
            raise ConfigurationError(
                f"TOKENAUTH_DEVICE_COOKIE_NAME {device_cookie_name!r} is not a"
                " valid cookie name."
            )
        if device_cookie_name == cookie_name:
            raise ConfigurationError(
                "TOKENAUTH_DEVICE_COOKIE_NAME must differ from TOKENAUTH_COOKIE_NAME;"
                f" both are {cookie_name!r}."
            )
        if device_cookie_name.startswith("__Host-"):
            # The cookie is scoped to the blueprint's path, which __Host- forbids.
            raise ConfigurationError(
                "TOKENAUTH_DEVICE_COOKIE_NAME cannot start with '__Host-': browsers"
                " drop such a cookie unless its Path is '/'. Use '__Secure-'."
            )
        if device_cookie_name.startswith("__Secure-") and not cookie_secure:
            raise ConfigurationError(
                "TOKENAUTH_DEVICE_COOKIE_NAME starting with '__Secure-' requires"
                " TOKENAUTH_COOKIE_SECURE=True; browsers drop it otherwise."
            )
        idle = get("IDLE_TIMEOUT")
        reuse = get("REUSE_INTERVAL")
        access_expires = parse_duration(get("ACCESS_EXPIRES"), key("ACCESS_EXPIRES"))
        jwks_path = get("JWKS_PATH") or None
        if jwks_path is not None and (
            not isinstance(jwks_path, str)
            or not re.fullmatch(r"/[A-Za-z0-9._~\-/]*", jwks_path)
        ):
            raise ConfigurationError(
                "TOKENAUTH_JWKS_PATH must be a path starting with '/', such as"
                " '/.well-known/jwks.json', or empty to turn it off;"
                f" got {jwks_path!r}."
            )
        max_age = get("JWKS_MAX_AGE")
        jwks_max_age = (
            access_expires / 3
            if max_age is None
            else parse_duration(max_age, key("JWKS_MAX_AGE"))
        )
        if jwks_max_age >= access_expires:
            # A verifier must see a new key before any token signed with it,
            # and keep a retired key's tokens verifiable until they expire.
            raise ConfigurationError(
                "TOKENAUTH_JWKS_MAX_AGE must be shorter than"
                " TOKENAUTH_ACCESS_EXPIRES (the overlap of a key rotation);"
                f" got {max_age!r}."
            )
        return cls(
            access_secret=access_secret,
            refresh_secret=refresh_secret,
            access_expires=access_expires,
            refresh_expires=parse_duration(
                get("REFRESH_EXPIRES"), key("REFRESH_EXPIRES")
            ),
            algorithm=keys.signing.algorithm,
            keys=keys,
            jwks_path=jwks_path,
            jwks_max_age=jwks_max_age,
            issuer=get("ISSUER"),
            audience=get("AUDIENCE"),
            leeway=(
                timedelta(0)
                if not get("LEEWAY")
                else parse_duration(get("LEEWAY"), key("LEEWAY"))
            ),
            database_url=str(database_url) if database_url else None,
            engine_options=dict(engine_options),
            cookie_name=cookie_name,
            cookie_secure=cookie_secure,
            cookie_samesite=samesite,
            cookie_domain=cookie_domain,
            cookie_path=cookie_path,
            bcrypt_rounds=_parse_int(get("BCRYPT_ROUNDS"), key("BCRYPT_ROUNDS"), 4, 31),
            password_min_length=minimum,
            password_max_length=maximum,
            password_blocklist=_parse_blocklist(
                get("PASSWORD_BLOCKLIST"), key("PASSWORD_BLOCKLIST")
            ),
            max_content_length=_parse_int(
                get("MAX_CONTENT_LENGTH"), key("MAX_CONTENT_LENGTH"), 256, 10 * 2**20
            ),
            allowed_origins=_parse_origins(
                get("ALLOWED_ORIGINS"), key("ALLOWED_ORIGINS")
            ),
            security_headers_app_wide=_parse_bool(
                get("SECURITY_HEADERS_APP_WIDE"), key("SECURITY_HEADERS_APP_WIDE")
            ),
            hsts=str(hsts) if hsts else None,
            idle_timeout=(parse_duration(idle, key("IDLE_TIMEOUT")) if idle else None),
            reuse_interval=(
                parse_duration(reuse, key("REUSE_INTERVAL")) if reuse else timedelta(0)
            ),
            redis_url=str(redis_url) if redis_url else None,
            redis_prefix=str(get("REDIS_PREFIX")),
            revocation=revocation,
            revocation_fail_open=_parse_bool(
                get("REVOCATION_FAIL_OPEN"), key("REVOCATION_FAIL_OPEN")
            ),
            ratelimit_enabled=_parse_bool(
                get("RATELIMIT_ENABLED"), key("RATELIMIT_ENABLED")
            ),
            ratelimit_storage_uri=str(storage_uri),
            ratelimit_register=limits["RATELIMIT_REGISTER"],
            ratelimit_login=limits["RATELIMIT_LOGIN"],
            ratelimit_refresh=limits["RATELIMIT_REFRESH"],
            ratelimit_login_failures=limits["RATELIMIT_LOGIN_FAILURES"],
            ratelimit_account_failures=limits["RATELIMIT_ACCOUNT_FAILURES"],
            device_cookie_name=device_cookie_name,
            trusted_proxies=_parse_int(
                get("TRUSTED_PROXIES"), key("TRUSTED_PROXIES"), 0, 10
            ),
            token_cache_size=_parse_int(
                get("TOKEN_CACHE_SIZE"), key("TOKEN_CACHE_SIZE"), 0, 10_000_000
            ),
            register_enabled=_parse_bool(
                get("REGISTER_ENABLED"), key("REGISTER_ENABLED")
            ),
            password_change_enabled=_parse_bool(
                get("PASSWORD_CHANGE_ENABLED"), key("PASSWORD_CHANGE_ENABLED")
            ),
            keys_dir=keys_dir,
            keys_reload_interval=_parse_interval(
                get("KEYS_RELOAD_INTERVAL"), key("KEYS_RELOAD_INTERVAL")
            ),
            signing_key_password=password,
            revocation_staleness=parse_duration(
                get("REVOCATION_STALENESS"), key("REVOCATION_STALENESS")
            ),
            revocation_listen_url=listen_url,
            refresh_async_commit=_parse_bool(
                get("REFRESH_ASYNC_COMMIT"), key("REFRESH_ASYNC_COMMIT")
            ),
        )


def config_from_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``TOKENAUTH_*`` variable of the environment, as config keys.

    A convenience for apps configured from the environment (the example app
    uses it); the extension itself only ever reads ``app.config``.
    """
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(PREFIX)}
