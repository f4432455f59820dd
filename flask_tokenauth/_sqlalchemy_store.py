"""The host application's own SQLAlchemy model as the user store; see
:mod:`flask_tokenauth.userstore`."""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    ColumnElement,
    Connection,
    Enum,
    String,
    UniqueConstraint,
    Uuid,
    and_,
    case,
    event,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import object_session
from werkzeug.security import check_password_hash, generate_password_hash

from . import _bulk_revocation as _bulk
from ._config import Settings
from ._db import Database
from ._passwords import hash_password, needs_rehash, verify_password
from ._state import get_state
from ._store import UserStore
from .errors import ConfigurationError, InternalError, ValidationError
from .models import USER_ID_LENGTH

logger = logging.getLogger("flask_tokenauth")


#: What a verifier may be: a scheme name, a passlib ``CryptContext`` (any
#: object with ``verify(password, hash)`` and ``hash(password)``), or a
#: callable ``verify(user, password) -> bool``.
Verifier = str | Callable[[Any, str], bool] | Any

#: The bcrypt hashes :mod:`._passwords` writes and reads.
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$", "$bcrypt-sha256$")
#: The schemes of werkzeug's ``generate_password_hash``.
_WERKZEUG_PREFIXES = ("scrypt:", "pbkdf2:")
#: The largest value of each integer column type (ids are never negative).
_INTEGER_MAX = {"SmallInteger": 2**15 - 1, "Integer": 2**31 - 1}
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
#: ``_DECIMAL`` as a PostgreSQL pattern, up to the digits of a BIGINT.
_DECIMAL_PATTERN = "^(0|[1-9][0-9]{0,18})$"
_BIGINT_MAX = str(2**63 - 1)
#: The canonical (lowercase) form of a UUID, as :meth:`is_subject` wants it.
_UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _is_passlib_context(value: Any) -> bool:
    return callable(getattr(value, "verify", None)) and callable(
        getattr(value, "hash", None)
    )


