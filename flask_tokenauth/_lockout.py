"""Limits on wrong passwords per account, that a stranger cannot use to lock
the owner out.

Every view that checks a password (``/login``, ``/password``) calls
:func:`guard` before the check, :meth:`Guard.failed` after a wrong password
and :meth:`Guard.trust_device` after a right one.  Three counters of wrong
passwords, all keyed by the account (:func:`account_of`): the matched user's
id, so that every spelling of a login that finds the user (a
case-insensitive column: ``COLLATE NOCASE``, ``citext``) spends one budget,
not one each; for a login that finds nobody, the login as the store's
lookup compares it, so that the limits behave alike whether or not the
account exists and tell nobody which do:

* per (account, client address), strict
  (``TOKENAUTH_RATELIMIT_LOGIN_FAILURES``, default ``5/minute;20/hour``):
  stops one client guessing;
* per account, loose (``TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES``, default
  ``100/day``): stops a guesser spread over many addresses, as NIST SP
  800-63B-4 asks (at most 100 failed attempts per account);
* a client that has entered this account's password before carries a
  *device cookie* (OWASP's "device cookies"): a signed random device id,
  bound to the account (the user's id, not the spelling typed).  Such a
  client is exempt from both counters above and is limited per (account,
  device) with the strict limit instead.  So
  a stranger who spends the account's budget locks out only clients that
  never logged in to it; the owner's own devices keep working.

Wrong second-factor codes (``/mfa/verify``, ``/mfa/totp/confirm``, a
code at ``/reauthenticate``) are counted the same way, against the same
limits, with ``budget=SECOND_FACTOR``: counters of their own and a device
cookie of their own (``<TOKENAUTH_DEVICE_COOKIE_NAME>_mfa``), set only
after a right code.  The password's device cookie earns nothing there:
whoever guesses codes already has the password, and would have one.

An account over a limit is refused (429 ``RATE_LIMITED``) before its
password is checked, so a guess made then tells nothing.  Only wrong
passwords count; malformed requests are refused before :func:`guard`.

The counters live in the app's rate-limit storage (Redis when configured,
shared by every server; see :mod:`._limiter`), which falls back to memory
while that storage is unreachable.  The check and the
count are two steps, so requests in flight together can overshoot a limit
by at most their number.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Response, request
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import RateLimitItem, parse_many
from limits.strategies import RateLimiter as Strategy

from ._headers import cookie_path
from ._ratelimit import client_ip
from ._state import TokenAuthState
from ._store import UserStore
from .errors import RateLimited

#: How long a device stays trusted after its last successful password check.
DEVICE_TRUST = timedelta(days=365)
#: The longest device cookie we read; a longer one is not ours.
MAX_DEVICE_COOKIE = 256


@functools.lru_cache(maxsize=64)
def _items(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


@dataclass(frozen=True)
class Budget:
    """What a guard counts: wrong passwords, or wrong second-factor codes.
    Each has its own counters and its own device cookie: a device is
    trusted for second-factor codes only once it has passed one (knowing
    the password, which a thief of it does too, earns no exemption there)."""

    #: The counters' name in the limiter's storage.
    counter: str
    #: Appended to ``TOKENAUTH_DEVICE_COOKIE_NAME`` for this budget's cookie.
    cookie_suffix: str

    def cookie_name(self, state: TokenAuthState) -> str:
        return state.settings.device_cookie_name + self.cookie_suffix


PASSWORD = Budget("password-failures", "")
SECOND_FACTOR = Budget("mfa-failures", "_mfa")


def _serializer(
    secret: bytes, account: str, budget: Budget = PASSWORD
) -> URLSafeTimedSerializer:
    # The account is part of the salt: a device cookie signed for one account
    # does not verify for any other, and the cookie does not reveal it.
    extra = "" if budget is PASSWORD else f"{budget.counter}:"
    return URLSafeTimedSerializer(
        secret,
        salt=f"flask_tokenauth.device-cookie:{extra}{account}",
        signer_kwargs={"digest_method": hashlib.sha256},
    )


def _trusted_device(
    state: TokenAuthState, account: str, budget: Budget = PASSWORD
) -> str | None:
    """The device id of a valid device cookie for ``account``, if the
    request carries one.  Every value of the cookie is tried: a value
    planted by someone else (cookie tossing) can only be valid for their
    own accounts."""
    serializer = _serializer(state.settings.refresh_secret, account, budget)
    max_age = int(DEVICE_TRUST.total_seconds())
    for value in request.cookies.getlist(budget.cookie_name(state)):
        if not value or len(value) > MAX_DEVICE_COOKIE:
            continue
        try:
            device_id = serializer.loads(value, max_age=max_age)
        except BadData:
            continue
        if isinstance(device_id, str):
            return device_id
    return None


def account_of(store: UserStore, user: Any | None, login: str) -> str:
    """The account a password check counts against: ``user:<sub>`` of the
    user the login found, else ``login:<key>`` of the login (normalized,
    and folded as the store's lookup compares it, see
    :meth:`~._store.UserStore.login_key`)."""
    if user is not None:
        return "user:" + store.sub_of(user)
    return "login:" + store.login_key(login)


def _account_key(secret: bytes, account: str) -> str:
    """The account as the counters name it: a keyed hash, so that the
    limiter's storage holds no email addresses."""
    message = b"flask_tokenauth.lockout:" + account.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Guard:
    """The counters of one password check; see :func:`guard`."""

    state: TokenAuthState
    account: str
    #: The device id of a valid device cookie for this account, or ``None``.
    device_id: str | None
    #: Each limit with the identifiers of its counter.
    counters: tuple[tuple[RateLimitItem, tuple[str, ...]], ...]
    budget: Budget = PASSWORD

    def failed(self) -> None:
        """Count a wrong password against every counter of this check."""

        def hit(strategy: Strategy) -> None:
            for item, identifiers in self.counters:
                strategy.hit(item, *identifiers)

        self.state.limiter.run(hit)

    def trust_device(self, response: Response) -> None:
        """After a right password (or code): see :func:`trust_device`."""
        trust_device(response, self.state, self.account, self.device_id, self.budget)


