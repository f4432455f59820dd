"""The configuration checks of the account-lifecycle flows (the ones that
mail a link or a code): is there a way to send mail, and where do the links
point.  Run after the keys are parsed, with :data:`._config_checks.CHECKS`.

Whether mail is set up is read from the configuration only, at start-up:
``TOKENAUTH_MAIL_BACKEND`` other than ``auto``, a ``TOKENAUTH_MAIL_SENDER``,
or ``MAIL_SERVER`` (the key Flask-Mail and Flask-Mailman read).  The flows
whose default is "on when mail is set up" are then on; a flow switched on
without mail stops the app here, saying what to set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._config_checks import Reading

_MAIL_HINT = (
    "set MAIL_SERVER (and the other MAIL_* keys Flask-Mail reads), or"
    " TOKENAUTH_MAIL_BACKEND='log' in development, or TOKENAUTH_MAIL_SENDER to a"
    " callable"
)


def mail_backend(r: Reading) -> None:
    """A sender callable implies the ``callable`` backend, which needs one."""
    v = r.values
    if v["mail_sender"] is not None:
        if not callable(v["mail_sender"]):
            raise ConfigurationError(
                "TOKENAUTH_MAIL_SENDER must be a callable send(message); got"
                f" {v['mail_sender']!r}."
            )
        if v["mail_backend"] == "auto":
            v["mail_backend"] = "callable"
    if v["mail_backend"] == "callable" and v["mail_sender"] is None:
        raise ConfigurationError(
            "TOKENAUTH_MAIL_BACKEND='callable' needs TOKENAUTH_MAIL_SENDER, a"
            " callable send(message)."
        )


def mail_is_set_up(r: Reading) -> bool:
    return r.values["mail_backend"] != "auto" or bool(r.config.get("MAIL_SERVER"))


def mail_flows(r: Reading) -> None:
    """The flows that default to "on when mail is set up" resolved; every
    flow that is on needs mail."""
    v = r.values
    mail = mail_is_set_up(r)
    defaulted: set[str] = set()
    for field in ("password_reset_enabled", "change_email_enabled"):
        if v[field] is None:
            v[field] = mail
            defaulted.add(field)
    v["flows_on_by_default"] = frozenset(defaulted if mail else ())
    wanted = {
        "TOKENAUTH_EMAIL_VERIFICATION": v["email_verification"] != "off",
        "TOKENAUTH_PASSWORD_RESET_ENABLED": v["password_reset_enabled"],
        "TOKENAUTH_CHANGE_EMAIL_ENABLED": v["change_email_enabled"],
        "TOKENAUTH_EMAIL_LOGIN_ENABLED": v["email_login_enabled"],
        "TOKENAUTH_REGISTER_ENUMERATION_SAFE": v["register_enumeration_safe"],
    }
    on = [key for key, enabled in wanted.items() if enabled]
    if on and not mail:
        raise ConfigurationError(
            f"{', '.join(on)} sends mail, and no way to send it is configured:"
            f" {_MAIL_HINT}."
        )


def link_base_url(r: Reading) -> None:
    """Where links in mails point, when a flow is on: the key, else the
    app's ``SERVER_NAME`` (with ``PREFERRED_URL_SCHEME`` and
    ``APPLICATION_ROOT``).  Never the request's ``Host``: a client chooses
    it, and a reset link pointing at an attacker's host leaks the token."""
    v = r.values
    if v["link_base_url"] is not None or not any_flow_on(r):
        return
    server = r.config.get("SERVER_NAME")
    if not server:
        raise ConfigurationError(
            "The links mailed by the account flows need the app's public address:"
            " set TOKENAUTH_LINK_BASE_URL (e.g. 'https://app.example.com') or"
            " SERVER_NAME."
        )
    scheme = r.config.get("PREFERRED_URL_SCHEME") or "http"
    root = str(r.config.get("APPLICATION_ROOT") or "/").rstrip("/")
    v["link_base_url"] = f"{scheme}://{server}{root}"


def any_flow_on(r: Reading) -> bool:
    v = r.values
    return bool(
        v["email_verification"] != "off"
        or v["password_reset_enabled"]
        or v["change_email_enabled"]
        or v["email_login_enabled"]
        or v["register_enumeration_safe"]
    )


#: Run in this order, after the checks of :mod:`._config_checks`.
LIFECYCLE_CHECKS = (mail_backend, mail_flows, link_base_url)
