"""Rate limits on the auth endpoints, with Flask-Limiter: per client IP on
``/register``, ``/login`` (and ``/password``, which checks a password too)
and ``/refresh``.  Wrong passwords are limited per account by the views
themselves, on this limiter's storage (see :mod:`._lockout`).

Each app gets a :class:`~flask_limiter.Limiter` of its own whose only limits
are on this blueprint.  Storage is in memory (per process) unless
``TOKENAUTH_RATELIMIT_STORAGE_URI``, Flask-Limiter's ``RATELIMIT_STORAGE_URI``
or ``TOKENAUTH_REDIS_URL`` names a shared store.  If that store becomes
unreachable, Flask-Limiter falls back to in-memory limits until it returns.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from flask import Response, request
from flask.sansio.app import App
from flask_limiter import Limiter, RequestLimit

from ._config import Settings
from .errors import RateLimited

#: The blueprint's view names and the settings that limit them per IP.
_PER_IP = {
    "register": "ratelimit_register",
    "login": "ratelimit_login",
    # Checks the current password: limited like a login.
    "change_password": "ratelimit_login",
    "refresh": "ratelimit_refresh",
}


def client_ip(trusted_proxies: int) -> str:
    """The client's address: the connection's, or with ``trusted_proxies``
    set, the ``X-Forwarded-For`` entry that many hops from the right (the
    one our own proxies appended).  A client cannot choose it: entries it
    sends itself are to the left of what the proxies add."""
    if trusted_proxies:
        hops = [
            hop.strip()
            for header in request.headers.getlist("X-Forwarded-For")
            for hop in header.split(",")
            if hop.strip()
        ]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return request.remote_addr or "unknown"


def _view() -> str:
    return (request.endpoint or "").rpartition(".")[2]


def _breached(limit: RequestLimit) -> Response:
    retry_after = int(limit.reset_at - time.time()) + 1
    response = RateLimited(retry_after=retry_after).get_response()
    return response


def _confine_to_blueprint(app: App, limiter: Limiter, blueprint: str) -> None:
    """Move the hooks Flask-Limiter put on the whole app to our blueprint.

    Its only limits are on the blueprint, but its before/after-request hooks
    run on every request of the host app, nearly doubling the cost of a
    small view.  Flask runs a blueprint's hooks only for its own requests.
    """

    def ours(function: object) -> bool:
        owner = getattr(function, "__self__", None)
        if owner is None and isinstance(function, functools.partial):
            owner = function.args[0] if function.args else None
        return owner is limiter

    registries: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    for registry in registries:
        hooks = [f for f in registry.get(None, []) if ours(f)]
        if not hooks:
            continue
        registry[None] = [f for f in registry[None] if not ours(f)]
        registry.setdefault(blueprint, []).extend(hooks)


def make_limiter(app: App, settings: Settings) -> Limiter:
    """Create the app's limiter and put the blueprint's limits on it."""
    from .blueprint import auth_bp

    limiter = Limiter(
        key_func=lambda: client_ip(settings.trusted_proxies),
        storage_uri=settings.ratelimit_storage_uri,
        storage_options={"socket_timeout": 1, "socket_connect_timeout": 1}
        if settings.ratelimit_storage_uri.startswith(("redis://", "rediss://"))
        else {},
        strategy="moving-window",
        key_prefix=f"{settings.redis_prefix}ratelimit",
        default_limits=[],
        application_limits=[],
        headers_enabled=False,
        in_memory_fallback_enabled=True,
        enabled=settings.ratelimit_enabled,
        on_breach=_breached,
    )
    limiter.init_app(app)  # type: ignore[arg-type]
    _confine_to_blueprint(app, limiter, auth_bp.name)
    per_ip = {view: getattr(settings, name) for view, name in _PER_IP.items()}
    limiter.limit(
        # Flask-Limiter evaluates the value even for exempt views.
        lambda: per_ip.get(_view(), "1/second"),
        exempt_when=lambda: _view() not in per_ip,
    )(auth_bp)
    return limiter
