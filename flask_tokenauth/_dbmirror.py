"""This process's copy of the revocations the database records.

Asking the database on every protected request costs a query, several times
the whole of a small view.  So every revocation also appends a row to
``tokenauth_revocation_events`` (:func:`record`), in the revoking
transaction, and each process keeps a copy of the recent rows: a protected
request then checks a dict.  The copy learns of new rows by reading those
with an id above the last it saw:

* on PostgreSQL a listener thread does (:mod:`._dblisten`): the revoking
  transaction notifies it at commit, and it also reads every quarter of the
  staleness bound, a heartbeat;
* on SQLite the request that finds the copy older than the bound reads the
  new rows itself (a query on the primary key, at most once per bound).

The copy is *current* while its last successful read started less than
``TOKENAUTH_REVOCATION_STALENESS`` ago (on PostgreSQL, a read made while the
listener's last probe was heard).  While it is not (starting, the
listener's connection lost or deaf, the heartbeat overdue) the store asks the
database itself, as it did before there was a copy, and fails closed if it
cannot.  A revocation made in this process applies to its copies (one
per app on the database) when its transaction commits.

Ids are committed in order, so that "above the last id seen" misses none:
SQLite has one writer at a time, and on PostgreSQL the writer locks the
table (``EXCLUSIVE``: other writers wait, readers do not) before taking its
id, until it commits.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import (
    URL,
    Connection,
    Table,
    bindparam,
    event,
    insert,
    text,
)

from . import _process
from ._db import Database, describe_db_error
from ._dblisten import CHANNEL, listen
from .models import RevocationEvent

logger = logging.getLogger("flask_tokenauth")

_events = cast(Table, RevocationEvent.__table__)

#: How often the copy forgets entries whose tokens have all expired.
SWEEP_SECONDS = 30.0
#: Every copy in this process (one per app using the database store).
_COPIES: weakref.WeakSet[RevocationCopy] = weakref.WeakSet()

_COLUMNS = "id, kind, session_id, user_id, not_before"
_TYPES = {"last": _events.c.id.type, "since": _events.c.created_at.type}


def record(
    conn: Connection,
    user_id: str,
    session_ids: Sequence[str],
    cutoff: int | None,
    now: datetime,
) -> None:
    """Append the revocation of ``session_ids`` and, with ``cutoff``, the
    user's "not before" to the log, in the caller's transaction ``conn``,
    and tell every copy of this process on the same database when it
    commits (a rolled-back revocation must not refuse tokens).

    On PostgreSQL the table is locked first, so that the ids are committed
    in order, and the channel notified (PostgreSQL delivers it at commit).
    """
    rows: list[dict[str, Any]] = [
        {"kind": "session", "session_id": sid, "not_before": None}
        for sid in session_ids
    ]
    if cutoff is not None:
        rows.append({"kind": "cutoff", "session_id": None, "not_before": cutoff})
    if not rows:
        return
    postgresql = conn.dialect.name == "postgresql"
    if postgresql:
        conn.execute(text(f"LOCK TABLE {_events.name} IN EXCLUSIVE MODE"))
    conn.execute(insert(_events).values(user_id=user_id, created_at=now), rows)
    if postgresql:
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    ids, url = list(session_ids), conn.engine.url
    event.listen(
        conn,
        "commit",
        lambda _conn: _tell_copies(url, user_id, ids, cutoff),
        once=True,
    )


def _unlock_after_fork() -> None:
    """In a child after a fork: a lock that another thread of the parent
    held at the fork stays held in the child, where that thread does not
    exist, and the copy's first use there would wait on it forever."""
    for copy in list(_COPIES):
        copy._lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_after_fork)


def _tell_copies(url: URL, user_id: str, ids: list[str], cutoff: int | None) -> None:
    """A revocation made in this process, to every copy of it on the
    database at ``url`` (one per app): at once, not at its next read."""
    for copy in list(_COPIES):
        if copy.url == url:
            copy.note_sessions(ids)
            if cutoff is not None:
                copy.note_cutoff(user_id, cutoff)


