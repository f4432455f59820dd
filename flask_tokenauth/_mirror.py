"""This process's copy of the Redis revocation denylist.

Asking Redis on every protected request costs a network round trip, more
than the whole of a small view.  So each process keeps a copy of the
denylist, loaded once and then kept current by Redis pub/sub: every
revocation is written to its key *and* published, and a background thread
applies what is published.  A protected request then checks a dict.

While the copy is not known to be current (starting, or the subscription is
down because Redis is unreachable) the caller asks Redis itself about what
the copy does not know, failing closed if it cannot.  A
revocation made on another server reaches this one after the time Redis
takes to deliver a message (well under a millisecond on one network); one
made in this process applies at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

from . import _process

logger = logging.getLogger("flask_tokenauth")

#: How often the thread forgets entries whose tokens have all expired.
SWEEP_SECONDS = 30.0
#: Seconds between liveness pings on the subscription connection.
HEALTH_CHECK_SECONDS = 2


#: Every mirror in this process (one per app using the Redis store).
_MIRRORS: weakref.WeakSet[RevocationMirror] = weakref.WeakSet()


def _unlock_after_fork() -> None:
    """In a child after a fork: a lock another thread of the parent held
    at the fork would stay held, and the mirror's first use wait forever."""
    for mirror in list(_MIRRORS):
        mirror._lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_after_fork)


def channel_name(prefix: str) -> str:
    """The pub/sub channel revocations are announced on."""
    return f"{prefix}revocations"


class RevocationMirror:
    """Revoked sessions and per-user cutoffs, as last published.

    :param url: the Redis URL.
    :param prefix: the key prefix; the channel is ``<prefix>revocations``.
    :param ttl: seconds an entry lives (the access-token lifetime).
    """

    def __init__(self, url: str, prefix: str, ttl: int) -> None:
        self.url = url
        self.prefix = prefix
        self.channel = channel_name(prefix)
        self.ttl = ttl
        self._sessions: dict[str, float] = {}
        self._users: dict[str, tuple[int, float]] = {}
        self._current = False
        self._pid: int | None = None
        self._lock = threading.Lock()
        _MIRRORS.add(self)

    # -- what requests use ----------------------------------------------------

    def lookup(self, session_id: str, user_id: str) -> tuple[bool, int | None, bool]:
        """``(session revoked, user's cutoff, current)``.

        When the copy is not ``current`` it may miss revocations, but what it
        holds is still true (entries only come from real revocations, and it
        keeps them when Redis restarts empty)."""
        self._ensure_running()
        now = time.time()
        until = self._sessions.get(session_id)
        user = self._users.get(user_id)
        return (
            until is not None and until > now,
            user[0] if user is not None and user[1] > now else None,
            self._current,
        )

    def note_session(self, session_id: str) -> None:
        self._sessions[session_id] = time.time() + self.ttl

    def note_user(self, user_id: str, cutoff: int) -> None:
        known = self._users.get(user_id)
        if known is None or known[0] <= cutoff:
            self._users[user_id] = (cutoff, time.time() + self.ttl)

    # -- the subscription --------------------------------------------------------

    def _ensure_running(self) -> None:
        pid = _process.pid  # not os.getpid(): a system call per request
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            # New, or in a child after a fork (gunicorn --preload): threads
            # do not survive a fork, so start this process's own.
            self._pid = pid
            self._current = False
            threading.Thread(
                target=_follow,
                args=(weakref.ref(self), pid),
                name="tokenauth-revocations",
                daemon=True,
            ).start()

    def apply(self, message: bytes | str) -> None:
        """Apply one published message: ``s:<session>`` or
        ``u:<user>:<cutoff>``."""
        text = message.decode() if isinstance(message, bytes) else message
        kind, _, rest = text.partition(":")
        if kind == "s":
            self.note_session(rest)
        elif kind == "u":
            user_id, _, cutoff = rest.rpartition(":")
            self.note_user(user_id, int(cutoff))

    def load(self, client: Any) -> None:
        """Replace the copy with what Redis holds now."""
        sessions: dict[str, float] = {}
        users: dict[str, tuple[int, float]] = {}
        until = time.time() + self.ttl
        session_prefix = f"{self.prefix}revoked-session:"
        for key in client.scan_iter(match=session_prefix + "*", count=1000):
            sessions[key.decode()[len(session_prefix) :]] = until
        user_prefix = f"{self.prefix}not-before:"
        keys = list(client.scan_iter(match=user_prefix + "*", count=1000))
        for key, value in zip(keys, client.mget(keys) if keys else [], strict=True):
            if value is not None:
                users[key.decode()[len(user_prefix) :]] = (int(value), until)
        # Entries published while loading are kept, not overwritten.
        sessions.update(self._sessions)
        users.update(self._users)
        self._sessions, self._users = sessions, users

    def sweep(self) -> None:
        now = time.time()
        for sid, until in list(self._sessions.items()):
            if until <= now:
                self._sessions.pop(sid, None)
        for uid, (_, user_until) in list(self._users.items()):
            if user_until <= now:
                self._users.pop(uid, None)

    def set_current(self, current: bool) -> None:
        self._current = current


def _follow(ref: weakref.ReferenceType[RevocationMirror], pid: int) -> None:
    """The thread: subscribe, load, apply messages; on any failure mark the
    copy stale and start over.  Ends when the mirror is gone or the process
    is a fork of the one that started it."""
    import redis

    delay = 0.1
    while True:
        mirror = ref()
        if mirror is None or mirror._pid != pid:
            return
        client = redis.Redis.from_url(
            mirror.url,
            socket_connect_timeout=1.0,
            health_check_interval=HEALTH_CHECK_SECONDS,
        )
        pubsub = client.pubsub()
        channel = mirror.channel
        del mirror
        try:
            pubsub.subscribe(channel)
            # Wait for the confirmation before loading, so that every
            # revocation is either in the load or in a later message.
            deadline = time.monotonic() + 5
            while (message := pubsub.get_message(timeout=1.0)) is None or (
                message["type"] != "subscribe"
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("no subscription confirmation")
            if (mirror := ref()) is None:
                return
            mirror.load(client)
            mirror.set_current(True)
            del mirror
            delay = 0.1
            swept = time.monotonic()
            while True:
                message = pubsub.get_message(timeout=1.0)
                if (mirror := ref()) is None or mirror._pid != pid:
                    return
                if message is not None and message["type"] == "message":
                    mirror.apply(message["data"])
                if time.monotonic() - swept > SWEEP_SECONDS:
                    mirror.sweep()
                    swept = time.monotonic()
                del mirror
        except Exception as e:  # any failure: stale until resubscribed
            if (mirror := ref()) is not None:
                mirror.set_current(False)
                del mirror
            logger.warning("tokenauth revocation subscription lost: %s", e)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            pubsub.close()
            client.close()
