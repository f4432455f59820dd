"""The SQL of refresh tokens: which tokens can be spent, which sessions
are live, and the rotation as one PostgreSQL statement (see
:mod:`._refresh`).  Tables are named from their ``Table`` objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, FromClause, Table, and_, select

from .models import RefreshToken, Session

_tokens = cast(Table, RefreshToken.__table__)
_sessions = cast(Table, Session.__table__)


def spendable(tokens: FromClause, now: datetime) -> ColumnElement[bool]:
    """The refresh tokens of ``tokens`` (the table or an alias of it) that
    can still be rotated: unused, unrevoked and unexpired."""
    return and_(
        tokens.c.used_at.is_(None),
        tokens.c.revoked_at.is_(None),
        tokens.c.expires_at > now,
    )


#: The rotation as one PostgreSQL statement; see
#: ``RefreshTokens._rotate_in_one_statement``.
#: ``live_session`` locks the session row first (the lock a revocation takes
#: too), and only if the token is spendable and its session live: under READ
#: COMMITTED a rotation that waits there for a revocation re-checks the row
#: once the revocation commits, and then finds it revoked.  ``LEAST`` ignores
#: a NULL ``idle_until`` (no idle timeout).
#:
#: The rotation statement, less its last line: the successor is inserted in
#: the CTE ``issued``, which the final ``SELECT`` returns together with the
#: status and identity value of the session's user (see :data:`UserStatus`)
#: and the session's own fingerprint (``live_session.user_identity``, see
#: :mod:`._identity`), ``email_verified`` (the claim, see
#: :mod:`._verification`) and level (``amr``, ``aal``, ``auth_time`` and
#: restriction, see :mod:`._authlevel`), so that a refresh needs no second round trip to
#: ask the user store.
ROTATE_POSTGRESQL_HEAD = f"""
WITH live_session AS (
    SELECT s.id, s.user_identity, s.email_verified, s.amr, s.aal,
           COALESCE(s.auth_time, s.created_at) AS auth_time, s.mfa_state
    FROM {_tokens.name} t
    JOIN {_sessions.name} s ON s.id = t.family_id AND s.user_id = t.user_id
    WHERE t.token_hash = %(hash)s AND t.used_at IS NULL AND t.revoked_at IS NULL
      AND t.expires_at > %(now)s
      AND s.revoked_at IS NULL AND s.expires_at > %(now)s
    FOR NO KEY UPDATE OF s
), spent AS (
    UPDATE {_tokens.name} t SET used_at = %(now)s
    FROM live_session
    WHERE t.token_hash = %(hash)s AND t.family_id = live_session.id
      AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > %(now)s
    RETURNING t.id, t.user_id, t.family_id, t.family_expires_at
), touched AS (
    UPDATE {_sessions.name} SET last_used_at = %(now)s
    FROM spent WHERE {_sessions.name}.id = spent.family_id
), issued AS (
    INSERT INTO {_tokens.name}
        (user_id, token_hash, family_id, parent_id, created_at, expires_at,
         family_expires_at)
    SELECT user_id, %(new_hash)s, family_id, id, %(now)s,
           LEAST(%(idle_until)s, family_expires_at), family_expires_at
    FROM spent
    RETURNING user_id, family_id, expires_at
)
SELECT issued.user_id, issued.family_id, issued.expires_at,
       live_session.user_identity, live_session.email_verified,
       live_session.amr, live_session.aal, live_session.auth_time,
       live_session.mfa_state, """
#: The rotation statement's last line, after the user's status and identity.
ROTATE_POSTGRESQL_FROM = " FROM issued, live_session"
#: What the rotation statement's last columns read: the user's status is
#: ``issued.user_id`` looked up by the user store (see :data:`UserStatus`).
ISSUED_SUB = "issued.user_id"
#: The rotation without the user's status (a store that cannot answer in
#: SQL, or whose users are in another database).
ROTATE_POSTGRESQL = ROTATE_POSTGRESQL_HEAD + "NULL, NULL" + ROTATE_POSTGRESQL_FROM

#: The rotation's parameters and their types, for ``PREPARE``.
ROTATE_PARAMETERS = {
    "hash": "text",
    "new_hash": "text",
    "now": "timestamptz",
    "idle_until": "timestamptz",
}

#: Sent ahead of the rotation, in its round trip, with
#: ``TOKENAUTH_REFRESH_ASYNC_COMMIT``: the implicit transaction of the two
#: statements then commits without waiting for the WAL flush (``set_config``
#: with ``is_local``: that transaction only, the connection keeps its own).
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true); "

#: The status of a session's user as SQL, for the rotation statement: given
#: the column that holds the session's ``sub``, an expression that is NULL
#: when there is no such user and else whether it is active (what
#: :meth:`~flask_tokenauth.userstore.UserStore.status` answers), and one
#: that reads the user's identity value (``None`` if the store binds
#: nothing); or ``None`` if the user store cannot answer in SQL on our
#: database (see :func:`._identity.status_sql`).
UserStatus = Callable[
    [ColumnElement[str]],
    tuple[ColumnElement[Any], ColumnElement[Any] | None] | None,
]


def live_session(now: datetime) -> Any:
    """The condition "the session of the token row is live": not revoked,
    not expired.  Whether its user still exists (and is active) is the user
    store's to say: in the PostgreSQL rotation statement if it can say it in
    SQL (see :data:`UserStatus`), else asked by the caller after the
    rotation."""
    return (
        select(_sessions.c.id)
        .where(
            _sessions.c.id == _tokens.c.family_id,
            _sessions.c.user_id == _tokens.c.user_id,
            _sessions.c.revoked_at.is_(None),
            _sessions.c.expires_at > now,
        )
        .exists()
    )


@contextmanager
def transaction(conn: Connection) -> Iterator[None]:
    """The caller's transaction, or one of our own, committed on success:
    on PostgreSQL the rotation runs outside any transaction (see
    :meth:`RefreshTokens._rotate_in_one_statement`)."""
    if conn.in_transaction():
        yield
    else:
        with conn.begin():
            yield
