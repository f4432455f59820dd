"""Rate limits per client address on the auth endpoints: ``/register``,
``/login`` (and ``/password``, which checks a password too) and
``/refresh``.  Wrong passwords are limited per account by the views
themselves, on the same counters (see :mod:`._lockout`).

A limit is declared on the view it guards (``@limited(LOGIN)``) and counted
when the view is called, before its body: under whatever name, prefix or
parent blueprint ``auth_bp`` is mounted, and however many times, each mount
is limited, and mounts share their counters (they are keyed by the scope
name below and the address, not by a blueprint name).  Nothing runs for the
host app's own routes.  The counters live in the app's
:class:`~flask_tokenauth._limiter.RateLimiter`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import current_app, request
from limits import RateLimitItem, parse_many
from limits.strategies import RateLimiter as Strategy

from . import signals
from ._state import get_state
from .errors import RateLimited

P = ParamSpec("P")
R = TypeVar("R")

#: Scopes: a counter per (scope, address); the setting of each scope's limit.
REGISTER = "register"
LOGIN = "login"
REFRESH = "refresh"
#: Every endpoint that may send mail (see :func:`mail_allowed` for the
#: per-address limit).
MAIL = "mail"
_SETTING = {
    REGISTER: "ratelimit_register",
    LOGIN: "ratelimit_login",
    REFRESH: "ratelimit_refresh",
    MAIL: "ratelimit_mail",
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


@functools.lru_cache(maxsize=64)
def _items(limit: str) -> tuple[RateLimitItem, ...]:
    # Shortest window first, as Flask-Limiter counts them.
    return tuple(sorted(parse_many(limit)))


def _spent(setting: str, *ids: str) -> float | None:
    """Count a hit of ``ids`` against the limit of ``setting``: ``None``,
    or when the spent window resets."""
    state = get_state()
    limiter = state.limiter
    if not limiter.enabled:
        return None
    items = _items(getattr(state.settings, setting))
    keys = (limiter.prefix, *ids)

    def count(strategy: Strategy) -> float | None:
        # Stops at the first limit spent, as Flask-Limiter does: the longer
        # windows do not count a refused request.
        for item in items:
            if not strategy.hit(item, *keys):
                return strategy.get_window_stats(item, *keys).reset_time
        return None

    return limiter.run(count)


def mail_allowed(purpose: str, email: str) -> bool:
    """Count a mail of ``purpose`` to ``email`` (normalized) against
    ``TOKENAUTH_RATELIMIT_MAIL_ADDRESS``.  ``False``: the limit is spent,
    and the caller answers as it would have, sending nothing (so a limit
    tells nothing about the address); :data:`~.signals.mail_limited` is
    sent here."""
    if _spent("ratelimit_mail_address", "mail-address", purpose, email) is None:
        return True
    signals.mail_limited.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        email=email,
        purpose=purpose,
        ip=client_ip(get_state().settings.trusted_proxies),
    )
    return False


def check(scope: str) -> None:
    """Count this request against the per-address limit of ``scope``.

    :raises RateLimited: with ``Retry-After``, if a limit is spent.
    """
    settings = get_state().settings
    reset_at = _spent(_SETTING[scope], scope, client_ip(settings.trusted_proxies))
    if reset_at is not None:
        raise RateLimited(retry_after=int(reset_at - time.time()) + 1)


def limited(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Limit the decorated view per client address, with the limit of
    ``scope`` (:data:`REGISTER`, :data:`LOGIN`, :data:`REFRESH` or
    :data:`MAIL`), before
    anything else the view does."""
    if scope not in _SETTING:
        raise ValueError(f"no rate limit scope {scope!r}")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            check(scope)
            return view(*args, **kwargs)

        return wrapper

    return decorate
