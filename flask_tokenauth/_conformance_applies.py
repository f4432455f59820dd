"""When a requirement applies to an app: predicates over its :class:`Context`.

Each answers ``None`` when the requirement applies, or the reason it does
not, in terms the app's owner can act on: the setting that turned a feature
off, or the value that does not meet the requirement ("not met as
configured: ...").  A requirement that is not met because of a setting is
reported as not applicable with that reason, never as proven.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import Settings

__all__ = ["Applies", "Context"]


@dataclass(frozen=True)
class Context:
    """What applicability depends on: the app's settings, whether its user
    store has email addresses, and which extras are installed."""

    settings: Settings
    has_email: bool = True
    webauthn_installed: bool = False


#: ``None``: the requirement applies; a string: why it does not.
Applies = Callable[[Context], "str | None"]


def always(_: Context) -> str | None:
    return None


def setting_on(attr: str, key: str) -> Applies:
    """Applies when the boolean setting ``attr`` is on."""

    def check(ctx: Context) -> str | None:
        return None if getattr(ctx.settings, attr) else f"TOKENAUTH_{key} is off"

    return check


def all_of(*checks: Applies) -> Applies:
    def check(ctx: Context) -> str | None:
        for one in checks:
            reason = one(ctx)
            if reason is not None:
                return reason
        return None

    return check


def mail_flow(attr: str, key: str) -> Applies:
    def has_email(ctx: Context) -> str | None:
        return None if ctx.has_email else "the user store has no email addresses"

    return all_of(has_email, setting_on(attr, key))


def passkeys(ctx: Context) -> str | None:
    if not ctx.webauthn_installed:
        return "the webauthn package (extra [passkeys]) is not installed"
    return setting_on("passkeys_enabled", "PASSKEYS_ENABLED")(ctx)


totp = setting_on("totp_enabled", "TOTP_ENABLED")
blocklist = setting_on("password_blocklist", "PASSWORD_BLOCKLIST")
ratelimit = setting_on("ratelimit_enabled", "RATELIMIT_ENABLED")
password_change = setting_on("password_change_enabled", "PASSWORD_CHANGE_ENABLED")
password_reset = mail_flow("password_reset_enabled", "PASSWORD_RESET_ENABLED")
email_login = mail_flow("email_login_enabled", "EMAIL_LOGIN_ENABLED")


def second_factor(ctx: Context) -> str | None:
    if ctx.settings.totp_enabled or passkeys(ctx) is None:
        return None
    return "no second factor is on (TOKENAUTH_TOTP_ENABLED, TOKENAUTH_PASSKEYS_ENABLED)"


def revocation(ctx: Context) -> str | None:
    if ctx.settings.revocation == "off":
        return "TOKENAUTH_REVOCATION is off: access tokens live until they expire"
    return None


def secure_cookie(ctx: Context) -> str | None:
    if not ctx.settings.cookie_secure:
        return "not met as configured: TOKENAUTH_COOKIE_SECURE is off"
    return None


def prefixed_cookie(ctx: Context) -> str | None:
    name = ctx.settings.cookie_name
    if not name.startswith(("__Host-", "__Secure-")):
        return (
            f"not met as configured: TOKENAUTH_COOKIE_NAME {name!r} has neither"
            " the __Host- nor the __Secure- prefix"
        )
    return secure_cookie(ctx)


def host_cookie(ctx: Context) -> str | None:
    name = ctx.settings.cookie_name
    if not name.startswith("__Host-"):
        return f"not met as configured: TOKENAUTH_COOKIE_NAME {name!r} lacks __Host-"
    return None


def samesite(ctx: Context) -> str | None:
    if ctx.settings.cookie_samesite not in ("Strict", "Lax"):
        return "not met as configured: TOKENAUTH_COOKIE_SAMESITE is not Strict or Lax"
    return None


def hsts(ctx: Context) -> str | None:
    value = ctx.settings.hsts or ""
    age = next(
        (p.split("=", 1)[1] for p in value.split(";") if "max-age=" in p.lower()),
        "0",
    )
    if not age.strip().isdigit() or int(age) < 31_536_000:
        return "not met as configured: TOKENAUTH_HSTS has no max-age of a year"
    return None


def idle_timeout(ctx: Context) -> str | None:
    if ctx.settings.idle_timeout is None:
        return "not met as configured: TOKENAUTH_IDLE_TIMEOUT is unset"
    return None


def mfa_required(ctx: Context) -> str | None:
    if ctx.settings.mfa != "required":
        return "not met as configured: TOKENAUTH_MFA is optional (set required)"
    return second_factor(ctx)
