"""Which SQLAlchemy session reaches a host model's rows: the host's own
(``session=``, or Flask-SQLAlchemy's for a ``db.Model``), else one of ours
on the extension's engine; for a write that belongs to one of our
transactions, an ORM session on that transaction's connection when the rows
are in our database; and whether a statement of ours can read them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, false, func, select, true
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session as OrmSession

from ._db import Database
from ._hostkeys import PrimaryKey


class HostSessions:
    """The sessions of one store's model.

    :param session: the host's session factory, or ``None`` for ours.
    :param db: our database (the current app's), asked only when needed.
    """

    def __init__(
        self,
        model: type[Any],
        session: Callable[[], OrmSession] | None,
        db: Callable[[], Database],
    ) -> None:
        self.model = model
        self.factory = session
        self.db = db

    @contextmanager
    def use(self) -> Iterator[OrmSession]:
        """The session to query."""
        if self.factory is not None:
            yield self.factory()
            return
        with self.db().session() as session:
            yield session

    def in_database(self, db: Database) -> bool:
        """Whether the model's rows are in ``db``, so that one statement or
        transaction there reaches them."""
        if self.factory is None:
            return True  # queried through ``db`` itself, see use()
        try:
            bind = self.factory().get_bind(mapper=sa_inspect(self.model))
        except Exception:  # no bind, no app context: not ours to reach
            return False
        if bind.engine is db.engine:
            return True
        # Two engines on one in-memory SQLite URL are two databases.
        url = bind.engine.url
        return url == db.engine.url and url.database not in (None, "", ":memory:")

    def status_clause(
        self, sub: ColumnElement[str], db: Database, key: PrimaryKey, is_active: Any
    ) -> ColumnElement[Any] | None:
        """:meth:`UserStore.status_clause`: the host's row looked up by its
        primary key in SQL, if the model is in our database (its session is
        ours, or on an engine of the same URL), ``is_active`` is a column of
        its table or absent, and the key is an integer, a native UUID or a
        string: else ``None`` and each refresh asks ``status()`` (a second
        round trip)."""
        if is_active is not None and not isinstance(is_active, str):
            return None
        key_value = key.sql(sub)
        if key_value is None:
            return None
        active: ColumnElement[Any] = true()
        if isinstance(is_active, str):
            column = sa_inspect(self.model).columns[is_active]
            if column.table is not key.column.table:  # another table of an inheritance
                return None
            # ``is_active`` reads a NULL as false, and so does this.
            active = func.coalesce(column, false())
        if not self.in_database(db):
            return None
        return select(active).where(key.column == key_value).scalar_subquery()

    @contextmanager
    def writing(self, conn: Connection | None) -> Iterator[OrmSession]:
        """A session to change users in, committed at the end of the block:
        on ``conn``, in its transaction, if the rows are in our database: a link
        is spent and the user changed together or not at all, and on SQLite
        a second connection would wait for ``conn``'s write lock.  Else the
        host's session (or ours), committed; rolled back on an error."""
        if conn is not None and self.in_database(self.db()):
            with orm_session_on(conn) as session:
                yield session
            return
        with self.use() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


@contextmanager
def orm_session_on(conn: Connection) -> Iterator[OrmSession]:
    """An ORM session in ``conn``'s transaction, in a savepoint of its own:
    released on success, rolled back (the caller's transaction intact) on
    an error.  The model's own ``@validates`` and mapper events run as in
    the host's session."""
    dbapi = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite" and not getattr(dbapi, "in_transaction", True):
        # pysqlite begins its transaction at the first write only: a
        # SAVEPOINT before it would be a transaction of its own, which its
        # RELEASE commits whatever the caller's transaction does next.
        conn.exec_driver_sql("BEGIN")
    session = OrmSession(
        bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
