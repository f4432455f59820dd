"""Engines made from a URL: the spellings of PostgreSQL URLs our users
bring, idle connections pinged before reuse (not every checkout), and
SQLite's foreign keys and busy timeout."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError


def normalize_url(url: str | URL) -> URL:
    """Accept the URL spellings our users bring.

    ``postgres://`` (Heroku, the tutorial's .env) means PostgreSQL, and a
    PostgreSQL URL without a driver uses psycopg2, the driver our
    ``postgres`` extra installs (SQLAlchemy 2.1 would pick psycopg 3).
    """
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


#: A pooled connection unused for longer than this is pinged before reuse.
IDLE_PING_SECONDS = 1.0


def make_engine(url: str | URL, options: Mapping[str, Any]) -> Engine:
    """An engine that notices a restarted database by itself.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout,
    doubling the cost of a one-statement refresh.  Instead, a connection is
    pinged only if it sat unused in the pool for more than a second: under
    load none is, and after an outage (seconds at least) all are.  A
    connection lost in between fails its request with a 503 and SQLAlchemy
    then replaces the whole pool.  ``TOKENAUTH_ENGINE_OPTIONS`` with
    ``pool_pre_ping`` set either way overrides this.  SQLite gets foreign keys
    and a busy timeout.  Errors of its statements hide their parameters.
    """
    kwargs: dict[str, Any] = dict(options)
    # Keep emails and password hashes out of SQLAlchemy's error messages, and
    # so out of any traceback a host logs; the options may turn it back on.
    kwargs.setdefault("hide_parameters", True)
    ping_idle = "pool_pre_ping" not in kwargs
    engine = create_engine(normalize_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    elif ping_idle:
        event.listen(engine.pool, "checkin", _note_checkin)
        event.listen(engine.pool, "checkout", _make_ping_if_idle(engine))
    return engine


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["tokenauth_idle_since"] = time.monotonic()


def _make_ping_if_idle(engine: Engine) -> Callable[[Any, Any, Any], None]:
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("tokenauth_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:
            # The pool discards this connection and tries a fresh one.
            raise DisconnectionError() from e

    return ping_if_idle


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
