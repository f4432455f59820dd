"""The start-up checks of passkeys (``TOKENAUTH_PASSKEYS_ENABLED``): the
relying party a browser will accept, and the ``webauthn`` package.  Run after
the keys are parsed, with :data:`._config_checks.CHECKS`.

A browser runs a ceremony only for an RP id that is the page's host or a
registrable suffix of it (WebAuthn Level 3, section 5.1.3), on a secure
origin: https, or http on ``localhost`` in development.  Each origin of
``TOKENAUTH_WEBAUTHN_ORIGINS`` is checked against the RP id here, so that a
mistake stops the app with a message rather than every ceremony failing in
the browser.  An IP address is no RP id (browsers refuse it, the spec says
"valid domain"): develop on ``http://localhost:PORT``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._config_checks import Reading

#: A domain name as an RP id: lower-case labels, no scheme, port or path.
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
)
#: Hosts a browser treats as a secure context over plain http.
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def _is_local(host: str) -> bool:
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def webauthn_installed(r: Reading) -> None:
    if r.values["passkeys_enabled"] and importlib.util.find_spec("webauthn") is None:
        raise ConfigurationError(
            "TOKENAUTH_PASSKEYS_ENABLED needs the webauthn package: pip install"
            " 'flask-tokenauth-jwt[passkeys]'."
        )


def relying_party(r: Reading) -> None:
    """The RP id (a domain, with a dot unless ``localhost``), the origins
    (secure, and each one's host the RP id or under it), and the RP name
    (default: the first service name, else the RP id)."""
    v = r.values
    if not v["passkeys_enabled"]:
        return
    rp_id = v["webauthn_rp_id"]
    if not rp_id:
        raise ConfigurationError(
            "TOKENAUTH_PASSKEYS_ENABLED needs TOKENAUTH_WEBAUTHN_RP_ID, your"
            " site's domain (e.g. 'example.com'; 'localhost' in development)."
        )
    rp_id = rp_id.strip().lower()
    if _is_ip(rp_id):
        raise ConfigurationError(
            f"TOKENAUTH_WEBAUTHN_RP_ID {rp_id!r} is an IP address, which browsers"
            " refuse as a relying-party id: use a domain ('localhost' in"
            " development, with the app at http://localhost:PORT)."
        )
    # A top-level label alone ("com") is a public suffix: no site may claim
    # it, and a browser refuses it.  (Deeper public suffixes, "co.uk", need
    # the Public Suffix List, which the browser applies itself.)
    if not _DOMAIN.fullmatch(rp_id) or ("." not in rp_id and rp_id != "localhost"):
        raise ConfigurationError(
            f"TOKENAUTH_WEBAUTHN_RP_ID must be a domain such as 'example.com'"
            f" (no scheme, port or path); got {v['webauthn_rp_id']!r}."
        )
    origins = v["webauthn_origins"]
    if not origins:
        raise ConfigurationError(
            "TOKENAUTH_PASSKEYS_ENABLED needs TOKENAUTH_WEBAUTHN_ORIGINS, the"
            f" origins your pages are served from (e.g. 'https://{rp_id}')."
        )
    for origin in sorted(origins):
        parts = urlsplit(origin)
        host = parts.hostname or ""
        shown = f"[{host}]" if ":" in host else host
        if parts.scheme != "https" and not _is_local(shown):
            raise ConfigurationError(
                f"TOKENAUTH_WEBAUTHN_ORIGINS: {origin!r} must be https (browsers"
                " run passkey ceremonies on secure origins only; plain http only"
                " on localhost)."
            )
        if host != rp_id and not host.endswith("." + rp_id):
            raise ConfigurationError(
                f"TOKENAUTH_WEBAUTHN_ORIGINS: the host of {origin!r} is not"
                f" TOKENAUTH_WEBAUTHN_RP_ID {rp_id!r} nor under it; browsers"
                " refuse the ceremony there. Set the RP id to a suffix of every"
                " origin's host."
            )
    v["webauthn_rp_id"] = rp_id
    if not v["webauthn_rp_name"]:
        names = v["service_name"]
        v["webauthn_rp_name"] = names[0] if names else rp_id


#: Run in this order, after the checks of :mod:`._config_checks`.
PASSKEY_CHECKS = (webauthn_installed, relying_party)
