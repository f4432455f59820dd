"""The built-in user store: the library's own ``tokenauth_users`` table;
see :mod:`flask_tokenauth.userstore`."""

from __future__ import annotations

import weakref
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Table,
    case,
    insert,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError

from . import _bulk_revocation as _bulk
from ._access import is_user_id
from ._config import Settings
from ._db import Database, execute_one
from ._passwords import hash_password, needs_rehash, verify_password
from ._store import UserStore
from ._validation import normalize_email
from .errors import EmailTaken
from .models import User

_users = cast(Table, User.__table__)
_USER_EXISTS_POSTGRESQL = f"SELECT id FROM {_users.name} WHERE id = %(id)s"
_USER_HASH_POSTGRESQL = f"SELECT password_hash FROM {_users.name} WHERE id = %(id)s"
#: :func:`~._access.is_user_id` as a PostgreSQL pattern, but for the bound
#: (a larger id of ten digits matches no row): the ``sub`` of a session is
#: cast to an integer only if it is one, so that a session of another id
#: scheme (an app that changed stores) reads as "no such user", not an error.
_USER_ID_PATTERN = "^[1-9][0-9]{0,9}$"
#: What the store reads of a user: a row, not an ORM object.
_COLUMNS = (
    _users.c.id,
    _users.c.email,
    _users.c.password_hash,
    _users.c.email_verified_at,
)


