"""Sessions bound to the identity they were issued to, not only to a user id.

An app that drops and recreates its user table (Flask's tutorial
``flask init-db``), or restarts its ids, gives the next user an id that
old sessions still name: without more, the old refresh cookie and access
token would act as that new user.  So each session records a keyed
fingerprint of the user's *identity value* when it starts — by default the
stored password hash, as Django's session auth hash does — and:

* a refresh compares it with the user's current value (read in the
  rotation statement itself on PostgreSQL: no extra round trip) and, if
  they differ, revokes the session as if the user were gone;
* the session's access tokens carry it (claim :data:`CLAIM`), and
  :data:`~flask_tokenauth.current_user` compares it with the user it loads
  (``USER_NOT_FOUND`` if they differ).  A view that never loads the user
  does no database work, and so cannot tell: such an access token lives
  until it expires, as a deleted user's does.

Why the password hash rather than a ``uniquifier`` column (Flask-Security):
it needs no column in the host's table and no migration of the host's data,
it works for the built-in table and every host model as it is, and it is
different for every user ever created (random salt).  Its consequence, the
same as Django's: a password change made by the app itself (a reset form,
an admin tool, a hash upgrade at login) ends the user's other sessions at
their next refresh or ``current_user``; ``/password`` binds the session it
starts to the new hash.

The fingerprint is HMAC-SHA256 under the refresh secret (the stdlib
``hmac``), truncated to 128 bits: a database dump or an access token alone
tells nothing about the hash.  Sessions started before this existed have no
fingerprint (``NULL``): they are bound at their next refresh, to the user
who holds the id then.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    literal,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect

from .models import Session

if TYPE_CHECKING:
    from ._db import Database
    from ._state import TokenAuthState
    from ._store import UserStore

#: The access-token claim that carries the session's fingerprint.
CLAIM = "idf"
#: Hex characters kept of the HMAC (128 bits).
LENGTH = 32
_CONTEXT = b"flask_tokenauth session identity\x00"
_sessions = cast(Table, Session.__table__)


def fingerprint(secret: bytes, sub: str, value: Any) -> str:
    """The keyed fingerprint of user ``sub`` whose identity value is
    ``value`` (``str``, ``bytes``, ``memoryview`` or ``None``)."""
    if value is None:
        data = b""
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        data = str(value).encode()
    message = _CONTEXT + sub.encode() + b"\x00" + data
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:LENGTH]


def matches(bound: str | None, current: str | None) -> bool:
    """Whether a session bound to ``bound`` may act as the user whose
    fingerprint is ``current`` now; an unbound session (``None``, or a
    store without an identity value) is not refused here."""
    if bound is None or current is None:
        return True
    return hmac.compare_digest(bound, current)


def of_user(state: TokenAuthState, user: Any) -> str | None:
    """The fingerprint of a user object, ``None`` if the store binds
    nothing (or the object lacks the value: a custom loader's)."""
    store = state.user_store
    attribute = store.identity_attribute
    if attribute is None or not hasattr(user, attribute):
        return None
    sub = store.sub_of(user)
    return fingerprint(state.settings.refresh_secret, sub, getattr(user, attribute))


def of_sub(state: TokenAuthState, sub: str, value: Any) -> str | None:
    """The fingerprint of ``sub`` with identity value ``value`` as the
    store read it, ``None`` if the store binds nothing."""
    if state.user_store.identity_attribute is None:
        return None
    return fingerprint(state.settings.refresh_secret, sub, value)


def bind(conn: Connection, session_id: str, identity: str) -> None:
    """Bind a session that is not bound yet (started before sessions were,
    or by ``/password`` before the new hash could be read) to ``identity``."""
    conn.execute(
        update(_sessions)
        .where(_sessions.c.id == session_id, _sessions.c.user_identity.is_(None))
        .values(user_identity=identity)
    )


def status_sql(
    store: UserStore, sub: ColumnElement[str], db: Database
) -> tuple[ColumnElement[Any], ColumnElement[Any] | None] | None:
    """The user's status and identity value as SQL over ``sub``, for the
    rotation statement: the store's :meth:`status_clause` and the same
    lookup reading the identity column instead.  ``None`` (each refresh
    asks the store) if the store has no status clause, or binds sessions
    to a column its status clause cannot read."""
    status = store.status_clause(sub, db)
    if status is None or store.identity_attribute is None:
        return None if status is None else (status, None)
    column = _identity_column(store)
    query = getattr(status, "element", None)
    if column is None or not isinstance(query, Select):
        return None
    if column.table not in query.get_final_froms():
        return None
    return status, query.with_only_columns(column).scalar_subquery()


def _identity_column(store: UserStore) -> Any | None:
    model = getattr(store, "model", None)
    attribute = store.identity_attribute
    if model is None or attribute is None:
        return None
    return sa_inspect(model).columns.get(attribute)


def read(state: TokenAuthState, sub: str) -> str | None:
    """The user's current fingerprint, read from the database now (not
    from an ORM session's identity map, which may hold a hash that was
    just rewritten); from :meth:`UserStore.status_and_identity` if the
    store cannot say it in SQL.  ``None`` if the store binds nothing or
    the user is gone."""
    store = state.user_store
    if store.identity_attribute is None:
        return None
    clauses = None
    if state.db.engine.dialect.name == "postgresql":  # where the clauses run
        clauses = status_sql(store, literal(sub, String()), state.db)
    if clauses is not None and clauses[1] is not None:
        with state.db.begin() as conn:
            status, value = conn.execute(select(clauses[0], clauses[1])).one()
    else:
        status, value = store.status_and_identity(sub)
    return None if status is None else of_sub(state, sub, value)
