"""The PostgreSQL listener of a :class:`~._dbmirror.RevocationCopy`.

A thread of its own, on a connection of its own
(``TOKENAUTH_REVOCATION_LISTEN_URL``, by default the database's), that
``LISTEN``\\ s on the revocation log's channel and reads the log's new rows
into the copy: at once when a revoking transaction notifies the channel at
commit, and every quarter of the staleness bound otherwise, a heartbeat
that notices a dead connection even when no notification would.

A ``LISTEN`` can be accepted and still never deliver: through PgBouncer in
transaction mode it stays on a server connection that goes back to the
pool, and the heartbeat's reads still succeed.  So the listener proves it
hears before its reads count: on each (re)connect, and every
:data:`PROBE_EVERY_SECONDS`, the app's own engine notifies the channel with
a random payload (:func:`_probe`), and until the listener has heard it the
copy is not current (an error names ``TOKENAUTH_REVOCATION_LISTEN_URL``).
Listeners ignore the probes they did not send.
"""

from __future__ import annotations

import logging
import secrets
import select
import time
import weakref
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, make_url, text

from ._db import Database, describe_db_error
from .models import RevocationEvent

if TYPE_CHECKING:
    from ._dbmirror import RevocationCopy

logger = logging.getLogger("flask_tokenauth")

#: The PostgreSQL ``NOTIFY`` channel: the log table's own name.
CHANNEL = cast(Table, RevocationEvent.__table__).name
#: The longest wait between two attempts to reconnect the listener.
MAX_RETRY_SECONDS = 2.0
#: The listener reads at least this long apart, however small the bound.
MIN_HEARTBEAT_SECONDS = 0.01
#: While the listener stays down, how often that is logged as a warning
#: (and, while it cannot hear, as an error).
WARN_EVERY_SECONDS = 60.0
#: How often a listener that connected proves again that it hears.  Once
#: heard, a connection keeps hearing for as long as it lives (a ``LISTEN``
#: is its session's), so this is a guard, not the heartbeat: each probe
#: wakes every listener on the database.
PROBE_EVERY_SECONDS = 60.0
#: How long a probe may take to come back.  A listener that hears gets it
#: within milliseconds; the bound only matters for one that does not, and
#: is generous so that a loaded host is not taken for a deaf listener.
PROBE_TIMEOUT_SECONDS = 5.0
#: What a probe's payload starts with (a revocation's payload is empty).
PROBE_PREFIX = "tokenauth-probe:"


def _connect(url: str, application_name: str) -> Any:
    """A driver (psycopg2) connection of its own, outside any pool, in
    autocommit (LISTEN needs it), whose dead peer TCP keepalives notice
    within seconds."""
    from sqlalchemy import create_engine

    from ._engine import normalize_url

    target = normalize_url(url)
    dialect = create_engine(target).dialect  # connects nowhere
    args, params = dialect.create_connect_args(target)
    params.update(
        application_name=application_name,
        connect_timeout=2,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=2,
    )
    connection = dialect.connect(*args, **params)
    connection.autocommit = True
    return connection


def _probe(db: Database, connection: Any) -> bool:
    """Whether the listener's ``connection`` hears the channel: the app's
    engine notifies it with a random payload, which must arrive within
    :data:`PROBE_TIMEOUT_SECONDS`.

    The engine sends it, not the listener's connection: through PgBouncer in
    transaction mode that one's ``NOTIFY`` may run on the very server
    connection that holds its ``LISTEN``, and come back to it, while no
    other session's would.  The listener runs no query while it waits, so
    no server connection is linked to it that could hand it the probe.
    Other notifications are dropped: the read that follows covers them.
    """
    payload = PROBE_PREFIX + secrets.token_hex(8)
    connection.notifies.clear()
    with db.engine.connect() as conn:
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": payload},
        )
        conn.commit()
        # Through PgBouncer the engine's own session may be the one
        # listening: what it hears there is nobody's.
        notifies = getattr(conn.connection.dbapi_connection, "notifies", None)
        if notifies is not None:
            notifies.clear()
    deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
    while True:
        heard = any(n.payload == payload for n in connection.notifies)
        connection.notifies.clear()
        remaining = deadline - time.monotonic()
        if heard or remaining <= 0:
            return heard
        select.select([connection], [], [], remaining)
        connection.poll()


