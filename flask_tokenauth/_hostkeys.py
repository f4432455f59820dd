"""What the columns of a host's user model mean to us: the primary key that
becomes ``sub`` (its canonical form, in Python and in SQL), and whether the
login column is unique and compares case-insensitively.

Kept apart from :mod:`._sqlalchemy_store` so that the one place that knows
how an id is spelled is small enough to read whole: every public function
that takes an id (``revoke_user_sessions``, ``login_user``, the test
helpers) goes through :meth:`PrimaryKey.canonical`, so ``"01"`` or an
upper-case UUID is either the user's one ``sub`` or a ``ValueError``, never
a silent miss.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    ColumnElement,
    Enum,
    String,
    UniqueConstraint,
    Uuid,
    and_,
    case,
    func,
    or_,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Session as OrmSession

from .errors import ConfigurationError
from .models import USER_ID_LENGTH

#: The largest value of each integer column type (ids are never negative).
_INTEGER_MAX = {"SmallInteger": 2**15 - 1, "Integer": 2**31 - 1}
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
#: ``_DECIMAL`` as a PostgreSQL pattern, up to the digits of a BIGINT.
_DECIMAL_PATTERN = "^(0|[1-9][0-9]{0,18})$"
_BIGINT_MAX = str(2**63 - 1)
#: The canonical (lowercase) form of a UUID, as :meth:`is_subject` wants it.
_UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
#: Collations that compare letters case-insensitively: SQLite's ``NOCASE``,
#: MySQL's ``*_ci`` (``utf8mb4_general_ci``, ``utf8mb4_0900_ai_ci``).
_CI_COLLATION = re.compile(r"nocase|_ci(_|$)", re.IGNORECASE)
#: Column types that compare case-insensitively (PostgreSQL's ``citext``,
#: as SQLAlchemy's ``CITEXT`` and sqlalchemy-citext's ``CIText`` name it).
_CI_TYPES = {"citext"}


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in {"Cc", "Cs"} for c in text)


class PrimaryKey:
    """The host model's single-column primary key as the ``sub`` of tokens:
    an integer as its decimal string, a UUID in its canonical lowercase
    form, a string as it is."""

    def __init__(self, column: Any) -> None:
        self.column = column
        self.kind, self.limit = _key_kind(column)

    def is_subject(self, sub: str) -> bool:
        """Whether ``sub`` is the canonical form of a possible key."""
        if self.kind == "int":
            return _DECIMAL.fullmatch(sub) is not None and int(sub) <= self.limit
        if self.kind == "uuid":
            try:
                return str(uuid.UUID(sub)) == sub
            except ValueError:
                return False
        return 0 < len(sub) <= self.limit and not _has_control(sub)

    def canonical(self, value: Any) -> str:
        """The ``sub`` of an id given in its own type or as a string.

        Integer keys take an ``int`` or a canonical decimal string (``"01"``,
        ``" 1"`` and ``"1.0"`` are refused, not guessed: each could be a
        typo for another user); UUID keys take a :class:`uuid.UUID` or any
        form :class:`uuid.UUID` parses (upper case, braces, no hyphens).

        :raises ValueError: ``value`` is no id of this key.
        """
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a user id")
        if self.kind == "uuid" and isinstance(value, str):
            try:
                value = uuid.UUID(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a UUID user id") from None
        accepted: tuple[type, ...] = {
            "int": (int, str),
            "uuid": (uuid.UUID,),
            "str": (str, int, uuid.UUID),
        }[self.kind]
        if isinstance(value, accepted) and self.is_subject(str(value)):
            return str(value)
        raise ValueError(f"{value!r} is not a user id of this user store ({self.kind})")

    def user_id(self, sub: str) -> Any:
        """``sub`` in the key's own Python type."""
        if self.kind == "int":
            return int(sub)
        if self.kind == "uuid":
            return uuid.UUID(sub)
        return sub

    def sql(self, sub: ColumnElement[str]) -> ColumnElement[Any] | None:
        """``sub`` as a value of the key's type, NULL where it is not one
        (no row then matches, as ``get`` finds none for a ``sub`` that
        :meth:`is_subject` refuses); ``None`` for a key type this is not sure
        to compare as the ORM would."""
        column_type = self.column.type
        if self.kind == "int":
            fits = and_(
                sub.regexp_match(_DECIMAL_PATTERN),
                or_(
                    func.length(sub) < len(_BIGINT_MAX),
                    sub.collate("C") <= _BIGINT_MAX,  # digits: "C" compares them
                ),
            )
            return case((fits, sql_cast(sub, BigInteger)))
        if self.kind == "uuid":
            if not isinstance(column_type, Uuid) or not column_type.native_uuid:
                return None
            return case((sub.regexp_match(_UUID_PATTERN), sql_cast(sub, Uuid())))
        if isinstance(column_type, String) and not isinstance(
            column_type, (CHAR, Enum)
        ):
            return sub
        return None


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


