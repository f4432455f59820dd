"""The counters behind every rate limit: one :class:`RateLimiter` per app,
built on ``limits`` (the library Flask-Limiter is built on).

Storage is in memory (per process) unless ``TOKENAUTH_RATELIMIT_STORAGE_URI``,
Flask-Limiter's ``RATELIMIT_STORAGE_URI`` or ``TOKENAUTH_REDIS_URL`` names a
shared store.  While that store is unreachable, counting goes on in this
process's memory (limited rather than refused or unlimited), and the store
is tried again with a growing back-off, as Flask-Limiter does, until it
answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from limits.strategies import RateLimiter as Strategy

from ._config import Settings
from .errors import ConfigurationError

logger = logging.getLogger("flask_tokenauth")

T = TypeVar("T")

#: The back-off between two tries of an unreachable store is 2**n seconds,
#: n = 0 .. MAX_BACKOFF_STEP, then from 1 second again (Flask-Limiter's).
MAX_BACKOFF_STEP = 5


class RateLimiter:
    """An app's rate-limit counters: a moving-window strategy on the
    configured storage, and one on memory for while that storage is down.

    :param storage_uri: a ``limits`` storage URI (``memory://``,
        ``redis://...``).
    :param enabled: ``False`` turns every limit off.
    :param prefix: the first identifier of every counter (so that apps on
        one Redis keep apart by ``TOKENAUTH_REDIS_PREFIX``).
    """

    def __init__(self, storage_uri: str, *, enabled: bool, prefix: str) -> None:
        self.enabled = enabled
        self.prefix = prefix
        self._lock = threading.Lock()
        self._storage: Storage | None = None
        self._primary: Strategy | None = None
        self._fallback: Strategy | None = None
        # ``limits``' memory storage starts a timer thread when it is made:
        # two per app, made on the first count rather than for every app (a
        # host's test suite makes one per test and most never count).  Any
        # other URI is resolved now, so a bad one stops the app at start-up.
        self._memory = storage_uri.startswith("memory://")
        if not self._memory:
            options = (
                {"socket_timeout": 1, "socket_connect_timeout": 1}
                if storage_uri.startswith(("redis://", "rediss://"))
                else {}
            )
            storage = storage_from_string(storage_uri, **options)
            if not isinstance(storage, Storage):  # an ``async+...`` URI
                raise ConfigurationError(
                    "TOKENAUTH_RATELIMIT_STORAGE_URI must name a synchronous"
                    f" storage, not {storage_uri!r}."
                )
            self._storage = storage
        #: ``True`` while the configured storage is unreachable.
        self.storage_down = False
        self._backoff_step = 0
        self._last_try = 0.0

    @property
    def storage(self) -> Storage:
        """The configured storage (its ``storage`` attribute is the Redis
        client, for a Redis URI)."""
        if self._storage is None:
            with self._lock:  # one storage, whichever request counts first
                if self._storage is None:
                    self._storage = MemoryStorage()
        return self._storage

    @property
    def primary(self) -> Strategy:
        """The moving-window strategy on :attr:`storage`."""
        if self._primary is None:
            storage = self.storage
            with self._lock:
                if self._primary is None:
                    self._primary = MovingWindowRateLimiter(storage)
        return self._primary

    @primary.setter
    def primary(self, strategy: Strategy) -> None:
        self._primary = strategy

    @property
    def fallback(self) -> Strategy:
        """The strategy on memory, for while :attr:`storage` is down."""
        if self._fallback is None:
            with self._lock:
                if self._fallback is None:
                    self._fallback = MovingWindowRateLimiter(MemoryStorage())
        return self._fallback

    def _storage_is_back(self) -> bool:
        if self._backoff_step > MAX_BACKOFF_STEP:
            self._backoff_step = 0
        if time.time() - self._last_try <= 2**self._backoff_step:
            return False
        self._last_try = time.time()
        self._backoff_step += 1
        try:
            return bool(self.storage.check())
        except Exception:  # an unreachable store may raise rather than say so
            return False

    def run(self, count: Callable[[Strategy], T]) -> T:
        """``count(strategy)`` on the configured storage; if that storage
        fails, on memory (switching to it, once, with a warning) until the
        storage answers again."""
        if self.storage_down and self._storage_is_back():
            logger.info("tokenauth rate limit storage recovered")
            self.storage_down = False
            self._backoff_step = 0
        if self.storage_down:
            return count(self.fallback)
        try:
            return count(self.primary)
        except Exception:
            logger.warning("tokenauth rate limit storage unreachable: using memory")
            self.storage_down = True
            self._last_try = time.time()
            return count(self.fallback)


def make_limiter(settings: Settings) -> RateLimiter:
    """The app's limiter, as configured."""
    return RateLimiter(
        settings.ratelimit_storage_uri,
        enabled=settings.ratelimit_enabled,
        prefix=f"{settings.redis_prefix}ratelimit",
    )