def trust_device(
    response: Response,
    state: TokenAuthState,
    account: str,
    device_id: str | None = None,
    budget: Budget = PASSWORD,
) -> None:
    """Mark the client as a device of ``account``, which has just proved it
    knows the password: set (or renew) its device cookie on ``response``,
    keeping the device id it already had for this account."""
    settings = state.settings
    device_id = device_id or _trusted_device(state, account, budget)
    value = _serializer(settings.refresh_secret, account, budget).dumps(
        device_id or secrets.token_urlsafe(16)
    )
    response.set_cookie(
        budget.cookie_name(state),
        value,
        max_age=int(DEVICE_TRUST.total_seconds()),
        path=cookie_path(settings),
        domain=settings.cookie_domain,
        secure=settings.cookie_secure,
        httponly=True,
        # As the refresh cookie: Strict by default; a deployment whose client
        # is on another site needs the same setting for both.
        samesite=settings.cookie_samesite,
    )


def guard(state: TokenAuthState, account: str, budget: Budget = PASSWORD) -> Guard:
    """The counters for a password check on ``account`` (see
    :func:`account_of`) by this request's client; with
    ``budget=SECOND_FACTOR``, for a second-factor code (same limits, own
    counters and device cookie).

    :raises RateLimited: with ``Retry-After``, if any counter is spent; the
        password must then not be checked.
    """
    settings = state.settings
    limiter = state.limiter
    device_id = _trusted_device(state, account, budget)
    if not limiter.enabled:
        return Guard(state, account, device_id, (), budget)
    prefix = (limiter.prefix, budget.counter)
    key = _account_key(settings.refresh_secret, account)
    strict = _items(settings.ratelimit_login_failures)
    counters: tuple[tuple[RateLimitItem, tuple[str, ...]], ...]
    if device_id is not None:
        # The device is bound to this account: its own budget, which no
        # other client can spend.  No per-address counter, which a stranger
        # behind the same address (a carrier-grade NAT) could spend.
        ids = (*prefix, "device", key, device_id)
        counters = tuple((item, ids) for item in strict)
    else:
        per_client = (*prefix, "client", key, client_ip(settings.trusted_proxies))
        per_account = (*prefix, "account", key)
        counters = tuple((item, per_client) for item in strict) + tuple(
            (item, per_account) for item in _items(settings.ratelimit_account_failures)
        )

    def retry_after(strategy: Strategy) -> int | None:
        spent = [
            strategy.get_window_stats(item, *ids).reset_time
            for item, ids in counters
            if not strategy.test(item, *ids)
        ]
        if not spent:
            return None
        return max(math.ceil(max(spent) - time.time()), 1)

    wait = limiter.run(retry_after)
    if wait is not None:
        raise RateLimited(retry_after=wait)
    return Guard(state, account, device_id, counters, budget)
