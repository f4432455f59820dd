"""The database connection of one application.

Either an engine the app passes in (e.g. Flask-SQLAlchemy's ``db.engine``)
or one made from ``TOKENAUTH_DATABASE_URL`` / ``SQLALCHEMY_DATABASE_URI``.
Connection failures become :class:`~flask_tokenauth.errors.DatabaseUnavailable`
(503) at this one place, missing tables or columns (migrations not run)
:class:`~flask_tokenauth.errors.DatabaseNotMigrated` (500); a failed
transaction is rolled back whole.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .errors import DatabaseNotMigrated, DatabaseUnavailable, TokenAuthError

logger = logging.getLogger("flask_tokenauth")

EngineSource = Engine | Callable[[], Engine]


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime: SQLite hands back naive ones, and
    everything this package stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


#: A driver message's first line is cut to this length in the log.
MAX_LOGGED_MESSAGE = 200


def describe_db_error(error: BaseException) -> str:
    """Say what a database error is, without the values it was about.

    ``str()`` of SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError` carries the
    statement's parameters (an email, a new password hash), and psycopg2's
    message continues with ``DETAIL`` (``Key (email)=(...)``, ``Failing row
    contains (...)``) and ``LINE 1:`` (the statement with its values
    inlined).  What is kept: the driver's exception class, its SQLSTATE (or
    SQLite's error name) and the first line of its message, which names what
    failed (``relation "users" does not exist``) but no row.
    """
    orig = error.orig if isinstance(error, DBAPIError) else error
    if orig is None:  # a SQLAlchemy error raised without a driver error
        orig = error
    kind = type(orig)
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlite_errorname", None)
    lines = str(orig).strip().splitlines()
    first = lines[0][:MAX_LOGGED_MESSAGE] if lines else ""
    where = f" [{code}]" if code else ""
    return f"{kind.__module__}.{kind.__qualname__}{where}: {first}"


#: PostgreSQL's SQLSTATEs for a table (``undefined_table``) and a column
#: (``undefined_column``) that do not exist.
_MISSING_SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})
#: SQLite's messages for the same (it has no finer error code than
#: ``SQLITE_ERROR`` for them).
_MISSING_SCHEMA_SQLITE = ("no such table", "no such column")


def is_missing_schema(error: BaseException) -> bool:
    """Whether ``error`` says one of our tables or columns does not exist.

    Our statements are built from our models, so a missing table or column
    means the database is behind this release: its migrations were never run
    (or not the latest).
    """
    orig = error.orig if isinstance(error, DBAPIError) else error
    # psycopg2 calls the SQLSTATE ``pgcode``, psycopg 3 ``sqlstate``.
    sqlstate = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _MISSING_SCHEMA_SQLSTATES
    return isinstance(orig, sqlite3.Error) and str(orig).startswith(
        _MISSING_SCHEMA_SQLITE
    )


class _Once:
    """True the first time it is asked, in the whole process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> bool:
        with self._lock:
            first, self._done = not self._done, True
        return first


#: The missing-migrations message is logged once: every request of an
#: unmigrated app fails the same way, and one clear line is what an operator
#: reads.
_first_not_migrated = _Once()


def upgrade_command() -> str:
    """The command that creates or updates our tables for the current app."""
    app = current_app.import_name if has_app_context() else "__main__"
    target = "<your app>" if app == "__main__" else app
    return f"flask --app {target} tokenauth db upgrade"


def translate_db_error(error: BaseException) -> TokenAuthError:
    """The error a request answers for a database failure, logged.

    Missing tables or columns are the operator's to fix, not a passing outage:
    :class:`DatabaseNotMigrated`, logged once per process with the command
    to run.  Anything else is :class:`DatabaseUnavailable`, for the client to
    retry.
    """
    if is_missing_schema(error):
        level = logging.ERROR if _first_not_migrated() else logging.DEBUG
        logger.log(
            level,
            "tokenauth database error: %s: our tables are missing or out of"
            " date (migrations not run): run '%s'",
            describe_db_error(error),
            upgrade_command(),
        )
        return DatabaseNotMigrated()
    logger.error("tokenauth database error: %s", describe_db_error(error))
    return DatabaseUnavailable()


def _first_row(conn: Connection, sql: str, params: Mapping[str, Any]) -> Any:
    """Run ``sql`` on the driver's own connection, in autocommit outside a
    transaction; the first row.  Driver errors pass through."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    autocommit = not conn.in_transaction() and not dbapi_connection.autocommit
    if autocommit:
        dbapi_connection.autocommit = True
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone()
        finally:
            cursor.close()
    finally:
        if autocommit and not dbapi_connection.closed:
            dbapi_connection.autocommit = False


def _driver_error(conn: Connection, error: Any) -> TokenAuthError:
    """What a driver error of :func:`execute_one` becomes; the connection is
    discarded if it was lost."""
    dbapi_connection = conn.connection.dbapi_connection
    if conn.dialect.is_disconnect(error, dbapi_connection, None):
        conn.invalidate(error)
    return translate_db_error(error)


def execute_one(
    conn: Connection, sql: str, params: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """Run one statement on the driver's own connection and return its first
    row, skipping SQLAlchemy's execution layer (its cost dominates a short
    statement).  Outside a transaction the statement runs in autocommit, so
    it is one round trip; inside one it joins it.

    :raises DatabaseNotMigrated: if a table or column is missing.
    :raises DatabaseUnavailable: on any other driver error (the connection
        is discarded if it was lost).
    """
    try:
        row = _first_row(conn, sql, params)
    except conn.dialect.loaded_dbapi.Error as e:
        raise _driver_error(conn, e) from e
    return None if row is None else tuple(row)


#: The SQLSTATEs of a prepared statement that is not where we thought:
#: ``invalid_sql_statement_name`` (the connection lost it: ``DISCARD ALL``,
#: or a pooler in transaction mode sent us to another server connection) and
#: ``duplicate_prepared_statement`` (that connection has it already).
_PREPARED_ELSEWHERE = frozenset({"26000", "42P05"})
#: ``PoolProxiedConnection.info`` key: names of the statements prepared on
#: the connection (the pool clears ``info`` with the connection it replaces).
_PREPARED_KEY = "tokenauth_prepared"


class PreparedStatement:
    """A PostgreSQL statement planned once per connection and run by name.

    Planning a statement of several CTEs costs the server more than running
    it: a rotation spends about 0.2 ms in the planner, every time, when sent
    as text.  The first use on a connection sends ``PREPARE`` and
    ``EXECUTE`` together (one round trip); later uses send only ``EXECUTE``.

    A pooler in transaction mode (PgBouncer) may run the ``EXECUTE`` on
    another server connection, which has no such statement (or has it
    already, prepared by another client): the statement then runs as plain
    text, and does so from then on in this process.  Either failure happens
    before anything runs, so running the text is safe.

    :param sql: the statement, with ``%(name)s`` parameters.
    :param types: each parameter's name and SQL type, in any order.
    """

    def __init__(self, sql: str, types: Mapping[str, str]) -> None:
        self.sql = sql
        self.name = "tokenauth_" + hashlib.sha256(sql.encode()).hexdigest()[:16]
        body = sql
        for number, name in enumerate(types, 1):
            body = body.replace(f"%({name})s", f"${number}")
        arguments = ", ".join(f"%({name})s" for name in types)
        self._execute = f"EXECUTE {self.name} ({arguments})"
        self._prepare = (
            f"PREPARE {self.name} ({', '.join(types.values())}) AS {body};"
            f" {self._execute}"
        )
        #: ``False`` once a connection did not have it where it should: a
        #: pooler is in between, the text is sent instead.
        self.usable = True

    def first_row(
        self, conn: Connection, params: Mapping[str, Any], before: str = ""
    ) -> tuple[Any, ...] | None:
        """:func:`execute_one` of this statement, by name where it can.

        :param before: statements (each ending in ``;``) sent ahead of it in
            the same round trip, which PostgreSQL runs in one implicit
            transaction with it; only outside a transaction.
        """
        if conn.in_transaction():
            return execute_one(conn, self.sql, params)
        if not self.usable:
            return execute_one(conn, before + self.sql, params)
        prepared: set[str] = conn.connection.info.setdefault(_PREPARED_KEY, set())
        try:
            known = self.name in prepared
            sql = self._execute if known else self._prepare
            try:
                row = _first_row(conn, before + sql, params)
            except conn.dialect.loaded_dbapi.Error as e:
                if getattr(e, "pgcode", None) not in _PREPARED_ELSEWHERE:
                    raise
                # Not where we thought: once more the other way, which is
                # right for a connection that only lost it or only had it.
                if known:
                    prepared.discard(self.name)
                else:
                    prepared.add(self.name)
                again = self._prepare if known else self._execute
                row = _first_row(conn, before + again, params)
        except conn.dialect.loaded_dbapi.Error as e:
            if getattr(e, "pgcode", None) not in _PREPARED_ELSEWHERE:
                raise _driver_error(conn, e) from e
            logger.info(
                "tokenauth: PostgreSQL lost a prepared statement between two"
                " uses (a pooler in transaction mode?): sending it as text"
                " from now on"
            )
            self.usable = False
            prepared.discard(self.name)
            return execute_one(conn, before + self.sql, params)
        prepared.add(self.name)
        return None if row is None else tuple(row)


class Database:
    """Transactions and sessions on one engine, with errors translated."""

    def __init__(self, source: EngineSource, origin: str = "") -> None:
        self._source = source
        self._origin = origin
        self._engine: Engine | None = source if isinstance(source, Engine) else None
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()
        _DATABASES.add(self)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            assert callable(self._source)
            with self._lock:  # one engine, whichever thread asks first
                if self._engine is None:
                    self._engine = self._source()
        return self._engine

    @property
    def origin(self) -> str:
        """Where the engine comes from (``TOKENAUTH_DATABASE_URL``,
        Flask-SQLAlchemy...), for the operator; a source decided at first
        use says so once used."""
        return str(getattr(self._source, "origin", self._origin))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed if the block succeeds, rolled back whole
        otherwise.  Integrity errors pass through for the caller to map; the
        others become :func:`translate_db_error`'s."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as e:
            raise translate_db_error(e) from e

    @contextmanager
    def single_statement(self) -> Iterator[Connection]:
        """For work that is one statement on PostgreSQL (see
        :func:`execute_one`): there a connection outside any transaction;
        elsewhere a transaction.  Any database error, an integrity error
        included (none is expected of such work), is a 503, or a 500 if
        the migrations were not run."""
        try:
            if self.engine.dialect.name != "postgresql":
                with self.engine.begin() as conn:
                    yield conn
            else:
                with self.engine.connect() as conn:
                    yield conn
        except DBAPIError as e:
            raise translate_db_error(e) from e

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session for reads (e.g. loading ``current_user``)."""
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            with self._sessions() as session:
                yield session
        except DBAPIError as e:
            raise translate_db_error(e) from e


#: Every database of this process, for :func:`_forget_parents_connections`.
_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()


def _forget_parents_connections() -> None:
    """In a child after a fork (``gunicorn --preload``): a new pool for each
    engine, the parent's connections left to the parent (SQLAlchemy's
    ``dispose(close=False)``).  A pooled connection is a socket: used by two
    processes at once, their messages interleave and one waits forever for
    an answer the other read.  The revocation listener of a preloaded app
    uses the engine before the fork, so without this every worker would
    share that connection."""
    for database in list(_DATABASES):
        if database._engine is not None:
            database._engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parents_connections)
