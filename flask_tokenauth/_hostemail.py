"""The addresses of a host's users, for the mail flows of
:class:`~._sqlalchemy_store.SQLAlchemyUserStore`: where the address is (a
column of the model, or the host's own callables), how an address a client
typed finds its user, and where its verification is recorded (a boolean or
datetime column of the model, or our ``tokenauth_email_verifications``,
keyed by ``sub``: verified while the user's address is the one recorded).

Writes go in the caller's transaction when the model's rows are in our
database, else through the host's session (see :mod:`._hostsessions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.attributes import set_committed_value

from ._hostkeys import declared_case_insensitive, is_unique, require_callable
from ._validation import normalize_email
from .errors import ConfigurationError, EmailTaken, TokenAuthError
from .models import EmailVerification

if TYPE_CHECKING:
    from ._config import Settings
    from ._hostsessions import HostSessions

logger = logging.getLogger("flask_tokenauth")

_verifications = cast(Table, EmailVerification.__table__)

#: Where an address may be: a column name, or ``email(user) -> str | None``.
EmailSource = str | Callable[[Any], "str | None"] | None


class _Default:
    def __repr__(self) -> str:
        return "the column named email, if any"


#: ``email=`` not given: the model's column named ``email`` if it has one.
DEFAULT_EMAIL: Any = _Default()
#: The flows' keys with their setting, for a store that has no address.
_FLOW_KEYS = (
    ("TOKENAUTH_PASSWORD_RESET_ENABLED", "password_reset_enabled"),
    ("TOKENAUTH_CHANGE_EMAIL_ENABLED", "change_email_enabled"),
    ("TOKENAUTH_EMAIL_LOGIN_ENABLED", "email_login_enabled"),
    ("TOKENAUTH_REGISTER_ENUMERATION_SAFE", "register_enumeration_safe"),
)


class HostEmail:
    """The address options of one store, checked when it is made.

    :param owner: ``"SQLAlchemyUserStore(User"``, completed by each message.
    """

    def __init__(
        self,
        owner: str,
        model: type[Any],
        email: EmailSource,
        email_verified: str | None,
        find_by_email: Callable[[str], Any] | None,
        set_email: Callable[[Any, str], None] | None,
        sessions: HostSessions,
    ) -> None:
        self.owner = owner
        self.sessions = sessions
        self.model = model
        mapper = self.mapper
        columns = mapper.columns
        name = model.__name__
        if email is DEFAULT_EMAIL:
            email = "email" if "email" in columns else None
        self.key: str | None = None
        self.column: Any = None
        self.getter: Callable[[Any], str | None] | None = None
        if isinstance(email, str):
            if email not in columns:
                raise ConfigurationError(
                    f"{owner}, email={email!r}): {name} has no column {email!r};"
                    " pass the name of the column holding the address, or a"
                    " callable email(user) -> str | None with find_by_email=."
                )
            self.key, self.column = email, columns[email]
        elif email is not None:
            require_callable(owner, "email", email)
            self.getter = email
            if find_by_email is None:
                raise ConfigurationError(
                    f"{owner}, email=<callable>): pass find_by_email=lambda"
                    " email: ... too (the user whose address is this one, or"
                    " None): a callable address cannot be looked up in SQL."
                )
        for option, value in (
            ("find_by_email", find_by_email),
            ("set_email", set_email),
        ):
            if value is not None:
                require_callable(owner, option, value)
        self.find_hook = find_by_email
        self.set_hook = set_email
        #: Whether users have an address at all.
        self.has_email = self.key is not None or self.getter is not None
        self.verified_key = email_verified
        self.verified_kind: str | None = None
        if email_verified is not None:
            self.verified_kind = self._verified_kind(email_verified)
        if self.column is not None:
            self.case_insensitive = declared_case_insensitive(self.column)
            if self.find_hook is None and not is_unique(self.column.table, self.column):
                logger.warning(
                    "%s, email=%r): the column is not unique; an address that"
                    " two users share finds neither (no mail is sent for it)."
                    " Add unique=True (a unique index) if addresses are unique.",
                    owner,
                    self.key,
                )

    @property
    def mapper(self) -> Any:
        return sa_inspect(self.model)

    def _verified_kind(self, key: str) -> str:
        """``"bool"`` or ``"datetime"``, from the column's type."""
        if not self.has_email:
            raise ConfigurationError(
                f"{self.owner}, email_verified={key!r}): a verified address needs"
                " an address: pass email= too."
            )
        columns = self.mapper.columns
        if key not in columns:
            raise ConfigurationError(
                f"{self.owner}, email_verified={key!r}): {self.model.__name__} has"
                " no such column; pass a boolean or datetime column, or nothing"
                " (the library then records it in tokenauth_email_verifications)."
            )
        try:
            python_type = columns[key].type.python_type
        except NotImplementedError:
            python_type = None
        if python_type is bool:
            return "bool"
        if python_type is datetime:
            return "datetime"
        raise ConfigurationError(
            f"{self.owner}, email_verified={key!r}): the column must be a Boolean"
            f" or a DateTime, not {columns[key].type}."
        )

    def check(self, settings: Settings) -> None:
        """Refuse, at start-up, a flow switched on that this store cannot
        serve, naming what to pass."""
        if not self.has_email:
            wanted = [
                key
                for key, field in _FLOW_KEYS
                if getattr(settings, field)
                and field not in settings.flows_on_by_default
            ]
            if settings.email_verification != "off":
                wanted.insert(
                    0, f"TOKENAUTH_EMAIL_VERIFICATION={settings.email_verification!r}"
                )
            if wanted:
                raise ConfigurationError(
                    f"{', '.join(wanted)} needs the users' addresses, and"
                    f" {self.owner}) has none: pass email='<the column holding"
                    " the address>' (or a callable email= with find_by_email=),"
                    " or switch it off."
                )
        elif settings.change_email_enabled and self.key is None and not self.set_hook:
            raise ConfigurationError(
                f"{self.owner}, email=<callable>) cannot change an address for"
                " /change-email: pass set_email=lambda user, email: ... (which"
                " stores and commits it), or set TOKENAUTH_CHANGE_EMAIL_ENABLED ="
                " False."
            )

    # -- reading -----------------------------------------------------------

    def raw(self, user: Any) -> Any:
        """The address as the user holds it."""
        if self.getter is not None:
            return self.getter(user)
        return None if self.key is None else getattr(user, self.key)

    def email_of(self, user: Any) -> str | None:
        """The user's address, normalized; ``None`` without one (or with a
        stored value that is no address: nothing can be mailed to it)."""
        value = self.raw(user)
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return normalize_email(value)
        except TokenAuthError:
            return None

    def find(self, session: OrmSession | None, email: str, exclude: Any = None) -> Any:
        """The user whose address is ``email`` (normalized), or ``None``.

        Stored addresses are compared as they are, then (on a column that
        compares case-sensitively) lower-cased, so that ``Alice@Example.com``
        stored finds ``alice@example.com`` typed: a spelling stored exactly
        wins, and an address two rows share either way finds neither
        (logged).  ``exclude``: a primary-key value left out (the user
        whose address changes).
        """
        if self.find_hook is not None:
            found = self.find_hook(email)
            if found is None or exclude is None:
                return found
            return None if self._pk_of(found) == exclude else found
        assert session is not None
        column = self.column
        pk = self.mapper.primary_key[0]
        for clause in (column == email, func.lower(column) == email):
            query = select(self.model).where(clause)
            if exclude is not None:
                query = query.where(pk != exclude)
            rows = session.scalars(query.limit(2)).all()
            if len(rows) == 1:
                return rows[0]
            if rows:
                logger.warning(
                    "%s, email=%r): two users have one address (as compared"
                    " case-insensitively); neither is found by it.",
                    self.owner,
                    self.key,
                )
                return None
            if self.case_insensitive:
                break  # the column itself already compared every spelling
        return None

    def _pk_of(self, user: Any) -> Any:
        pk = self.mapper.primary_key[0]
        return getattr(user, self.mapper.get_property_by_column(pk).key)

    def is_verified(self, user: Any, sub: str) -> bool:
        """Whether the user's current address is verified (no address: no)."""
        current = self.email_of(user)
        if current is None:
            return False
        if self.verified_key is not None:
            value = getattr(user, self.verified_key)
            return bool(value) if self.verified_kind == "bool" else value is not None
        with self.sessions.db().begin() as conn:
            recorded = conn.execute(
                select(_verifications.c.email).where(_verifications.c.user_id == sub)
            ).scalar()
        return recorded == current

    # -- writing -----------------------------------------------------------

    def set_verified(
        self,
        user: Any,
        sub: str,
        email: str,
        conn: Connection | None,
    ) -> None:
        """Record that ``email`` is verified, if it is still the user's
        address (a link to an address since changed verifies nothing)."""
        if self.email_of(user) != email:
            return
        if self.verified_key is None:
            self._record(sub, email, conn)
            return
        with self.sessions.writing(conn) as session:
            row = session.get(self.model, self._pk_of(user))
            if row is None or self.email_of(row) != email:
                return
            setattr(row, self.verified_key, self._verified_value(True))
        set_committed_value(
            user, self.verified_key, getattr(row, self.verified_key, None)
        )

    def set(
        self,
        user: Any,
        sub: str,
        email: str,
        conn: Connection | None,
    ) -> None:
        """Change the user's address to ``email``, verified.

        :raises EmailTaken: another user has it (looked up as :meth:`find`
            does, after a lock on the address on PostgreSQL so that two
            changes to one address cannot both pass; the column's unique
            constraint, if any, refuses the rest).
        """
        key = self._pk_of(user)
        if self.set_hook is not None:
            if self.find(None, email, exclude=key) is not None:
                raise EmailTaken()
            try:
                self.set_hook(user, email)
            except IntegrityError as e:
                raise EmailTaken() from e
            self._record_verified(user, sub, email, conn)
            return
        assert self.key is not None
        try:
            with self.sessions.writing(conn) as session:
                self._lock(session, email)
                if self.find(session, email, exclude=key) is not None:
                    raise EmailTaken()
                row = session.get(self.model, key)
                if row is None:
                    return
                setattr(row, self.key, email)
                if self.verified_key is not None:
                    setattr(row, self.verified_key, self._verified_value(True))
                session.flush()
        except IntegrityError as e:
            raise EmailTaken() from e
        set_committed_value(user, self.key, email)
        if self.verified_key is not None:
            set_committed_value(
                user, self.verified_key, getattr(row, self.verified_key)
            )
        else:
            self._record(sub, email, conn)

    def _lock(self, session: OrmSession, email: str) -> None:
        """On PostgreSQL, until the transaction ends: a lock on the address,
        so that a second change to it waits, then finds it taken."""
        if session.get_bind(mapper=self.mapper).dialect.name == "postgresql":
            key = func.hashtext("tokenauth-email:" + email)
            session.execute(select(func.pg_advisory_xact_lock(key)))

    def _record_verified(
        self,
        user: Any,
        sub: str,
        email: str,
        conn: Connection | None,
    ) -> None:
        """After the host's ``set_email`` hook: the new address verified."""
        if self.verified_key is None:
            self._record(sub, email, conn)
            return
        with self.sessions.writing(conn) as session:
            row = session.get(self.model, self._pk_of(user))
            if row is not None:
                setattr(row, self.verified_key, self._verified_value(True))

    def _verified_value(self, verified: bool) -> Any:
        if self.verified_kind == "bool":
            return verified
        if not verified:
            return None
        column = self.mapper.columns[self.verified_key]
        now = datetime.now(timezone.utc)
        # A naive column holds UTC without its zone (as datetime.utcnow()).
        return (
            now if getattr(column.type, "timezone", False) else now.replace(tzinfo=None)
        )

    def _record(self, sub: str, email: str, conn: Connection | None) -> None:
        """Our record of the verified address: one upsert, so that two
        verifications at once never collide on the key."""
        if conn is None:
            with self.sessions.db().begin() as own:
                self._record(sub, email, own)
            return
        insert = sqlite_insert
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            insert = postgresql_insert  # type: ignore[assignment]
        statement = insert(_verifications).values(
            user_id=sub, email=email, verified_at=datetime.now(timezone.utc)
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[_verifications.c.user_id],
                set_={
                    "email": statement.excluded.email,
                    "verified_at": statement.excluded.verified_at,
                },
            )
        )