class SQLAlchemyUserStore(UserStore):
    """The host application's own SQLAlchemy model as the user store.

    ::

        auth = TokenAuth(
            user_store=SQLAlchemyUserStore(User, login="username"),
        )

    :param model: a mapped class (Flask-SQLAlchemy ``db.Model`` or plain
        declarative) with a single-column primary key, which becomes the
        ``sub`` of the user's tokens (an integer as its decimal string, a
        UUID in its canonical lowercase form, a string as it is).
    :param login: the unique column users log in with; also the JSON field
        of ``/login`` and ``/register`` (``{"username": ..., "password":
        ...}``).
    :param password: the column holding the password hash.
    :param verify: how to check a password: ``"auto"`` (the default: our
        bcrypt hashes and werkzeug's ``scrypt:``/``pbkdf2:`` hashes, told
        apart by their prefix), ``"bcrypt"``, ``"werkzeug"``, a passlib
        ``CryptContext``, or a callable ``verify(user, password) -> bool``.
    :param hash: ``hash(password) -> str`` for ``/password`` (and the CLI);
        by default the scheme of ``verify`` (werkzeug's
        ``generate_password_hash`` for ``"auto"`` and ``"werkzeug"``, our
        bcrypt for ``"bcrypt"``, the context's for passlib).  Match the
        scheme your own login form checks.
    :param rehash: ``rehash(user, password) -> str | None`` called after a
        successful login: a new hash to store, or ``None``.  By default our
        bcrypt hashes are rehashed when ``TOKENAUTH_BCRYPT_ROUNDS`` changed,
        passlib hashes when the context says so, and nothing else.
    :param is_active: ``None`` (every user is active), the name of a boolean
        column, or a callable ``is_active(user) -> bool``.  An inactive user
        cannot log in or refresh; with a column, turning it false through
        the ORM also ends the user's sessions (see :meth:`bind`).
    :param session: a callable returning the SQLAlchemy session to query
        (``lambda: db.session``); by default Flask-SQLAlchemy's session for
        a ``db.Model``, otherwise a session of our own on the extension's
        engine (the host's table must then be in that database).
    :param create: ``create(login, password) -> user`` that creates (and
        commits) a host user for ``/register``; without it, registration
        must be switched off (``TOKENAUTH_REGISTER_ENABLED = False``).
    :param normalize: ``normalize(login) -> str`` applied to what a client
        typed, after surrounding whitespace is stripped, before the lookup
        (e.g. ``str.lower`` for case-insensitive usernames stored in lower
        case).  The result also keys the wrong-password limits.
    :param dummy_hash: a hash of the scheme your users' hashes are in, of
        the same cost, checked for an unknown login so that it takes as
        long as a wrong password.  By default a werkzeug hash of its default
        scheme for ``"auto"``/``"werkzeug"``, passlib's ``dummy_verify`` for a
        context, our bcrypt dummy at ``TOKENAUTH_BCRYPT_ROUNDS`` otherwise.
    """

    def __init__(
        self,
        model: type[Any],
        *,
        login: str = "email",
        password: str = "password_hash",
        verify: Verifier = "auto",
        hash: Callable[[str], str] | None = None,
        rehash: Callable[[Any, str], str | None] | None = None,
        is_active: str | Callable[[Any], bool] | None = None,
        session: Callable[[], OrmSession] | None = None,
        create: Callable[[str, str], Any] | None = None,
        normalize: Callable[[str], str] | None = None,
        dummy_hash: str | None = None,
    ) -> None:
        self.model = model
        self.login_field = login
        self._password = password
        self.identity_attribute = password  # sessions bound to its hash
        self._verify: Any = verify
        self._hash = hash
        self._rehash = rehash
        self._is_active = is_active
        self._session = session
        self._create = create
        self._normalize = normalize
        self._dummy = dummy_hash
        # Weak: an app dropped (a test suite makes many) is not kept alive.
        self._apps: weakref.WeakSet[Any] = weakref.WeakSet()
        self._events = False
        self._validate()

    # -- start-up ------------------------------------------------------------

    def _validate(self) -> None:
        """Refuse a setup that cannot work, naming what to pass."""
        name = getattr(self.model, "__name__", repr(self.model))
        try:
            mapper = sa_inspect(self.model)
        except NoInspectionAvailable:
            raise ConfigurationError(
                f"SQLAlchemyUserStore({name}): pass a mapped SQLAlchemy model"
                " class (db.Model or a declarative class)."
            ) from None
        columns = mapper.columns
        for option, column in (
            ("login", self.login_field),
            ("password", self._password),
        ):
            if column not in columns:
                raise ConfigurationError(
                    f"SQLAlchemyUserStore({name}, {option}={column!r}): {name} has"
                    f" no column {column!r}; set {option}= to one of"
                    f" {', '.join(sorted(columns.keys()))}."
                )
        if isinstance(self._is_active, str) and self._is_active not in columns:
            raise ConfigurationError(
                f"SQLAlchemyUserStore({name}, is_active={self._is_active!r}): {name}"
                " has no such column; pass a column name or a callable."
            )
        if self._is_active is not None and not isinstance(self._is_active, str):
            _require_callable(name, "is_active", self._is_active)
        primary_key = mapper.primary_key
        if len(primary_key) != 1:
            raise ConfigurationError(
                f"SQLAlchemyUserStore({name}): the model needs a single-column"
                f" primary key (it has {len(primary_key)}); it becomes the sub of"
                " the user's tokens."
            )
        self._pk = primary_key[0]
        self._pk_kind, self._pk_limit = _key_kind(self._pk)
        login_column = columns[self.login_field]
        if not _is_unique(mapper.local_table, login_column):
            raise ConfigurationError(
                f"SQLAlchemyUserStore({name}, login={self.login_field!r}): the login"
                " column must be unique (unique=True, a unique index or"
                " constraint): two users with one login could not be told apart."
            )
        self._login_length = getattr(login_column.type, "length", None)
        if isinstance(self._verify, str):
            if self._verify not in {"auto", "bcrypt", "werkzeug"}:
                raise ConfigurationError(
                    f"SQLAlchemyUserStore({name}, verify={self._verify!r}): pass"
                    ' "auto", "bcrypt", "werkzeug", a passlib CryptContext or a'
                    " callable verify(user, password) -> bool."
                )
        elif not _is_passlib_context(self._verify):
            _require_callable(name, "verify", self._verify)
        for option, value in (
            ("hash", self._hash),
            ("rehash", self._rehash),
            ("session", self._session),
            ("create", self._create),
            ("normalize", self._normalize),
        ):
            if value is not None:
                _require_callable(name, option, value)
        if self._session is None:
            fsa = getattr(self.model, "__fsa__", None)  # Flask-SQLAlchemy 3
            if fsa is not None:
                self._session = lambda: fsa.session

    def bind(self, settings: Settings, db: Database) -> None:
        # Nothing of the app is kept: one store may serve several apps (see
        # _db and _rounds), so this only checks that it can serve this one.
        name = getattr(self.model, "__name__", repr(self.model))
        if settings.register_enabled and self._create is None:
            raise ConfigurationError(
                f"SQLAlchemyUserStore({name}) has no create hook for /register:"
                " pass create=lambda login, password: ... (which creates and"
                " commits a user), or set TOKENAUTH_REGISTER_ENABLED = False."
            )
        if settings.password_change_enabled and self._hasher() is None:
            raise ConfigurationError(
                f"SQLAlchemyUserStore({name}, verify=<callable>) cannot hash new"
                " passwords for /password: pass hash=..., or set"
                " TOKENAUTH_PASSWORD_CHANGE_ENABLED = False."
            )

    @property
    def _db(self) -> Database:
        """The current app's database: a plain declarative model without
        ``session=`` is queried there."""
        return get_state().db

    @property
    def _rounds(self) -> int:
        """The current app's bcrypt cost, for our own hashes."""
        return get_state().settings.bcrypt_rounds

    def attach(self, app: Any) -> None:
        """Called by :meth:`TokenAuth.init_app` once the app's state exists:
        from now on, a user deleted through the ORM (or made inactive, with
        an ``is_active`` column) loses its sessions on that app.

        The revocation runs once the host's transaction has committed, in a
        transaction of ours (told to Redis too), so that with every
        revocation store the user's access tokens stop at their next
        request.  A deletion made outside the ORM (raw SQL) is not seen
        here: the next refresh and :data:`~flask_tokenauth.current_user`
        find the user gone, and the user's access tokens otherwise live
        until they expire.
        """
        self._apps.add(app)
        if self._events:
            return
        self._events = True
        event.listen(self.model, "after_delete", self._on_delete)
        _bulk.watch(
            self.model,
            to_sub=self.to_sub,
            revoke=self._revoke,
            active=self._is_active if isinstance(self._is_active, str) else None,
        )
        if isinstance(self._is_active, str):
            event.listen(self.model, "after_update", self._on_update)

    # -- the ORM events --------------------------------------------------------

    def _on_delete(self, mapper: Any, connection: Any, target: Any) -> None:
        self._revoke_after_commit(target)

    def _on_update(self, mapper: Any, connection: Any, target: Any) -> None:
        assert isinstance(self._is_active, str)
        history = sa_inspect(target).attrs[self._is_active].history
        if history.has_changes() and not getattr(target, self._is_active):
            self._revoke_after_commit(target)

    def _revoke_after_commit(self, target: Any) -> None:
        session = object_session(target)
        sub = self.sub_of(target)
        if session is None:  # pragma: no cover - a flush always has one
            self._revoke([sub])
            return
        pending: set[str] = session.info.setdefault(_PENDING, set())
        pending.add(sub)
        if not event.contains(session, "after_commit", self._after_commit):
            # Kept on the session (removing a listener while its event runs
            # is not allowed); they do nothing while nothing is pending.
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", self._after_rollback)

    def _after_commit(self, session: OrmSession) -> None:
        subs = session.info.pop(_PENDING, None)
        if subs:
            self._revoke(sorted(subs))

    def _after_rollback(self, session: OrmSession) -> None:
        session.info.pop(_PENDING, None)

    def _revoke(self, subs: list[str]) -> None:
        """End every session of ``subs`` on every app this store serves.

        The host's commit has happened: an error here is logged, not
        raised (the host's deletion must not look failed); the user's
        refresh tokens are refused at the next refresh anyway.
        """
        from ._sessions import revoke_sessions

        for app in list(self._apps):
            with app.app_context():
                for sub in subs:
                    try:
                        revoke_sessions(
                            get_state(app), sub, reason="user-gone", cutoff=True
                        )
                    except Exception:
                        logger.exception(
                            "tokenauth could not end the sessions of deleted or"
                            " disabled user %s",
                            sub,
                        )

    # -- ids ---------------------------------------------------------------------

    def is_subject(self, sub: str) -> bool:
        if self._pk_kind == "int":
            return _DECIMAL.fullmatch(sub) is not None and int(sub) <= self._pk_limit
        if self._pk_kind == "uuid":
            try:
                return str(uuid.UUID(sub)) == sub
            except ValueError:
                return False
        return 0 < len(sub) <= self._pk_limit and not any(
            unicodedata.category(c) in {"Cc", "Cs"} for c in sub
        )

    def user_id(self, sub: str) -> Any:
        if self._pk_kind == "int":
            return int(sub)
        if self._pk_kind == "uuid":
            return uuid.UUID(sub)
        return sub

    def sub_of(self, user: Any) -> str:
        return self.to_sub(getattr(user, self._pk.key))

    def to_sub(self, user_or_id: Any) -> str:
        if isinstance(user_or_id, uuid.UUID):
            return str(user_or_id)
        if isinstance(user_or_id, self.model):
            return self.sub_of(user_or_id)
        return super().to_sub(user_or_id)

    # -- lookups -------------------------------------------------------------------

    @contextmanager
    def _use_session(self) -> Iterator[OrmSession]:
        if self._session is not None:
            yield self._session()
            return
        with self._db.session() as session:
            yield session

    def normalize_login(self, value: str) -> str:
        login = value.strip()
        if self._normalize is not None:
            login = self._normalize(login)
        if (
            not login
            or (self._login_length is not None and len(login) > self._login_length)
            or any(unicodedata.category(c) in {"Cc", "Cs"} for c in login)
        ):
            raise ValidationError(f"Invalid {self.login_field}")
        return login

    def find_by_login(self, login: str) -> Any | None:
        column = getattr(self.model, self.login_field)
        with self._use_session() as session:
            return session.scalars(select(self.model).where(column == login)).first()

    def get(self, sub: str) -> Any | None:
        if not self.is_subject(sub):
            return None
        with self._use_session() as session:
            return session.get(self.model, self.user_id(sub))

    def login_of(self, user: Any) -> str:
        return str(getattr(user, self.login_field))

    def status_clause(
        self, sub: ColumnElement[str], db: Database
    ) -> ColumnElement[Any] | None:
        """The host's row looked up by its primary key in SQL, if the model
        is in our database (its session is ours, or on an engine of the
        same URL), ``is_active`` is a column of its table or absent, and
        the key is an integer, a native UUID or a string: else ``None`` and
        each refresh asks :meth:`status` (a second round trip)."""
        if self._is_active is not None and not isinstance(self._is_active, str):
            return None
        key = self._key_of(sub)
        if key is None:
            return None
        table = self._pk.table
        active: ColumnElement[Any] = true()
        if isinstance(self._is_active, str):
            column = sa_inspect(self.model).columns[self._is_active]
            if column.table is not table:  # another table of an inheritance
                return None
            # ``is_active`` reads a NULL as false, and so does this.
            active = func.coalesce(column, false())
        if not self._in_database(db):
            return None
        return select(active).where(self._pk == key).scalar_subquery()

    def _key_of(self, sub: ColumnElement[str]) -> ColumnElement[Any] | None:
        """``sub`` as a value of the primary key's type, NULL where it is
        not one (no row then matches, as :meth:`get` finds none for a
        ``sub`` that :meth:`is_subject` refuses); ``None`` for a key type
        this is not sure to compare as the ORM would."""
        column_type = self._pk.type
        if self._pk_kind == "int":
            fits = and_(
                sub.regexp_match(_DECIMAL_PATTERN),
                or_(
                    func.length(sub) < len(_BIGINT_MAX),
                    sub.collate("C") <= _BIGINT_MAX,  # digits: "C" compares them
                ),
            )
            return case((fits, sql_cast(sub, BigInteger)))
        if self._pk_kind == "uuid":
            if not isinstance(column_type, Uuid) or not column_type.native_uuid:
                return None
            return case((sub.regexp_match(_UUID_PATTERN), sql_cast(sub, Uuid())))
        if isinstance(column_type, String) and not isinstance(
            column_type, (CHAR, Enum)
        ):
            return sub
        return None

    def _in_database(self, db: Database) -> bool:
        """Whether the model's rows are in ``db``, so that one statement
        there can read them."""
        if self._session is None:
            return True  # queried through ``db`` itself, see _use_session
        try:
            bind = self._session().get_bind(mapper=sa_inspect(self.model))
        except Exception:  # no bind, no app context: ask status() instead
            return False
        return bind.engine is db.engine or bind.engine.url == db.engine.url

    def is_active(self, user: Any) -> bool:
        if self._is_active is None:
            return True
        if isinstance(self._is_active, str):
            return bool(getattr(user, self._is_active))
        return bool(self._is_active(user))

    # -- passwords -----------------------------------------------------------------

    def _stored(self, user: Any) -> str:
        value = getattr(user, self._password)
        return value if isinstance(value, str) else ""

    def _check_hash(self, stored: str, password: str) -> bool:
        """Check ``password`` against a hash of a scheme we know."""
        if _is_passlib_context(self._verify):
            return bool(self._verify.verify(password, stored))
        scheme = self._verify
        if scheme in {"auto", "werkzeug"} and stored.startswith(_WERKZEUG_PREFIXES):
            return check_password_hash(stored, password)
        if scheme in {"auto", "bcrypt"} and stored.startswith(_BCRYPT_PREFIXES):
            return verify_password(password, stored, rounds=self._rounds)
        # Not a hash of the configured schemes (an empty or disabled
        # password): a mismatch, at the cost of a real check.
        self.dummy_check(password)
        return False

    def verify_password(self, user: Any, password: str) -> bool:
        try:
            if isinstance(self._verify, str) or _is_passlib_context(self._verify):
                return self._check_hash(self._stored(user), password)
            return bool(self._verify(user, password))
        except Exception as e:
            # The host's verifier (or its hash) failed: a 500 with its
            # traceback in the log, never a pass.
            logger.exception("tokenauth: the user store's password check raised")
            raise InternalError() from e

    def dummy_check(self, password: str) -> None:
        if self._dummy is not None:
            self._check_hash(self._dummy, password)
        elif _is_passlib_context(self._verify) and hasattr(
            self._verify, "dummy_verify"
        ):
            self._verify.dummy_verify()
        elif self._verify in {"auto", "werkzeug"}:
            check_password_hash(_werkzeug_dummy(), password)
        else:
            super().dummy_check(password)

    def _hasher(self) -> Callable[[str], str] | None:
        if self._hash is not None:
            return self._hash
        if _is_passlib_context(self._verify):
            context = self._verify
            return lambda password: str(context.hash(password))
        if self._verify in {"auto", "werkzeug"}:
            return generate_password_hash
        if self._verify == "bcrypt":
            return lambda password: hash_password(password, self._rounds)
        return None

    def rehash_if_needed(self, user: Any, password: str) -> None:
        new_hash: str | None = None
        if self._rehash is not None:
            new_hash = self._rehash(user, password)
        else:
            stored = self._stored(user)
            if _is_passlib_context(self._verify):
                needs_update = getattr(self._verify, "needs_update", None)
                if needs_update is not None and needs_update(stored):
                    new_hash = str(self._verify.hash(password))
            elif stored.startswith(_BCRYPT_PREFIXES) and needs_rehash(
                stored, self._rounds
            ):
                new_hash = hash_password(password, self._rounds)
        if new_hash is not None:
            self._write_hash(user, new_hash)

    def _write_hash(self, user: Any, new_hash: str) -> None:
        with self._use_session() as session:
            session.execute(
                update(self.model)
                .where(self._pk == getattr(user, self._pk.key))
                .values({self._password: new_hash})
                .execution_options(synchronize_session=False)
            )
            session.commit()

    def set_password(
        self, user: Any, password: str, conn: Connection | None = None
    ) -> None:
        hasher = self._hasher()
        if hasher is None:  # refused at start-up; kept for direct callers
            raise ConfigurationError("SQLAlchemyUserStore: pass hash=...")
        self._write_hash(user, hasher(password))

    def create(self, login: str, password: str, conn: Connection | None = None) -> Any:
        if self._create is None:  # refused at start-up; kept for direct callers
            raise ConfigurationError("SQLAlchemyUserStore: pass create=...")
        return self._create(login, password)

    def to_json(self, user: Any) -> dict[str, Any]:
        sub = self.sub_of(user)
        value = self.user_id(sub)
        return {
            "id": str(value) if isinstance(value, uuid.UUID) else value,
            self.login_field: self.login_of(user),
        }


