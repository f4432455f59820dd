"""The user-store interface and the built-in store (the library's own
``tokenauth_users`` table); see :mod:`flask_tokenauth.userstore`."""

from __future__ import annotations

import numbers
import uuid
from abc import ABC, abstractmethod
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
)

from ._config import Settings
from ._db import Database
from ._passwords import dummy_hash, verify_password
from ._state import get_state
from ._validation import normalize_email
from .models import User

_users = cast(Table, User.__table__)
_USER_EXISTS_POSTGRESQL = f"SELECT id FROM {_users.name} WHERE id = %(id)s"
_USER_HASH_POSTGRESQL = f"SELECT password_hash FROM {_users.name} WHERE id = %(id)s"
#: :func:`~._access.is_user_id` as a PostgreSQL pattern, but for the bound
#: (a larger id of ten digits matches no row): the ``sub`` of a session is
#: cast to an integer only if it is one, so that a session of another id
#: scheme (an app that changed stores) reads as "no such user", not an error.
_USER_ID_PATTERN = "^[1-9][0-9]{0,9}$"


class UserStore(ABC):
    """What the endpoints need to know about users.

    :attr login_field: the JSON field of ``/login`` and ``/register`` that
        holds the login identifier (``"email"``, ``"username"``, ...).
    """

    login_field: str = "email"
    #: The attribute (a column, for a SQL store) of a user whose value a
    #: session is bound to, by a keyed fingerprint (see :mod:`._identity`):
    #: a session whose user's value changed since it started (a password
    #: changed, a table reset gave its id to someone else) ends.  ``None``:
    #: sessions are bound to the id only.
    identity_attribute: str | None = None

    def bind(self, settings: Settings, db: Database) -> None:  # noqa: B027
        """Called by :meth:`~flask_tokenauth.TokenAuth.init_app`, with the validated
        settings and our database; raise
        :class:`~flask_tokenauth.errors.ConfigurationError` for a setup that
        cannot work."""

    def attach(self, app: Any) -> None:  # noqa: B027
        """Called by :meth:`~flask_tokenauth.TokenAuth.init_app` once the app's state is
        set up."""

    @abstractmethod
    def normalize_login(self, value: str) -> str:
        """The canonical form of a login identifier as a client typed it
        (the key of the wrong-password limits too).

        :raises TokenAuthError: a 400 for a malformed identifier.
        """

    @abstractmethod
    def find_by_login(self, login: str) -> Any | None:
        """The user with this (normalized) login identifier, or ``None``."""

    @abstractmethod
    def get(self, sub: str) -> Any | None:
        """The user named by ``sub``, or ``None``."""

    @abstractmethod
    def sub_of(self, user: Any) -> str:
        """The canonical ``sub`` of ``user``."""

    @abstractmethod
    def is_subject(self, sub: str) -> bool:
        """Whether ``sub`` is in canonical form for this store's ids: access
        tokens naming anything else are refused before any lookup."""

    @abstractmethod
    def user_id(self, sub: str) -> Any:
        """The user's id in its own type (an ``int``, a ``UUID``, ...), as
        the signals and JSON bodies carry it."""

    @abstractmethod
    def login_of(self, user: Any) -> str:
        """The user's login identifier (normalized)."""

    @abstractmethod
    def verify_password(self, user: Any, password: str) -> bool:
        """Whether ``password`` is ``user``'s."""

    def dummy_check(self, password: str) -> None:
        """Spend the time of a password check, for an unknown login: one
        bcrypt check at the current app's ``TOKENAUTH_BCRYPT_ROUNDS``."""
        rounds = get_state().settings.bcrypt_rounds
        verify_password(password, dummy_hash(rounds), rounds=rounds)

    def rehash_if_needed(self, user: Any, password: str) -> None:  # noqa: B027
        """After a successful login: store a new hash of ``password`` if the
        stored one is of an old scheme or cost.  Nothing by default."""

    def is_active(self, user: Any) -> bool:
        """Whether ``user`` may log in and keep its sessions."""
        return True

    def status(self, sub: str) -> bool | None:
        """What a refresh asks after its rotation: ``None`` if there is no
        user ``sub`` (any more), else whether it is active.  One lookup; a
        store whose users are ours answers it in one statement."""
        user = self.get(sub)
        return None if user is None else self.is_active(user)

    def status_and_identity(self, sub: str) -> tuple[bool | None, Any]:
        """:meth:`status` and the user's :attr:`identity_attribute` value
        (``None`` without one), for a refresh that cannot read them in its
        rotation statement."""
        if self.identity_attribute is None:
            return self.status(sub), None
        user = self.get(sub)
        if user is None:
            return None, None
        return self.is_active(user), getattr(user, self.identity_attribute, None)

    def status_clause(
        self, sub: ColumnElement[str], db: Database
    ) -> ColumnElement[Any] | None:
        """:meth:`status` as SQL on PostgreSQL, for a refresh to read in its
        rotation statement (one round trip rather than two): an expression
        over ``sub`` (a column of our tables that holds a ``sub``) that is
        NULL when there is no such user, else whether the user is active.

        ``None`` (the default) if the store cannot say it in SQL, or if its
        users are not in ``db`` (our database): each refresh then calls
        :meth:`status` after the rotation.  Asked once per app, at its first
        refresh on PostgreSQL (in an app context).
        """
        return None

    @abstractmethod
    def create(self, login: str, password: str, conn: Connection | None = None) -> Any:
        """Create a user for ``/register``; returns it.  ``conn`` is our
        transaction, which also starts the user's first session: a store
        whose users are ours writes in it, so that a failure leaves no
        user without a session.

        :raises EmailTaken: the login identifier is taken.
        """

    @abstractmethod
    def set_password(
        self, user: Any, password: str, conn: Connection | None = None
    ) -> None:
        """Set a new password (already checked against the policy).
        ``conn`` is our transaction, for a store whose users are ours."""

    def to_json(self, user: Any) -> dict[str, Any]:
        """The ``user`` object of the login and register answers."""
        sub = self.sub_of(user)
        return {"id": self.user_id(sub), self.login_field: self.login_of(user)}

    def canonical_sub(self, value: Any) -> str:
        """The ``sub`` of an id in its own type or as a string.

        By default an ``int`` or a string :meth:`is_subject` accepts as it
        is: ``"01"`` or ``" 1"`` is refused rather than guessed, so that a
        caller's typo never revokes nothing in silence (nor someone else).

        :raises ValueError: ``value`` is no id of this store.
        """
        if (
            isinstance(value, (str, int))
            and not isinstance(value, bool)
            and self.is_subject(str(value))
        ):
            return str(value)
        raise ValueError(f"{value!r} is not a user id of {type(self).__name__}")

    def to_sub(self, user_or_id: Any) -> str:
        """``sub`` of a user object or of an id in its own type or as a
        string (what :func:`~flask_tokenauth.revoke_user_sessions` takes).

        :raises ValueError: an id that is not one (see :meth:`canonical_sub`).
        """
        if isinstance(user_or_id, (str, numbers.Number, uuid.UUID)):
            return self.canonical_sub(user_or_id)  # 1.0 too: refused
        return self.sub_of(user_or_id)

    # -- Addresses, for the mail flows (see "Account lifecycle") -------------

    #: Whether users have an address the flows can mail.  ``False``: every
    #: mail endpoint answers ``404`` and verification must stay ``off``.
    has_email: bool = True

    def normalize_email(self, value: str) -> str:
        """The canonical form of an address a client typed.

        :raises TokenAuthError: a 400 for a malformed address.
        """
        return normalize_email(value)

    def email_of(self, user: Any) -> str | None:
        """The user's address (normalized), or ``None`` if it has none."""
        return None

    def find_by_email(self, email: str) -> Any | None:
        """The user whose address is ``email`` (normalized), or ``None``."""
        return None

    def is_email_verified(self, user: Any) -> bool:
        """Whether the user's current address is verified."""
        return False

    def set_email_verified(
        self, user: Any, email: str, conn: Connection | None = None
    ) -> None:
        """Record that ``email`` (the user's current address) is verified.
        ``conn`` is our transaction, for a store whose records are ours."""
        raise NotImplementedError

    def set_email(self, user: Any, email: str, conn: Connection | None = None) -> None:
        """Change the user's address to ``email`` (normalized, verified by
        the flow that calls this: the new address is verified too).

        :raises EmailTaken: another account has it.
        """
        raise NotImplementedError

    def login_key(self, login: str) -> str:
        """An unknown (normalized) login as the wrong-password counters name
        it: two logins that the store's lookup cannot tell apart must have
        one key, or the limits would tell which logins exist.  By default
        the login itself."""
        return login
