"""The cross-site check of the cookie-authenticated endpoints (``/refresh``,
``/logout``): the request's ``Origin`` must be the app's own origin, scheme
and port included, or one of ``TOKENAUTH_ALLOWED_ORIGINS``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request

from ._state import TokenAuthState
from .errors import CrossSiteRequest

#: The port an origin without one means.
DEFAULT_PORTS = {"http": 80, "https": 443}

#: ``(scheme, host, port)``: what RFC 6454 compares to tell origins apart.
Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """``value`` (``scheme://host[:port]``, as a browser sends it in
    ``Origin``) as a comparable tuple, or ``None`` if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:  # a port out of range, a bad IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


def own_origin() -> Origin | None:
    """The origin this request was addressed to: its scheme and ``Host``.

    Behind a TLS-terminating proxy the WSGI scheme is ``http`` although the
    browser is on ``https``: wrap the app in werkzeug's ``ProxyFix`` (with
    ``x_proto=1, x_host=1`` for one proxy) so that ``request.scheme`` and
    ``request.host`` are the public ones, or list the public origin in
    ``TOKENAUTH_ALLOWED_ORIGINS``.
    """
    return parse_origin(f"{request.scheme}://{request.host}")


def refuse_cross_site(state: TokenAuthState) -> None:
    """Refuse a cookie-authenticated request made by another site.

    An origin listed in ``TOKENAUTH_ALLOWED_ORIGINS`` passes.  Otherwise a
    request fails if its ``Origin`` is not this app's origin (another scheme,
    host or port, ``null``, or malformed), or if the browser marks it
    ``Sec-Fetch-Site: cross-site``.  The scheme matters: a page served over
    plain http (any network attacker's, before HSTS) is another origin than
    the app on https.  A request with neither header (a non-browser client)
    passes: SameSite=Strict already keeps browsers from sending the cookie
    cross-site.

    :raises CrossSiteRequest: a 403.
    """
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() in state.settings.allowed_origins:
        return
    if origin is not None:
        theirs = parse_origin(origin)
        if theirs is None or theirs != own_origin():
            raise CrossSiteRequest()
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise CrossSiteRequest()