class BuiltinUserStore(UserStore):
    """The library's own ``tokenauth_users``: email login, bcrypt at
    ``TOKENAUTH_BCRYPT_ROUNDS``, rehashed on login when the cost changed."""

    login_field = "email"
    identity_attribute = "password_hash"
    model = User

    def __init__(self) -> None:
        self._db: Database | None = None
        self._rounds = 12
        self._settings: Settings | None = None
        # Weak: an app dropped (a test suite makes many) is not kept alive.
        self._apps: weakref.WeakSet[Any] = weakref.WeakSet()
        self._watching = False

    def bind(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._rounds = settings.bcrypt_rounds

    def attach(self, app: Any) -> None:
        """From now on a ``User`` deleted through the ORM (one object, or a
        bulk ``delete(User)``) ends the user's sessions on ``app`` at commit.  A
        deletion of any kind is also logged by the table's trigger for
        each process's copy of the revocations (database store); this
        tells the Redis store too, and revokes the sessions."""
        if not self._watching:
            self._watching = True
            _bulk.watch(
                User,
                to_sub=str,
                revoke=self._revoke,
                objects=True,
                tell=self._tell,
                forget=self._forget,
            )
        self._apps.add(app)

    def _revoke(self, subs: list[str]) -> list[str]:
        return _bulk.revoke_on_apps(self._apps, subs)

    def _forget(self, subs: list[str]) -> None:
        _bulk.forget_on_apps(self._apps, subs)

    def _tell(self, session_ids: list[str]) -> None:
        _bulk.tell_apps(self._apps, session_ids)

    @property
    def db(self) -> Database:
        assert self._db is not None, "BuiltinUserStore used before init_app"
        return self._db

    @property
    def settings(self) -> Settings:
        assert self._settings is not None, "BuiltinUserStore used before init_app"
        return self._settings

    def normalize_login(self, value: str) -> str:
        return normalize_email(value)

    def find_by_login(self, login: str) -> Any | None:
        with self.db.begin() as conn:
            return conn.execute(
                select(*_COLUMNS).where(_users.c.email == login)
            ).first()

    def get(self, sub: str) -> Any | None:
        if not is_user_id(sub):
            return None
        with self.db.session() as session:
            return session.get(User, int(sub))

    def status(self, sub: str) -> bool | None:
        # Every refresh asks: one statement, in one round trip on PostgreSQL
        # (autocommit, straight to the driver), rather than an ORM session's
        # BEGIN, SELECT and ROLLBACK.  Our users have no "inactive" state.
        if not is_user_id(sub):
            return None
        with self.db.single_statement() as conn:
            if conn.dialect.name == "postgresql":
                row = execute_one(conn, _USER_EXISTS_POSTGRESQL, {"id": int(sub)})
            else:
                row = conn.execute(
                    select(_users.c.id).where(_users.c.id == int(sub))
                ).first()
        return None if row is None else True

    def status_and_identity(self, sub: str) -> tuple[bool | None, Any]:
        if not is_user_id(sub):
            return None, None
        # One statement, as status() (straight to the driver on PostgreSQL).
        with self.db.single_statement() as conn:
            if conn.dialect.name == "postgresql":
                found = execute_one(conn, _USER_HASH_POSTGRESQL, {"id": int(sub)})
            else:
                found = conn.execute(
                    select(_users.c.password_hash).where(_users.c.id == int(sub))
                ).first()
        return (None, None) if found is None else (True, found[0])

    def status_clause(
        self, sub: ColumnElement[str], db: Database
    ) -> ColumnElement[Any] | None:
        # Our users are in our database and are all active: the row exists.
        user_id = case((sub.regexp_match(_USER_ID_PATTERN), sql_cast(sub, BigInteger)))
        return select(true()).where(_users.c.id == user_id).scalar_subquery()

    def sub_of(self, user: Any) -> str:
        return str(user.id)

    def is_subject(self, sub: str) -> bool:
        return is_user_id(sub)

    def user_id(self, sub: str) -> int:
        return int(sub)

    def login_of(self, user: Any) -> str:
        return str(user.email)

    def verify_password(self, user: Any, password: str) -> bool:
        return verify_password(password, user.password_hash, rounds=self._rounds)

    def rehash_if_needed(self, user: Any, password: str) -> None:
        if needs_rehash(user.password_hash, self._rounds):
            with self.db.begin() as conn:
                self.set_password(user, password, conn)

    def create(self, login: str, password: str, conn: Connection | None = None) -> Any:
        now = datetime.now(timezone.utc)
        statement = (
            insert(_users)
            .values(
                email=login,
                password_hash=hash_password(password, self._rounds),
                created_at=now,
                updated_at=now,
            )
            .returning(*_COLUMNS)
        )
        if conn is not None:
            return conn.execute(statement).one()
        with self.db.begin() as own:
            return own.execute(statement).one()

    def set_password(
        self, user: Any, password: str, conn: Connection | None = None
    ) -> None:
        statement = (
            update(_users)
            .where(_users.c.id == user.id)
            .values(
                password_hash=hash_password(password, self._rounds),
                updated_at=datetime.now(timezone.utc),
            )
        )
        if conn is not None:
            conn.execute(statement)
        else:
            with self.db.begin() as own:
                own.execute(statement)

    # -- Addresses: the login is the address -------------------------------

    def email_of(self, user: Any) -> str | None:
        return str(user.email)

    def find_by_email(self, email: str) -> Any | None:
        return self.find_by_login(email)

    def is_email_verified(self, user: Any) -> bool:
        return getattr(user, "email_verified_at", None) is not None

    def set_email_verified(
        self, user: Any, email: str, conn: Connection | None = None
    ) -> None:
        # Only if the address is still the one the link was sent to.
        statement = (
            update(_users)
            .where(_users.c.id == user.id, _users.c.email == email)
            .values(email_verified_at=datetime.now(timezone.utc))
        )
        if conn is not None:
            conn.execute(statement)
        else:
            with self.db.begin() as own:
                own.execute(statement)

    def set_email(self, user: Any, email: str, conn: Connection | None = None) -> None:
        now = datetime.now(timezone.utc)
        statement = (
            update(_users)
            .where(_users.c.id == user.id)
            .values(email=email, email_verified_at=now, updated_at=now)
        )
        try:
            if conn is not None:
                with conn.begin_nested():
                    conn.execute(statement)
            else:
                with self.db.begin() as own:
                    own.execute(statement)
        except IntegrityError as e:
            raise EmailTaken() from e
