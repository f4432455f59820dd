"""The database connection of one application.

Either an engine the app passes in (e.g. Flask-SQLAlchemy's ``db.engine``)
or one made from ``TOKENAUTH_DATABASE_URL`` / ``SQLALCHEMY_DATABASE_URI``.
Connection failures become :class:`~flask_tokenauth.errors.DatabaseUnavailable`
(503) at this one place; a failed transaction is rolled back whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .errors import DatabaseUnavailable

logger = logging.getLogger("flask_tokenauth")

EngineSource = Engine | Callable[[], Engine]


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime: SQLite hands back naive ones, and
    everything this package stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


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


def make_engine(url: str | URL, options: Mapping[str, Any]) -> Engine:
    """An engine with ``pool_pre_ping`` on, so a restarted database is
    reconnected to by itself; SQLite gets foreign keys and a busy timeout."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    kwargs.update(options)
    engine = create_engine(normalize_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """Transactions and sessions on one engine, with errors translated."""

    def __init__(self, source: EngineSource) -> None:
        self._source = source
        self._engine: Engine | None = source if isinstance(source, Engine) else None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            assert callable(self._source)
            self._engine = self._source()
        return self._engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed if the block succeeds, rolled back whole
        otherwise.  Integrity errors pass through for the caller to map."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as e:
            logger.error("tokenauth database error: %s", e)
            raise DatabaseUnavailable() from e

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session for reads (e.g. loading ``current_user``)."""
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            with self._sessions() as session:
                yield session
        except DBAPIError as e:
            logger.error("tokenauth database error: %s", e)
            raise DatabaseUnavailable() from e
