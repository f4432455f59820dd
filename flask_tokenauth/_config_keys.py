"""Every ``TOKENAUTH_*`` key, declared once: its name, default, parser and
the one line the documentation's configuration reference shows for it.

:meth:`Settings.from_mapping <._config.Settings.from_mapping>` reads every key
through this table, the unknown-key error lists its names, and the
configuration reference (``docs/configuration.md``) is generated from it by
the Sphinx extension ``docs/_ext/tokenauth_config.py`` at each build
(``tests/test_docs.py`` fails on a key missing from its output).

How to add a key (one entry here, one field there):

1. Add a :class:`Key` to :data:`KEYS` next to the related keys: the name
   without the prefix, the default *as a user would write it* (``"15m"``,
   ``True``, ``None`` for unset), a parser from :mod:`._parsers` (or a new
   one there, ``(value, key) -> parsed``), and the one-line meaning the
   docs show (MyST Markdown; a link to a heading of any docs page is
   written ``[text](#anchor)``, and the extension points it at that page).
   Give ``shown=`` only when the default column must say more than the
   default in backticks ("unset", "**required**", a derivation).
2. Add the field ``<name in lower case>`` to
   :class:`~flask_tokenauth._config.Settings`; it receives the parsed value.
3. Only if the key's value depends on another key (as the secrets and the
   signing keys do: their parser is ``as_is``), add a small named check
   to :data:`._config_checks.CHECKS` (and, for a field no single key gives,
   an entry in ``DERIVED``).
4. Nothing to regenerate: ``make docs`` renders the new key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._parsers import (
    Parser,
    as_dict,
    as_is,
    as_str,
    choice,
    duration_or_zero,
    int_range,
    non_empty_str,
    none_or,
    optional,
    parse_algorithm,
    parse_base_url,
    parse_blocklist,
    parse_bool,
    parse_cookie_name,
    parse_cookie_path,
    parse_device_cookie_name,
    parse_duration,
    parse_header_types,
    parse_interval,
    parse_jwks_path,
    parse_keys_dir,
    parse_limit,
    parse_link_template,
    parse_listen_url,
    parse_origins,
    parse_password,
    parse_samesite,
    parse_service_names,
)

PREFIX = "TOKENAUTH_"

REVOCATION_MODES = ("auto", "redis", "database", "off")
EMAIL_VERIFICATION_MODES = ("off", "optional", "required")
MFA_MODES = ("optional", "required")
MAIL_BACKENDS = ("auto", "flask-mail", "flask-mailman", "smtp", "log", "callable")


@dataclass(frozen=True)
class Key:
    """One configuration key."""

    #: The name without :data:`PREFIX`; lower-cased, the :class:`Settings`
    #: field it fills.
    name: str
    #: Used when the key is not set, and parsed like a set value.
    default: Any
    #: ``(value, full_key_name) -> parsed``; raises ``ConfigurationError``.
    parse: Parser
    #: The docs' one-line meaning (MyST Markdown).
    doc: str
    #: The default as the docs show it; empty: the default in backticks.
    shown: str = field(default="")

    @property
    def full_name(self) -> str:
        return PREFIX + self.name

    @property
    def field(self) -> str:
        return self.name.lower()

    def default_shown(self) -> str:
        return self.shown or f"`{self.default}`"


#: In the docs' order: keys first, then tokens, cookies, passwords,
#: headers, sessions, revocation, rate limits, endpoints.
# A table: one entry per key, laid out by hand.
# fmt: off
KEYS: tuple[Key, ...] = (
    Key("ACCESS_SECRET", None, as_is,
        "HMAC key of the access tokens: at least 32 bytes (48 for HS384, 64 for"
        " HS512). Next to `TOKENAUTH_SIGNING_KEY` or `TOKENAUTH_KEYS_DIR` it only"
        " verifies (HS256), for a move from HMAC to a key, with no end date: start-up"
        " logs a"
        " warning saying when to unset it.",
        shown="**required** without a signing key"),
    Key("SIGNING_KEY", None, optional(as_is),
        "An EdDSA, ES256 or RS256 private key: a path to a PEM or JWK file, or the"
        " text itself (see [Signing keys](#signing-keys)).",
        shown="unset (HMAC)"),
    Key("SIGNING_KEY_PASSWORD", None, parse_password,
        "Opens encrypted PEM keys (of both key settings).",
        shown="unset"),
    Key("VERIFY_KEYS", (), as_is,
        "Previous and announced keys, accepted and published: a list, a JWKS document,"
        " PEM blocks, or comma-separated paths.",
        shown="none"),
    Key("JWKS_PATH", "/.well-known/jwks.json", parse_jwks_path,
        "Where the blueprint publishes the public keys (relative to its prefix); empty"
        " to turn off."),
    Key("OPENAPI_PATH", "/openapi.json", parse_jwks_path,
        "Where the blueprint serves its OpenAPI 3.1 description (relative to its"
        " prefix); empty to turn off."),
    Key("KEYS_DIR", None, parse_keys_dir,
        "A directory of signing keys and their states that every process reloads (see"
        " [Signing keys](#signing-keys)); replaces the two key settings above.",
        shown="unset"),
    Key("KEYS_RELOAD_INTERVAL", "1s", parse_interval,
        "How often a process checks the keys directory for a change."),
    Key("JWKS_MAX_AGE", None, none_or(parse_duration),
        "`Cache-Control: max-age` of the JWKS; must be shorter than the access-token"
        " lifetime.",
        shown="a third of `TOKENAUTH_ACCESS_EXPIRES`"),
    Key("REFRESH_SECRET", None, as_is,
        "Key of the refresh-token hashes: at least 32 bytes, and different from the"
        " access secret.",
        shown="**required**"),
    Key("ACCESS_EXPIRES", "15m", parse_duration,
        'Access-token lifetime: a `timedelta`, seconds, or `"900s"`, `"15m"`, `"12h"`,'
        ' `"7d"`, `"2w"`.'),
    Key("REFRESH_EXPIRES", "7d", parse_duration,
        "Lifetime of a session (a refresh-token family). Absolute: rotation never"
        " extends it."),
    Key("ALGORITHM", None, parse_algorithm,
        "`HS256`, `HS384`, `HS512`, `EdDSA`, `ES256` or `RS256`; with a signing key it"
        " must match the key. Each key verifies with its own algorithm only.",
        shown="`HS256`, or the signing key's"),
    Key("ISSUER", "flask-tokenauth", non_empty_str,
        "`iss` claim, set and required."),
    Key("AUDIENCE", "flask-tokenauth-client", non_empty_str,
        "`aud` claim, set and required."),
    Key("LEEWAY", 0, duration_or_zero,
        "Clock skew allowed when checking `exp`, `nbf`, `iat` (a duration)."),
    Key("HEADER_TYPES", ("Bearer",), parse_header_types,
        "Schemes of `Authorization: <type> <token>` accepted, in any case (a list,"
        " or comma-separated in a string): `[\"Token\"]` for Flask-JWT-Extended's"
        " `JWT_HEADER_TYPE = \"Token\"`, `[\"Bearer\", \"Token\"]` for both, `\"\"`"
        " among them for a bare `Authorization: <token>`. Another scheme is no token"
        " (`TOKEN_MISSING`; anonymous in an optional view). `WWW-Authenticate` and"
        " the test helpers use the first non-empty type. The browser client sends"
        " `Bearer`: keep it in the list if you use it.",
        shown='`("Bearer",)`'),
    Key("DATABASE_URL", None, optional(as_str),
        "A database of our own for our tables. `postgres://` and `postgresql://` use"
        " psycopg2. Ignored when an engine is passed to `TokenAuth`.",
        shown="the app's database (see [Which database](#which-database))"),
    Key("ENGINE_OPTIONS", {}, as_dict,
        "Extra `create_engine` arguments of an engine of our own (not of"
        " Flask-SQLAlchemy's: its `SQLALCHEMY_ENGINE_OPTIONS` apply). By default idle"
        " pooled connections are pinged before reuse and `hide_parameters=True` keeps"
        " statement parameters out of error messages."),
    Key("COOKIE_NAME", "refresh_token", parse_cookie_name,
        "Name of the refresh cookie."),
    Key("COOKIE_SECURE", True, parse_bool,
        "`Secure` attribute. Turn off only for plain-http development."),
    Key("COOKIE_SAMESITE", "Strict", parse_samesite,
        "`Strict`, `Lax` or `None` (`None` requires `Secure`)."),
    Key("COOKIE_DOMAIN", None, optional(as_is),
        "`Domain` attribute (unset: host-only cookie).",
        shown="unset"),
    Key("COOKIE_PATH", None, parse_cookie_path,
        '`Path` attribute; `"/"` for a `__Host-` cookie name (see [Cookie '
        "tossing](#the-refresh-cookie-tossing-prefixes-origin)).",
        shown="the blueprint's path"),
    Key("BCRYPT_ROUNDS", 12, int_range(4, 31),
        "bcrypt cost (4-31). Existing hashes are rehashed at the new cost on the next"
        " login."),
    Key("PASSWORD_MIN_LENGTH", 8, int_range(8, 64),
        "Minimum password length in characters (8-64)."),
    Key("PASSWORD_MAX_LENGTH", 256, int_range(64, 4096),
        "Maximum password length in characters (64-4096); longer is refused before any"
        " hashing."),
    Key("PASSWORD_BLOCKLIST", True, parse_blocklist,
        "Refuse new passwords found in the shipped list of 197,406 common passwords"
        " (`PASSWORD_TOO_COMMON`). Turn off only if your app checks a list of its"
        " own."),
    # NIST SP 800-63B-4's context-specific words, beside the user's login.
    Key("SERVICE_NAME", None, parse_service_names,
        "The service's name, or a list of its names (`[\"Acme\", \"acme.example\"]`):"
        " new passwords that contain one are refused (`PASSWORD_HAS_CONTEXT_WORD`),"
        " as they are when they contain the user's login. Unset: only the login is"
        " checked.",
        shown="unset"),
    Key("MAX_CONTENT_LENGTH", 10240, int_range(256, 10 * 2**20),
        "Largest JSON body accepted by `/register` and `/login`, in bytes (413"
        " above)."),
    Key("ALLOWED_ORIGINS", (), parse_origins,
        "Origins (e.g. `https://app.example.com`, comma-separated in a string) allowed"
        " to call `/refresh` and `/logout` besides the API's own.",
        shown="none"),
    Key("SECURITY_HEADERS_APP_WIDE", False, parse_bool,
        "Also add the security headers below to every response of the app, not just"
        " the blueprint's."),
    Key("HSTS", "max-age=31536000; includeSubDomains", optional(as_str),
        "`Strict-Transport-Security` value; empty to leave the header out."),
    Key("IDLE_TIMEOUT", None, optional(parse_duration),
        "A session not refreshed for this long ends (a duration), within its absolute"
        " lifetime.",
        shown="unset"),
    Key("REUSE_INTERVAL", 0, duration_or_zero,
        "How long after a rotation the previous refresh token may be presented again"
        " without counting as theft (see [Concurrent"
        " refreshes](#concurrent-refreshes-from-one-client)). `0`: never."),
    Key("REDIS_URL", None, optional(as_str),
        "Redis for the revocation store and, unless set otherwise, the rate limits:"
        " `redis://host:6379/0`. Needs the `redis` package: `pip install 'redis>=5'`,"
        " or the `[redis]` extra of `flask-tokenauth-jwt`.",
        shown="unset"),
    Key("REDIS_PREFIX", "tokenauth:", as_str,
        "Prefix of every Redis key we write."),
    Key("REVOCATION", "auto", choice(*REVOCATION_MODES),
        "Where revocations of access tokens are checked: `redis`, `database`, `off`;"
        " `auto` is `redis` with a Redis URL, else `database`."),
    Key("REVOCATION_FAIL_OPEN", False, parse_bool,
        "When the revocation store is unreachable: `False` answers 503, `True` lets"
        " tokens through (logged)."),
    Key("REVOCATION_STALENESS", "1s", parse_duration,
        "Database store: the longest a revocation made in another process may take to"
        " apply here (a duration; > 0)."),
    Key("REVOCATION_LISTEN_URL", None, parse_listen_url,
        "Database store on PostgreSQL: where each process's listener connects for"
        " `LISTEN`. Set it to a direct (or PgBouncer session-mode) URL when the"
        " database URL goes through PgBouncer in transaction mode.",
        shown="the database URL"),
    Key("REFRESH_ASYNC_COMMIT", False, parse_bool,
        "PostgreSQL: a refresh commits its rotation without waiting for the WAL flush"
        " (`synchronous_commit = off` for that transaction only). Faster at concurrency"
        " 1, but after a database server crash the last rotations may be lost, and the"
        " refresh tokens they spent are valid again."),
    Key("RATELIMIT_ENABLED", True, parse_bool,
        "Rate limits on the auth endpoints."),
    Key("RATELIMIT_STORAGE_URI", None, optional(as_str),
        "Flask-Limiter storage. In memory, each process counts alone.",
        shown="`RATELIMIT_STORAGE_URI`, else `TOKENAUTH_REDIS_URL`, else"
        " `memory://`"),
    Key("RATELIMIT_REGISTER", "10/minute;100/hour", parse_limit,
        "Per client IP. Flask-Limiter syntax."),
    Key("RATELIMIT_LOGIN", "20/minute;200/hour", parse_limit,
        "Per client IP, on `/login` and `/password`."),
    Key("RATELIMIT_REFRESH", "60/minute", parse_limit,
        "Per client IP."),
    Key("RATELIMIT_LOGIN_FAILURES", "5/minute;20/hour", parse_limit,
        "Wrong passwords (login and `/password`) per account and client address, or"
        " per account and trusted device."),
    Key("RATELIMIT_ACCOUNT_FAILURES", "100/day", parse_limit,
        "Wrong passwords per account from all clients that are not a trusted device of"
        " that account (see [Rate limiting](#rate-limiting))."),
    Key("DEVICE_COOKIE_NAME", "tokenauth_device", parse_device_cookie_name,
        "Name of the device cookie that marks a client as one that logged in to an"
        " account before."),
    Key("REGISTER_ENABLED", True, parse_bool,
        "`False`: `/register` answers `404 NOT_FOUND` (your app has its own sign-up)."
        " Required with a host user store that has no `create` hook."),
    Key("PASSWORD_CHANGE_ENABLED", True, parse_bool,
        "`False`: `/password` answers `404 NOT_FOUND` (your app changes passwords"
        " itself; call `revoke_user_sessions` there)."),
    # Account lifecycle: the flows that mail a link or a code (see
    # "Account lifecycle" in the docs); each flow module reads its keys.
    Key("EMAIL_VERIFICATION", "off", choice(*EMAIL_VERIFICATION_MODES),
        "`off` (the tutorial's contract), `optional` (a link is mailed at"
        " registration and on request; `email_verified` claim) or `required` (also"
        " `403 EMAIL_NOT_VERIFIED` at login, after a correct password, until the"
        " address is verified)."),
    Key("PASSWORD_RESET_ENABLED", None, none_or(parse_bool),
        "`/forgot-password` and `/reset-password`; `False`: `404 NOT_FOUND`.",
        shown="on when mail is set up"),
    Key("CHANGE_EMAIL_ENABLED", None, none_or(parse_bool),
        "`/change-email` and its confirm and cancel links; `False`: `404 NOT_FOUND`.",
        shown="on when mail is set up"),
    Key("EMAIL_LOGIN_ENABLED", False, parse_bool,
        "Sign in by email: a one-time link and a 6-digit code in one mail"
        " (`/email-login`)."),
    Key("REGISTER_ENUMERATION_SAFE", False, parse_bool,
        "`/register` answers an existing address as a new one (`202`) and mails its"
        " owner instead of answering `409 EMAIL_TAKEN`."),
    Key("VERIFY_EMAIL_EXPIRES", "24h", parse_duration,
        "Lifetime of an address-verification link."),
    Key("RESET_PASSWORD_EXPIRES", "30m", parse_duration,
        "Lifetime of a password-reset link."),
    Key("CHANGE_EMAIL_EXPIRES", "24h", parse_duration,
        "Lifetime of the confirm link of an address change, and of the cancel link"
        " mailed to the old address."),
    Key("EMAIL_LOGIN_EXPIRES", "10m", parse_duration,
        "Lifetime of a sign-in link and code."),
    Key("EMAIL_LOGIN_ATTEMPTS", 5, int_range(1, 10),
        "Wrong codes a sign-in code survives; then it dies."),
    Key("LINK_BASE_URL", None, parse_base_url,
        "Scheme and host (and path prefix) of the links in mails, e.g."
        " `https://app.example.com`. Never taken from the request's `Host`.",
        shown="`PREFERRED_URL_SCHEME://SERVER_NAME`; required when a flow is on"),
    Key("VERIFY_EMAIL_URL", "/verify-email#token={token}", parse_link_template,
        "The verification page's link, after the base URL; the token goes in the"
        " fragment, out of `Referer` and access logs."),
    Key("RESET_PASSWORD_URL", "/reset-password#token={token}", parse_link_template,
        "The reset page's link."),
    Key("CHANGE_EMAIL_CONFIRM_URL", "/change-email/confirm#token={token}",
        parse_link_template,
        "The link mailed to the new address to confirm a change."),
    Key("CHANGE_EMAIL_CANCEL_URL", "/change-email/cancel#token={token}",
        parse_link_template,
        "The link mailed to the old address to cancel a change."),
    Key("EMAIL_LOGIN_URL", "/email-login#token={token}", parse_link_template,
        "The sign-in link of an email login."),
    Key("RATELIMIT_MAIL", "5/minute;50/hour", parse_limit,
        "Per client IP, on every endpoint that may send mail."),
    Key("RATELIMIT_MAIL_ADDRESS", "3/10minutes;10/day", parse_limit,
        "Mails per address and purpose; beyond it the request answers as it would"
        " have and no mail is sent (signal `mail_limited`)."),
    # Mail: see _mail.py.
    Key("MAIL_BACKEND", "auto", choice(*MAIL_BACKENDS),
        "`auto`: Flask-Mail or Flask-Mailman when the app has it, else `smtp` when"
        " `MAIL_SERVER` is set; `smtp` (stdlib `smtplib` with the `MAIL_*` keys"
        " Flask-Mail reads), `log` (development: each mail logged, links"
        " clickable), `callable` (`TOKENAUTH_MAIL_SENDER`)."),
    Key("MAIL_SENDER", None, optional(as_is),
        "A callable `send(message)` that delivers (or queues: Celery, RQ) a"
        " `flask_tokenauth.mail.Message`; implies `MAIL_BACKEND` `callable`.",
        shown="unset"),
    Key("MAIL_TIMEOUT", "10s", parse_interval,
        "How long a mail sender waits for the mail server (to connect, then for"
        " each answer) before the mail fails (`mail_failed`); Flask-Mailman's own"
        " `MAIL_TIMEOUT` wins for it."),
    # Second factor and step-up (see "Second factor" in the docs).
    Key("MFA", "optional", choice(*MFA_MODES),
        "`optional`: users may enrol a second factor, and those who did must use it"
        " (`401 MFA_REQUIRED` until they do); `required`: every user must enrol"
        " before reaching any other view (`403 MFA_ENROLLMENT_REQUIRED`)."),
    Key("MFA_PENDING_EXPIRES", "10m", parse_duration,
        "Lifetime of a session that waits for its second factor (a password login"
        " of a user with a factor)."),
    Key("REAUTHENTICATION_MAX_AGE", "10m", parse_duration,
        "How recent the last authentication must be for factor removal, adding"
        " a factor to a user who has one, recovery-code regeneration and views"
        " with `@login_required(fresh=True)` (`401 REAUTHENTICATION_REQUIRED`);"
        " `/password` and `/change-email` take the current password instead."),
    Key("TOTP_ENABLED", True, parse_bool,
        "Authenticator-app codes (TOTP, RFC 6238); `False`: `404 NOT_FOUND` on"
        " their endpoints. Recovery codes and `GET /mfa` stay while passkeys are"
        " on; with both off every second-factor endpoint is `404 NOT_FOUND`."),
    Key("TOTP_ISSUER", None, optional(as_str),
        "The issuer an authenticator app shows next to the account.",
        shown="the first `TOKENAUTH_SERVICE_NAME`, else the app's name"),
    Key("PASSKEYS_ENABLED", False, parse_bool,
        "Passkeys (WebAuthn): sign in without a password, or as a second factor."
        " Needs `TOKENAUTH_WEBAUTHN_RP_ID` and `TOKENAUTH_WEBAUTHN_ORIGINS`."),
    Key("WEBAUTHN_RP_ID", None, optional(as_str),
        "The relying-party id: your site's registrable domain (`example.com`).",
        shown="unset"),
    Key("WEBAUTHN_RP_NAME", None, optional(as_str),
        "The relying-party name authenticators show.",
        shown="the first `TOKENAUTH_SERVICE_NAME`, else the RP id"),
    Key("WEBAUTHN_ORIGINS", (), parse_origins,
        "Origins allowed to run the passkey ceremonies (`https://app.example.com`,"
        " comma-separated in a string).",
        shown="none"),
    Key("TOKEN_CACHE_SIZE", 4096, int_range(0, 10_000_000),
        "Verified access tokens each process remembers (about 1.5 KB each), so a token"
        " already seen skips signature checking; `exp` and revocation are still"
        " checked on every request. `0` turns the cache off."),
    Key("TRUSTED_PROXIES", 0, int_range(0, 10),
        "How many proxies in front of the app append to `X-Forwarded-For`; `0` uses"
        " the connection's address."),
)
# fmt: on

BY_NAME = {key.name: key for key in KEYS}
