"""The host application's own SQLAlchemy model as the user store; see
:mod:`flask_tokenauth.userstore`."""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session as OrmSession

from . import _bulk_revocation as _bulk
from . import _hostpasswords as hostpasswords
from ._config import Settings
from ._db import Database
from ._hostemail import DEFAULT_EMAIL, EmailSource, HostEmail
from ._hostkeys import (
    PrimaryKey,
    check_model,
    require_callable,
)
from ._hostlogin import HostLogin
from ._hostsessions import HostSessions
from ._state import get_state
from ._store import UserStore
from .errors import ConfigurationError, InternalError

logger = logging.getLogger("flask_tokenauth")


#: What a verifier may be: a scheme name, a passlib ``CryptContext`` (any
#: object with ``verify(password, hash)`` and ``hash(password)``), or a
#: callable ``verify(user, password) -> bool``.
Verifier = str | Callable[[Any, str], bool] | Any


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
    :param verify: how to check a password: ``"auto"`` (the default:
        bcrypt ``$2a$``/``$2b$``/``$2y$`` as Flask-Bcrypt writes them,
        werkzeug's ``scrypt:``/``pbkdf2:``, and with passlib installed its
        pbkdf2, sha-crypt, scrypt and argon2 formats, told apart by their
        prefix; ``str`` or ``bytes``, see :mod:`._hostpasswords`),
        ``"bcrypt"``, ``"werkzeug"``, a passlib ``CryptContext``, or a
        callable ``verify(user, password) -> bool``.  A hash in a format
        none of these reads is a wrong password, logged once at WARNING.
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
        case).  Needed on a case-insensitive column (``COLLATE NOCASE``,
        ``citext``), which logs a warning without it.  The wrong-password
        limits count per matched user whatever the spelling.
    :param dummy_hash: a hash checked for an unknown login so that it takes
        as long as a wrong password.  By default (unless ``verify`` is a
        callable) one of the table's own hashes of the costliest scheme and
        cost seen (sampled at the first login, then every checked hash; see
        :mod:`._hostpasswords`); before any, a werkzeug hash for
        ``"auto"``/``"werkzeug"``, passlib's ``dummy_verify`` for a context,
        our bcrypt dummy at ``TOKENAUTH_BCRYPT_ROUNDS`` otherwise.
    :param email: where the address is, for the mail flows (docs/mail.md, "Host
        users' addresses"): a column name (by default the column named
        ``email``, if any), ``email(user) -> str | None`` with
        ``find_by_email``, or ``None``: no address, every mail endpoint
        answers ``404``.
    :param email_verified: a ``Boolean`` or ``DateTime`` column set when the
        address is verified; by default ``tokenauth_email_verifications``
        records the verified address by ``sub``.
    :param find_by_email: ``find_by_email(email) -> user | None`` (the
        address normalized); by default a query on the ``email`` column.
    :param set_email: ``set_email(user, email) -> None`` that stores and
        commits a new address, for a callable ``email`` and ``/change-email``.
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
        email: EmailSource = DEFAULT_EMAIL,
        email_verified: str | None = None,
        find_by_email: Callable[[str], Any] | None = None,
        set_email: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.model = model
        self.login_field = login
        self._password = password
        self.identity_attribute = password  # sessions bound to its hash
        name = getattr(model, "__name__", repr(model))
        self._passwords = hostpasswords.HostPasswords(
            f"SQLAlchemyUserStore({name})", password, verify, hash, rehash, dummy_hash
        )
        self._is_active = is_active
        self._session = session
        self._create = create
        self._normalize = normalize
        self._validate()
        self._sessions = HostSessions(model, self._session, lambda: self._db)
        self._email = HostEmail(
            f"SQLAlchemyUserStore({name}",
            model,
            email,
            email_verified,
            find_by_email,
            set_email,
            self._sessions,
        )
        self.has_email = self._email.has_email

    # -- start-up ------------------------------------------------------------

    def _validate(self) -> None:
        """Refuse a setup that cannot work, naming what to pass."""
        name = getattr(self.model, "__name__", repr(self.model))
        owner = f"SQLAlchemyUserStore({name}"
        if self._is_active is not None and not isinstance(self._is_active, str):
            require_callable(owner, "is_active", self._is_active)
        self._pk, self._login_column = check_model(
            owner, self.model, self.login_field, self._password, self._is_active
        )
        self._key = PrimaryKey(self._pk)
        self._passwords.validate(owner)
        for option, value in (
            ("session", self._session),
            ("create", self._create),
            ("normalize", self._normalize),
        ):
            if value is not None:
                require_callable(owner, option, value)
        self._login = HostLogin(
            owner, self.login_field, self._login_column, self._normalize
        )
        if self._session is None:
            fsa = getattr(self.model, "__fsa__", None)  # Flask-SQLAlchemy 3
            if fsa is not None:
                self._session = lambda: fsa.session
        # The apps this store serves; weak: an app dropped (a test suite
        # makes many) is not kept alive.
        self._apps: weakref.WeakSet[Any] = weakref.WeakSet()
        self._watched = False

    def bind(self, settings: Settings, db: Database) -> None:
        # Nothing of the app is kept: one store may serve several apps (see
        # _db), so this only checks that it can serve this one.
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
        self._email.check(settings)

    @property
    def _db(self) -> Database:
        """The current app's database: a plain declarative model without
        ``session=`` is queried there."""
        return get_state().db

    def attach(self, app: Any) -> None:
        """Called by :meth:`~flask_tokenauth.TokenAuth.init_app` once the
        app's state exists: from now on, a user deleted through the ORM (or
        made inactive, with an ``is_active`` column) loses its sessions on
        that app.

        The revocation runs once the host's transaction has committed, in a
        transaction of ours (told to Redis too), so that with every
        revocation store the user's access tokens stop at their next
        request.  A deletion made outside the ORM (raw SQL) is not seen
        here: the next refresh and :data:`~flask_tokenauth.current_user`
        find the user gone, and the user's access tokens otherwise live
        until they expire.
        """
        self._apps.add(app)
        if not self._watched:  # once per store, whatever the apps
            self._watched = True
            _bulk.watch(
                self.model,
                to_sub=self.to_sub,
                revoke=self._revoke,
                active=self._is_active if isinstance(self._is_active, str) else None,
                objects=True,
                forget=self._forget,
            )

    def _revoke(self, subs: list[str]) -> list[str]:
        """End every session of ``subs`` on every app this store serves
        (errors logged, not raised: see :func:`._bulk_revocation.revoke_on_apps`)."""
        return _bulk.revoke_on_apps(self._apps, subs)

    def _forget(self, subs: list[str]) -> None:
        """Remove the second factors of deleted users (a host's ids may be
        given again: see :func:`._bulk_revocation.forget_on_apps`)."""
        _bulk.forget_on_apps(self._apps, subs)

    # -- ids ---------------------------------------------------------------------

    def is_subject(self, sub: str) -> bool:
        return self._key.is_subject(sub)

    def canonical_sub(self, value: Any) -> str:
        return self._key.canonical(value)

    def user_id(self, sub: str) -> Any:
        return self._key.user_id(sub)

    def sub_of(self, user: Any) -> str:
        return self._key.canonical(getattr(user, self._pk.key))

    # -- lookups -------------------------------------------------------------------

    def normalize_login(self, value: str) -> str:
        return self._login.normalized(value)

    def find_by_login(self, login: str) -> Any | None:
        column = getattr(self.model, self.login_field)
        with self._sessions.use() as session:
            if not self._passwords.dummies.sampled:
                self._first_login(session)
            return session.scalars(select(self.model).where(column == login)).first()

    def _first_login(self, session: OrmSession) -> None:
        """Learn from the table what the model may not say: the schemes of
        its hashes (for the unknown logins' dummy) and whether its login
        column compares case-insensitively.  Once per store; at the first
        login rather than at start-up, when the host's table may not exist
        yet."""
        column = sa_inspect(self.model).columns[self._password]
        hashes: list[Any] = []
        if self._passwords.reads_hashes:
            newest = select(column).where(column.is_not(None)).order_by(self._pk.desc())
            hashes = list(session.scalars(newest.limit(20)))
        self._passwords.sample(hashes)
        bind = session.get_bind(mapper=sa_inspect(self.model))
        self._login.learn(session, bind.dialect.name)

    def login_key(self, login: str) -> str:
        return self._login.key(login)

    def get(self, sub: str) -> Any | None:
        if not self.is_subject(sub):
            return None
        with self._sessions.use() as session:
            return session.get(self.model, self.user_id(sub))

    def login_of(self, user: Any) -> str:
        return str(getattr(user, self.login_field))

    def status_clause(
        self, sub: ColumnElement[str], db: Database
    ) -> ColumnElement[Any] | None:
        """See :meth:`._hostsessions.HostSessions.status_clause`."""
        return self._sessions.status_clause(sub, db, self._key, self._is_active)

    def is_active(self, user: Any) -> bool:
        if self._is_active is None:
            return True
        if isinstance(self._is_active, str):
            return bool(getattr(user, self._is_active))
        return bool(self._is_active(user))

    # -- passwords -----------------------------------------------------------------

    def verify_password(self, user: Any, password: str) -> bool:
        try:
            return self._passwords.verify_user(user, password)
        except Exception as e:
            # The host's verifier (or its hash) failed: a 500 with its
            # traceback in the log, never a pass.
            logger.exception("tokenauth: the user store's password check raised")
            raise InternalError() from e

    def dummy_check(self, password: str) -> None:
        self._passwords.dummy_check(password)

    def _hasher(self) -> Callable[[str], str] | None:
        return self._passwords.hasher()

    def rehash_if_needed(self, user: Any, password: str) -> None:
        new_hash = self._passwords.new_hash(user, password)
        if new_hash is not None:
            self._write_hash(user, new_hash)

    def _write_hash(
        self, user: Any, new_hash: str, conn: Connection | None = None
    ) -> None:
        # In ``conn`` (the caller's transaction) if the rows are in our
        # database: a reset link is spent with the new hash or not at all.
        with self._sessions.writing(conn) as session:
            session.execute(
                update(self.model)
                .where(self._pk == getattr(user, self._pk.key))
                .values({self._password: self._as_stored(new_hash)})
                .execution_options(synchronize_session=False)
            )

    def _as_stored(self, new_hash: str) -> str | bytes:
        """A hash as the column holds it: ``bytes`` in a ``LargeBinary``
        column (Flask-Bcrypt's), else text."""
        column = sa_inspect(self.model).columns[self._password]
        try:
            binary = column.type.python_type is bytes
        except NotImplementedError:
            binary = False
        return new_hash.encode("ascii") if binary else new_hash

    def set_password(
        self, user: Any, password: str, conn: Connection | None = None
    ) -> None:
        hasher = self._hasher()
        if hasher is None:  # refused at start-up; kept for direct callers
            raise ConfigurationError("SQLAlchemyUserStore: pass hash=...")
        self._write_hash(user, hasher(password), conn)

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

    # -- addresses (see _hostemail) ----------------------------------------------

    def email_of(self, user: Any) -> str | None:
        return self._email.email_of(user)

    def find_by_email(self, email: str) -> Any | None:
        if not self.has_email:
            return None
        if self._email.find_hook is not None:
            return self._email.find(None, email)
        with self._sessions.use() as session:
            return self._email.find(session, email)

    def is_email_verified(self, user: Any) -> bool:
        return self.has_email and self._email.is_verified(user, self.sub_of(user))

    def set_email_verified(
        self, user: Any, email: str, conn: Connection | None = None
    ) -> None:
        self._email.set_verified(user, self.sub_of(user), email, conn)

    def set_email(self, user: Any, email: str, conn: Connection | None = None) -> None:
        self._email.set(user, self.sub_of(user), email, conn)
