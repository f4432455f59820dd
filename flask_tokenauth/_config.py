"""Configuration: the validated ``TOKENAUTH_*`` settings of one app.

The keys are read once, in :meth:`TokenAuth.init_app`, into a frozen
:class:`Settings`.  A bad value raises :class:`ConfigurationError` at start-up
with a message that names the key to set; nothing is read lazily per request.

Every key (name, default, parser, documentation) is declared once, in
:mod:`._config_keys`; the parsers are in :mod:`._parsers`, the checks that
need several keys in :mod:`._config_checks`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from ._config_checks import CHECKS, Reading
from ._config_keys import KEYS, PREFIX, REVOCATION_MODES
from ._keys import KeySet
from ._parsers import parse_duration
from ._secrets import MIN_SECRET_BYTES, PLACEHOLDER_MARKERS, PLACEHOLDER_SECRETS
from .errors import ConfigurationError

__all__ = [
    "DEFAULTS",
    "MIN_SECRET_BYTES",
    "PLACEHOLDER_MARKERS",
    "PLACEHOLDER_SECRETS",
    "PREFIX",
    "REVOCATION_MODES",
    "Settings",
    "config_from_environ",
    "parse_duration",
]

#: Every key (without the prefix) with its default, as written in the table.
DEFAULTS: dict[str, Any] = {key.name: key.default for key in KEYS}

_NAMES = frozenset(key.full_name for key in KEYS)


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one application.

    Each field holds the parsed value of the key of the same name in upper
    case (see :mod:`._config_keys`), completed by the checks across keys,
    or, for the few no single key gives, is derived from several
    (:data:`._config_checks.DERIVED`).
    """

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
    #: Where the blueprint serves its OpenAPI description; ``None``: not served.
    openapi_path: str | None
    issuer: str
    audience: str
    leeway: timedelta
    #: ``TOKENAUTH_HEADER_TYPES`` as given (see :mod:`.globals`).
    header_types: tuple[str, ...]
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
    #: Names of the service a new password must not contain (may be empty).
    service_name: tuple[str, ...]
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
    # Account lifecycle (see docs/mail.md).
    #: ``"off"``, ``"optional"`` or ``"required"``.
    email_verification: str = "off"
    #: ``None`` resolved by :func:`._lifecycle_checks.mail_flows`.
    password_reset_enabled: bool = False
    change_email_enabled: bool = False
    #: Those of the two above that are on because mail is set up, not set:
    #: a user store without addresses refuses only a flow switched on.
    flows_on_by_default: frozenset[str] = frozenset()
    email_login_enabled: bool = False
    register_enumeration_safe: bool = False
    verify_email_expires: timedelta = timedelta(hours=24)
    reset_password_expires: timedelta = timedelta(minutes=30)
    change_email_expires: timedelta = timedelta(hours=24)
    email_login_expires: timedelta = timedelta(minutes=10)
    email_login_attempts: int = 5
    #: Where the links in mails point; ``None`` only while no flow is on.
    link_base_url: str | None = None
    verify_email_url: str = "/verify-email#token={token}"
    reset_password_url: str = "/reset-password#token={token}"
    change_email_confirm_url: str = "/change-email/confirm#token={token}"
    change_email_cancel_url: str = "/change-email/cancel#token={token}"
    email_login_url: str = "/email-login#token={token}"
    ratelimit_mail: str = "5/minute;50/hour"
    ratelimit_mail_address: str = "3/10minutes;10/day"
    #: ``"auto"`` stays ``"auto"``: the sender is chosen per app at start-up, or
    #: at the first mail (see :func:`._mail_senders.choose`).
    mail_backend: str = "auto"
    mail_sender: Any = None
    # Second factor and step-up (see docs/second-factor.md).
    #: ``"optional"`` or ``"required"``.
    mfa: str = "optional"
    mfa_pending_expires: timedelta = timedelta(minutes=10)
    reauthentication_max_age: timedelta = timedelta(minutes=10)
    totp_enabled: bool = True
    totp_issuer: str | None = None
    passkeys_enabled: bool = False
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str | None = None
    webauthn_origins: frozenset[str] = frozenset()
    mail_timeout: timedelta = timedelta(seconds=10)

    @classmethod
    def from_mapping(
        cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read and validate the ``TOKENAUTH_*`` keys of ``config``.

        ``overrides`` (lower-case names without the prefix) take precedence;
        they are what :class:`~flask_tokenauth.TokenAuth` was given in code.
        """
        _refuse_unknown_keys(config)
        overrides = overrides or {}
        raw = {
            key.field: overrides.get(key.field, config.get(key.full_name, key.default))
            for key in KEYS
        }
        reading = Reading(
            values={
                key.field: key.parse(raw[key.field], key.full_name) for key in KEYS
            },
            raw=raw,
            config=config,
        )
        for check in CHECKS:
            check(reading)
        return cls(**{f.name: reading.values[f.name] for f in fields(cls)})


def _refuse_unknown_keys(config: Mapping[str, Any]) -> None:
    """A typo in a key name is an error, not a silently ignored setting."""
    unknown = sorted(k for k in config if k.startswith(PREFIX) and k not in _NAMES)
    if unknown:
        raise ConfigurationError(
            f"Unknown configuration key(s): {', '.join(unknown)}. Known keys:"
            f" {', '.join(key.full_name for key in KEYS)}."
        )


def config_from_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``TOKENAUTH_*`` variable of the environment, as config keys.

    A convenience for apps configured from the environment (the example app
    uses it); the extension itself only ever reads ``app.config``.
    """
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(PREFIX)}
