"""The configuration checks that need more than one key.

Each key is first parsed on its own through the table of
:mod:`._config_keys`; the functions of :data:`CHECKS` then run in order on
the parsed values, refuse the combinations that cannot work (a browser would
drop the cookie, two sources of signing keys, Redis revocation without Redis)
and fill in what is derived from several keys.  Each is small and named for
what it guards, so that an error message leads to one function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._keys import HMAC_ALGORITHMS, KeySet
from ._keysdir import load_keyset
from ._lifecycle_checks import LIFECYCLE_CHECKS
from ._passkey_checks import PASSKEY_CHECKS
from ._secrets import MIN_SECRET_BYTES, parse_secret
from .errors import ConfigurationError

#: The :class:`~._config.Settings` fields that no key of the same name
#: gives, and the keys they are built from.
DERIVED: dict[str, tuple[str, ...]] = {
    "keys": (
        "ACCESS_SECRET",
        "ALGORITHM",
        "SIGNING_KEY",
        "SIGNING_KEY_PASSWORD",
        "VERIFY_KEYS",
        "KEYS_DIR",
    ),
    "flows_on_by_default": ("PASSWORD_RESET_ENABLED", "CHANGE_EMAIL_ENABLED"),
}


@dataclass
class Reading:
    """The configuration being read: the parsed values, by field name (the
    key's name in lower case), which the checks complete; the values as
    given, for messages; and the whole app config, for the keys of other
    extensions we fall back on."""

    values: dict[str, Any]
    raw: Mapping[str, Any]
    config: Mapping[str, Any]


def signing_keys(r: Reading) -> None:
    """The access secret (required for HMAC, as long as the algorithm needs)
    and the key set, from the secret, a signing key or a keys directory."""
    v = r.values
    algorithm = v["algorithm"]
    signing_key, keys_dir = v["signing_key"], v["keys_dir"]
    access_secret: bytes | None = None
    if (signing_key is None and keys_dir is None) or v["access_secret"]:
        # Required for HMAC; with a signing key, still accepted (it only
        # verifies then) while the tokens it signed expire.
        access_secret = parse_secret(
            v["access_secret"],
            "TOKENAUTH_ACCESS_SECRET",
            HMAC_ALGORITHMS.get(algorithm or "HS256", MIN_SECRET_BYTES),
        )
    password = v["signing_key_password"]
    if keys_dir is None:
        keys = KeySet.from_config(
            algorithm=algorithm,
            access_secret=access_secret,
            signing_key=signing_key,
            password=password,
            verify_keys=v["verify_keys"],
        )
    else:
        # Two sources of keys would leave it unclear which one signs.
        if signing_key is not None or v["verify_keys"]:
            raise ConfigurationError(
                "TOKENAUTH_KEYS_DIR replaces TOKENAUTH_SIGNING_KEY and"
                " TOKENAUTH_VERIFY_KEYS: unset those two, or unset"
                " TOKENAUTH_KEYS_DIR."
            )
        keys = load_keyset(keys_dir, password, access_secret)
        if algorithm is not None and algorithm != keys.signing.algorithm:
            raise ConfigurationError(
                f"TOKENAUTH_ALGORITHM={algorithm}, but the signing key of"
                f" TOKENAUTH_KEYS_DIR is for {keys.signing.algorithm}: unset"
                " TOKENAUTH_ALGORITHM (each key of the directory is pinned to"
                " its own)."
            )
    v.update(access_secret=access_secret, keys=keys, algorithm=keys.signing.algorithm)


def refresh_secret(r: Reading) -> None:
    """Parsed here, after the access secret, so that an app missing both is
    told about the access secret first; and different from it, so that one
    token type can never pass for the other."""
    v = r.values
    v["refresh_secret"] = parse_secret(v["refresh_secret"], "TOKENAUTH_REFRESH_SECRET")
    if v["access_secret"] == v["refresh_secret"]:
        raise ConfigurationError(
            "TOKENAUTH_ACCESS_SECRET and TOKENAUTH_REFRESH_SECRET must be"
            " different, so that one token type can never pass for the other."
        )


def samesite_none_needs_secure(r: Reading) -> None:
    if r.values["cookie_samesite"] == "None" and not r.values["cookie_secure"]:
        raise ConfigurationError(
            "TOKENAUTH_COOKIE_SAMESITE='None' requires"
            " TOKENAUTH_COOKIE_SECURE=True; browsers drop such cookies otherwise."
        )


def cookie_prefix(r: Reading) -> None:
    """Refuse a cookie the browser would drop because of its name's prefix.

    RFC 6265bis section 4.1.3: a ``__Secure-`` cookie must be ``Secure``; a
    ``__Host-`` cookie must be ``Secure``, without ``Domain`` and with
    ``Path=/``.  Browsers match the prefixes case-insensitively, so do we.
    Such a cookie cannot be set or overwritten by a sibling subdomain or over
    plain http, which is what makes the prefixes worth having (cookie
    tossing); a misconfigured one would silently never be stored.
    """
    v = r.values
    name, secure = v["cookie_name"], v["cookie_secure"]
    lowered = name.lower()
    if lowered.startswith("__host-"):
        problems: list[str] = []
        if not secure:
            problems.append("TOKENAUTH_COOKIE_SECURE=True")
        if v["cookie_domain"] is not None:
            problems.append("no TOKENAUTH_COOKIE_DOMAIN")
        if v["cookie_path"] != "/":
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


def device_cookie(r: Reading) -> None:
    """The device cookie beside the refresh cookie: another name, and
    ``Secure`` when its prefix requires it."""
    v = r.values
    name = v["device_cookie_name"]
    if name == v["cookie_name"]:
        raise ConfigurationError(
            "TOKENAUTH_DEVICE_COOKIE_NAME must differ from TOKENAUTH_COOKIE_NAME;"
            f" both are {name!r}."
        )
    if name.startswith("__Secure-") and not v["cookie_secure"]:
        raise ConfigurationError(
            "TOKENAUTH_DEVICE_COOKIE_NAME starting with '__Secure-' requires"
            " TOKENAUTH_COOKIE_SECURE=True; browsers drop it otherwise."
        )


def revocation_mode(r: Reading) -> None:
    """``auto`` resolved: Redis when there is a Redis URL, else the database."""
    v = r.values
    if v["revocation"] == "auto":
        v["revocation"] = "redis" if v["redis_url"] else "database"
    if v["revocation"] == "redis" and not v["redis_url"]:
        raise ConfigurationError(
            "TOKENAUTH_REVOCATION='redis' needs TOKENAUTH_REDIS_URL, e.g."
            " 'redis://127.0.0.1:6379/0'."
        )


def ratelimit_storage(r: Reading) -> None:
    """Unset: Flask-Limiter's own key, else our Redis, else memory."""
    v = r.values
    v["ratelimit_storage_uri"] = str(
        v["ratelimit_storage_uri"]
        or r.config.get("RATELIMIT_STORAGE_URI")
        or v["redis_url"]
        or "memory://"
    )


def jwks_max_age(r: Reading) -> None:
    """Unset: a third of the access-token lifetime; never as long as it, as
    a verifier must see a new key before any token signed with it, and keep a
    retired key's tokens verifiable until they expire."""
    v = r.values
    if v["jwks_max_age"] is None:
        v["jwks_max_age"] = v["access_expires"] / 3
    if v["jwks_max_age"] >= v["access_expires"]:
        raise ConfigurationError(
            "TOKENAUTH_JWKS_MAX_AGE must be shorter than"
            " TOKENAUTH_ACCESS_EXPIRES (the overlap of a key rotation);"
            f" got {r.raw['jwks_max_age']!r}."
        )


def mfa_required_needs_a_factor(r: Reading) -> None:
    """``TOKENAUTH_MFA = "required"`` with every kind of factor off: no
    user could ever enrol, and every session would stay enrolment-only."""
    v = r.values
    if v["mfa"] == "required" and not (v["totp_enabled"] or v["passkeys_enabled"]):
        raise ConfigurationError(
            "TOKENAUTH_MFA='required' needs a second factor users can enrol:"
            " set TOKENAUTH_TOTP_ENABLED=True or TOKENAUTH_PASSKEYS_ENABLED=True."
        )


#: Run in this order, after every key was parsed on its own.
CHECKS: tuple[Callable[[Reading], None], ...] = (
    signing_keys,
    refresh_secret,
    samesite_none_needs_secure,
    cookie_prefix,
    device_cookie,
    # TOKENAUTH_DATABASE_URL unset: the app's database, see _default_db.py.
    revocation_mode,
    ratelimit_storage,
    jwks_max_age,
    mfa_required_needs_a_factor,
    *LIFECYCLE_CHECKS,
    *PASSKEY_CHECKS,
)