def require_callable(owner: str, option: str, value: Any) -> None:
    """Refuse a non-callable option; ``owner`` is ``"SQLAlchemyUserStore(User"``."""
    if not callable(value):
        raise ConfigurationError(
            f"{owner}, {option}=...): {option} must be callable, not"
            f" {type(value).__name__}."
        )


def check_model(
    owner: str, model: Any, login: str, password: str, is_active: Any
) -> tuple[Any, Any]:
    """The primary-key and login columns of ``model``, after refusing a
    model that cannot serve (not mapped, a missing column, a composite key,
    a login that is not unique), naming what to pass.

    :param owner: ``"SQLAlchemyUserStore(User"``, completed by each message.
    """
    name = getattr(model, "__name__", repr(model))
    try:
        mapper = sa_inspect(model)
    except NoInspectionAvailable:
        raise ConfigurationError(
            f"{owner}): pass a mapped SQLAlchemy model class (db.Model or a"
            " declarative class)."
        ) from None
    columns = mapper.columns
    for option, column in (("login", login), ("password", password)):
        if column not in columns:
            raise ConfigurationError(
                f"{owner}, {option}={column!r}): {name} has no column {column!r};"
                f" set {option}= to one of {', '.join(sorted(columns.keys()))}."
            )
    if isinstance(is_active, str) and is_active not in columns:
        raise ConfigurationError(
            f"{owner}, is_active={is_active!r}): {name} has no such column; pass"
            " a column name or a callable."
        )
    primary_key = mapper.primary_key
    if len(primary_key) != 1:
        raise ConfigurationError(
            f"{owner}): the model needs a single-column primary key (it has"
            f" {len(primary_key)}); it becomes the sub of the user's tokens."
        )
    login_column = columns[login]
    if not is_unique(mapper.local_table, login_column):
        raise ConfigurationError(
            f"{owner}, login={login!r}): the login column must be unique"
            " (unique=True, a unique index or constraint): two users with one"
            " login could not be told apart."
        )
    return primary_key[0], login_column


def is_unique(table: Any, column: Any) -> bool:
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


def declared_case_insensitive(column: Any) -> bool:
    """Whether the model declares ``column`` as comparing case-insensitively
    (``String(collation="NOCASE")``, ``CITEXT``, a ``*_ci`` collation)."""
    column_type = column.type
    if type(column_type).__name__.lower() in _CI_TYPES:
        return True
    collation = getattr(column_type, "collation", None)
    return bool(collation and _CI_COLLATION.search(collation))


def compares_case_insensitively(session: OrmSession, column: Any) -> bool:
    """Whether the database finds a stored login by another spelling of it.

    Asked of the database rather than the model, because a table made by
    the host's own SQL (``schema.sql``, a migration) can be ``COLLATE
    NOCASE`` or ``citext`` while the model says ``String``: one stored
    login with a cased letter is looked up with its case swapped.  ``False``
    when no stored login has a cased letter (nothing to tell yet).
    """
    for (login,) in session.execute(select(column).limit(50)):
        if isinstance(login, str) and login.swapcase() != login:
            # The stored spelling itself, not a second user spelled so.
            found = session.scalars(select(column).where(column == login.swapcase()))
            return login in found.all()
    return False