class RevocationCopy:
    """Revoked sessions, per-user cutoffs and deleted built-in users, as the
    log last read says.

    :param db: the database, read directly on SQLite.
    :param staleness: seconds the copy may lag the log and still answer.
    :param ttl: seconds an entry is kept (the longest access-token
        lifetime: after that, every token it refuses has expired anyway).
    :param listen_url: where the PostgreSQL listener connects; ``None``: the
        database's own URL.
    """

    def __init__(
        self,
        db: Database,
        staleness: timedelta,
        ttl: timedelta,
        listen_url: str | None = None,
    ) -> None:
        self._db = db
        self.staleness = staleness.total_seconds()
        self.ttl = ttl.total_seconds()
        self.listen_url = listen_url
        self.sessions: dict[str, float] = {}
        self.cutoffs: dict[str, tuple[int, float]] = {}
        self.gone: dict[str, float] = {}
        self._last_id: int | None = None
        #: ``time.monotonic()`` when the last successful read started.
        self._read_at = float("-inf")
        self._swept_at = time.monotonic()
        self._pid: int | None = None
        self._lock = threading.Lock()
        #: The listener's PostgreSQL ``application_name`` (for operators
        #: and tests: ``pg_stat_activity`` shows it).
        self.application_name = ""
        #: The database's URL, known once the copy is in use: the
        #: revocations this process makes there are noted at once.
        self.url: URL | None = None
        #: SQLite file: a connection of the copy's own, whose ``PRAGMA
        #: data_version`` changes only when another connection commits.
        self._watch: sqlite3.Connection | None = None
        self._version: int | None = None
        _COPIES.add(self)

    # -- what requests use -------------------------------------------------

    def current(self) -> bool:
        """Whether the copy may answer on its own: its last read is recent
        enough (read now on SQLite if it is not)."""
        if self._pid != _process.pid:  # not os.getpid(): a system call
            self._start()
        if time.monotonic() - self._read_at <= self.staleness:
            return True
        if self._listens:
            return False
        return self._read_inline()

    def note_sessions(self, session_ids: Iterable[str]) -> None:
        until = time.time() + self.ttl
        for session_id in session_ids:
            self.sessions[session_id] = until

    def note_cutoff(self, user_id: str, cutoff: int) -> None:
        known = self.cutoffs.get(user_id)
        if known is None or known[0] <= cutoff:
            self.cutoffs[user_id] = (cutoff, time.time() + self.ttl)

    # -- reading the log -----------------------------------------------------

    def apply(self, rows: Iterable[Sequence[Any]]) -> None:
        """Apply rows of the log (``id, kind, session_id, user_id,
        not_before``), oldest first."""
        until = time.time() + self.ttl
        for event_id, kind, session_id, user_id, not_before in rows:
            if kind == "session" and session_id is not None:
                self.sessions[session_id] = until
            elif kind == "cutoff" and user_id is not None and not_before is not None:
                self.note_cutoff(user_id, int(not_before))
            elif kind == "user-gone" and user_id is not None:
                self.gone[user_id] = until
            if self._last_id is None or event_id > self._last_id:
                self._last_id = event_id

    def query(self, named: bool = True) -> tuple[str, dict[str, Any]]:
        """The rows the copy has not seen: on first load those of the last
        ``ttl`` seconds, and the newest row whatever its age (where to go on
        from).  ``named``: ``:name`` parameters (SQLAlchemy's), else
        ``%(name)s`` (psycopg2's)."""

        def param(name: str) -> str:
            return f":{name}" if named else f"%({name})s"

        if self._last_id is not None:
            return (
                f"SELECT {_COLUMNS} FROM {_events.name}"
                f" WHERE id > {param('last')} ORDER BY id",
                {"last": self._last_id},
            )
        since = datetime.now(timezone.utc) - timedelta(seconds=self.ttl)
        return (
            f"SELECT {_COLUMNS} FROM {_events.name} WHERE created_at > {param('since')}"
            f" OR id = (SELECT max(id) FROM {_events.name}) ORDER BY id",
            {"since": since},
        )

    def _read_inline(self) -> bool:
        """SQLite: read the new rows on the request's thread, one thread at
        a time (the others ask the database meanwhile); on a file whose
        ``data_version`` has not moved since the last read, only that."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            started = time.monotonic()
            version = self._data_version()
            if version is not None and version == self._version:
                # Nothing committed to the file since the last read: no
                # statement, a few microseconds instead of a query.
                self._read_at = started
                return True
            sql, params = self.query()
            try:
                with self._db.single_statement() as conn:
                    # Typed, so that SQLite compares ``since`` in the form
                    # SQLAlchemy stores datetimes in.
                    statement = text(sql).bindparams(
                        *(bindparam(k, type_=_TYPES[k]) for k in params)
                    )
                    rows = conn.execute(statement, params).all()
            except Exception as e:
                logger.warning(
                    "tokenauth revocation log unreadable (asking the database"
                    " instead): %s",
                    describe_db_error(e),
                )
                return False
            self.apply(rows)
            # The version seen before the read: a commit after it shows as
            # a new version next time, so nothing is skipped.
            self._version = version
            self._read_at = started
            self.sweep_now_and_then()
            return True
        finally:
            self._lock.release()

    def _data_version(self) -> int | None:
        """SQLite file databases: the file's ``PRAGMA data_version`` on the
        copy's own connection (``None`` for other databases, or if it cannot
        be read: then the log is read every time)."""
        url = self._db.engine.url
        path = url.database
        if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
            return None
        if path.startswith("file:") or url.query:
            return None  # URI filenames and options: not worth guessing
        try:
            if self._watch is None:
                self._watch = sqlite3.connect(path, check_same_thread=False)
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            self._watch, self._version = None, None
            return None

    def sweep_now_and_then(self) -> None:
        if time.monotonic() - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = time.monotonic()
        now = time.time()
        for entries in (self.sessions, self.gone):
            for key, until in list(entries.items()):
                if until <= now:
                    entries.pop(key, None)
        for user_id, (_, user_until) in list(self.cutoffs.items()):
            if user_until <= now:
                self.cutoffs.pop(user_id, None)

    def mark_stale(self) -> None:
        self._read_at = float("-inf")

    def note_read(self, started: float) -> None:
        """A read of the log that started at ``started`` (``monotonic()``)
        succeeded, and the listener that made it hears: current until the
        bound has passed since then."""
        self._read_at = started

    # -- the listener's view ---------------------------------------------------

    @property
    def db(self) -> Database:
        return self._db

    def serves(self, pid: int) -> bool:
        """Whether process ``pid``'s listener still reads for this copy (the
        copy's own process: a fork starts its own)."""
        return self._pid == pid

    # -- the listener --------------------------------------------------------

    @property
    def _listens(self) -> bool:
        return self._db.engine.dialect.name == "postgresql"

    def _start(self) -> None:
        pid = _process.pid
        with self._lock:
            if self._pid == pid:
                return
            # New, or in a child after a fork (gunicorn --preload): what the
            # parent read may be old by now, and its thread did not survive.
            self._pid = pid
            self._read_at = float("-inf")
            # A connection is not to be used across a fork: the child opens
            # its own (the parent's is left to the parent).
            self._watch, self._version = None, None
            self.url = self._db.engine.url
            if not self._listens:
                return
            self.application_name = f"tokenauth-revocations {pid} {id(self):x}"
            threading.Thread(
                target=listen,
                args=(weakref.ref(self), pid, self._listener_url()),
                name="tokenauth-revocations",
                daemon=True,
            ).start()

    def _listener_url(self) -> str:
        if self.listen_url is not None:
            return self.listen_url
        return self._db.engine.url.render_as_string(hide_password=False)