def _wait(connection: Any, seconds: float) -> None:
    """Until a notification other than a probe arrives (a revocation, to
    read at once), or ``seconds`` have passed.

    What the driver already holds is looked at before waiting: a
    notification that arrived while the listener read came in with the
    read's answer, so it is in ``connection.notifies`` and no longer on the
    socket, and ``select()`` would sleep over it until the heartbeat."""
    deadline = time.monotonic() + seconds
    while True:
        connection.poll()  # without blocking: what the socket holds now
        news = any(not n.payload.startswith(PROBE_PREFIX) for n in connection.notifies)
        connection.notifies.clear()
        remaining = deadline - time.monotonic()
        if news or remaining <= 0:
            return
        select.select([connection], [], [], remaining)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable)"


def listen(ref: weakref.ReferenceType[RevocationCopy], pid: int, url: str) -> None:
    """The thread: connect, LISTEN, prove it hears (:func:`_probe`), load,
    then read on every notification and every heartbeat, and probe again
    every :data:`PROBE_EVERY_SECONDS`; on any failure mark the copy stale
    and start over.  Reads count (the copy is current) only while the last
    probe was heard.  Ends when the copy is gone or the process is a fork of
    the one that started it.  A failure is logged as a warning when it
    follows a success, and then at most once a minute while it lasts; a
    probe not heard, as an error, at most once a minute."""
    delay = 0.1
    warned_at: float | None = None
    deaf_at: float | None = None  # when a deaf listener was last logged
    while True:
        copy = ref()
        if copy is None or not copy.serves(pid):
            return
        heartbeat = max(copy.staleness / 4, MIN_HEARTBEAT_SECONDS)
        name = copy.application_name
        del copy
        connection: Any = None
        try:
            connection = _connect(url, name)
            with connection.cursor() as cursor:
                # LISTEN before the first read: a revocation committed in
                # between is in the read or notified after it.
                cursor.execute(f"LISTEN {CHANNEL}")
                probe_due = time.monotonic()
                hears = False
                while True:
                    if (copy := ref()) is None or not copy.serves(pid):
                        return
                    if time.monotonic() >= probe_due:
                        hears = _probe(copy.db, connection)
                        probe_due = time.monotonic() + PROBE_EVERY_SECONDS
                        if hears and deaf_at is not None:
                            logger.warning("tokenauth revocation listener hears again")
                            deaf_at = None
                        elif not hears:
                            copy.mark_stale()
                            if deaf_at is None or (
                                time.monotonic() - deaf_at > WARN_EVERY_SECONDS
                            ):
                                deaf_at = time.monotonic()
                                logger.error(
                                    "tokenauth revocation listener at %s hears"
                                    " nothing on its LISTEN (its probe did not"
                                    " arrive within %g s): asking the database"
                                    " on each request.  Set"
                                    " TOKENAUTH_REVOCATION_LISTEN_URL to the same"
                                    " database directly on PostgreSQL, or through"
                                    " PgBouncer in session mode (transaction and"
                                    " statement modes do not deliver"
                                    " notifications)",
                                    _safe_url(url),
                                    PROBE_TIMEOUT_SECONDS,
                                )
                    started = time.monotonic()
                    cursor.execute(*copy.query(named=False))
                    copy.apply(cursor.fetchall())
                    if hears:
                        copy.note_read(started)
                    copy.sweep_now_and_then()
                    del copy
                    delay = 0.1
                    if warned_at is not None:
                        logger.warning("tokenauth revocation listener is back")
                        warned_at = None
                    _wait(connection, min(heartbeat, probe_due - time.monotonic()))
        except Exception as e:  # any failure: stale until read again
            if (copy := ref()) is not None:
                copy.mark_stale()
                del copy
            if warned_at is None or time.monotonic() - warned_at > WARN_EVERY_SECONDS:
                warned_at = time.monotonic()
                level = logging.WARNING
            else:
                level = logging.DEBUG
            logger.log(
                level,
                "tokenauth revocation listener lost (asking the database on"
                " each request until it is back): %s",
                describe_db_error(e),
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
        finally:
            if connection is not None:
                connection.close()