#: ``session.info`` key of the users whose sessions end at commit.
_PENDING = "tokenauth_revoke_at_commit"
_werkzeug_dummies: list[str] = []


def _werkzeug_dummy() -> str:
    """A werkzeug hash of its default scheme, made on first need."""
    if not _werkzeug_dummies:
        _werkzeug_dummies.append(generate_password_hash("dummy for unknown logins"))
    return _werkzeug_dummies[0]


def _require_callable(model: str, option: str, value: Any) -> None:
    if not callable(value):
        raise ConfigurationError(
            f"SQLAlchemyUserStore({model}, {option}=...): {option} must be"
            f" callable, not {type(value).__name__}."
        )


def _key_kind(column: Any) -> tuple[str, int]:
    """The kind of ``sub`` a primary-key column makes and its limit (largest
    integer, or longest string)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    if python_type is uuid.UUID:
        return "uuid", 36
    if python_type is int:
        name = type(column.type).__name__
        return "int", _INTEGER_MAX.get(name, 2**63 - 1)
    length = getattr(column.type, "length", None) or USER_ID_LENGTH
    return "str", min(length, USER_ID_LENGTH)


def _is_unique(table: Any, column: Any) -> bool:
    """Whether ``column`` alone is unique in ``table``."""
    if column.primary_key and len(table.primary_key.columns) == 1:
        return True
    if column.unique:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and list(constraint.columns) == [
            column
        ]:
            return True
    return any(
        index.unique and list(index.columns) == [column] for index in table.indexes
    )
