"""Response headers: security headers and the refresh cookie."""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from typing import Any

from flask import Response, current_app, request
from werkzeug.http import dump_cookie, http_date

from ._config import Settings

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def add_security_headers(response: Response) -> Response:
    """Add the tutorial's security headers unless the response already has
    them.  Runs after every blueprint response, and after every response of
    the app when ``TOKENAUTH_SECURITY_HEADERS_APP_WIDE`` is on."""
    settings: Settings = current_app.extensions["tokenauth"].settings
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if settings.hsts:
        response.headers.setdefault("Strict-Transport-Security", settings.hsts)
    return response


def cookie_path(settings: Settings) -> str:
    """The refresh cookie's ``Path``: ``TOKENAUTH_COOKIE_PATH`` if set, else
    the path the blueprint is mounted at, e.g. ``/api/auth``.

    The latter is derived from the rule of ``/refresh`` in the same mount as
    the matched rule (its sibling endpoint), so the cookie follows whatever
    ``url_prefix`` the app registered the blueprint with, including the WSGI
    script root, and a view one level deeper (``/email-login/verify``) sets
    it where a view at the top sets it.
    """
    if settings.cookie_path is not None:
        return settings.cookie_path
    rule = request.url_rule
    assert rule is not None
    path = rule.rule
    refresh = rule.endpoint.rpartition(".")[0] + ".refresh"
    if refresh != rule.endpoint and refresh in current_app.view_functions:
        path = next(current_app.url_map.iter_rules(refresh)).rule
    return request.script_root + path.rsplit("/", 1)[0] or "/"


def _cookie_attributes(settings: Settings) -> dict[str, Any]:
    """The attributes the cookie is set *and* cleared with: a browser ignores
    a deletion whose name, path or domain differ from the cookie's, and drops
    a prefixed (``__Host-``, ``__Secure-``) one that lacks what its prefix
    requires (checked at start-up, see ``_check_cookie_prefix``)."""
    return {
        "path": cookie_path(settings),
        "domain": settings.cookie_domain,
        "secure": settings.cookie_secure,
        "httponly": True,
        "samesite": settings.cookie_samesite,
    }


#: A cookie value that werkzeug would not quote: every token we issue
#: (``secrets.token_urlsafe``), so the cached rendering below applies.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_-]+")
#: Stand-ins for what changes from one cookie to the next.
_VALUE, _EXPIRES, _MAX_AGE = "tokenauthvalue", "tokenauthexpires", 987654321987


@functools.lru_cache(maxsize=64)
def _rendering(
    name: str, path: str, domain: str | None, secure: bool, samesite: str | None
) -> tuple[str, str, str, str]:
    """werkzeug's ``dump_cookie`` of a refresh cookie with these attributes,
    cut around its value, ``Expires`` and ``Max-Age``: each refresh then
    joins four strings rather than rendering (and checking) it all again."""
    rendered = dump_cookie(
        name,
        _VALUE,
        max_age=_MAX_AGE,
        expires=_EXPIRES,
        path=path,
        domain=domain,
        secure=secure,
        httponly=True,
        samesite=samesite,
    )
    head, _, rest = rendered.partition(_VALUE)
    middle, _, rest = rest.partition(_EXPIRES)
    before_age, _, tail = rest.partition(str(_MAX_AGE))
    return head, middle, before_age, tail


def set_refresh_cookie(
    response: Response, settings: Settings, token: str, expires_at: datetime
) -> None:
    max_age = max(int((expires_at - datetime.now(timezone.utc)).total_seconds()), 0)
    attributes = _cookie_attributes(settings)
    if not _PLAIN_VALUE.fullmatch(token):  # not one of ours: werkzeug quotes it
        response.set_cookie(
            settings.cookie_name,
            token,
            max_age=max_age,
            expires=expires_at,
            **attributes,
        )
        return
    head, middle, before_age, tail = _rendering(
        settings.cookie_name,
        attributes["path"],
        attributes["domain"],
        attributes["secure"],
        attributes["samesite"],
    )
    response.headers.add(
        "Set-Cookie",
        f"{head}{token}{middle}{http_date(expires_at)}{before_age}{max_age}{tail}",
    )


def clear_refresh_cookie(response: Response, settings: Settings) -> None:
    """Expire the cookie, with the same name, path and attributes it was set
    with."""
    response.set_cookie(
        settings.cookie_name, "", max_age=0, expires=0, **_cookie_attributes(settings)
    )
