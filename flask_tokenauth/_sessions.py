"""Session operations that span the database, the revocation store and the
signals: list a user's sessions, revoke some or all of them.

The database is the record; the revocation store is told in the same
transaction, before it commits, so that access tokens of revoked sessions
stop at their next request.  Every revocation is also appended to the log
that each process's copy of the revocations reads (see :mod:`._dbmirror`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from flask import current_app
from sqlalchemy import Connection, Exists, Table, delete, exists, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import _linktokens as linktokens
from . import signals
from ._db import as_utc
from ._dbmirror import record
from ._refresh import spendable
from ._revocation import cutoff_of
from ._state import TokenAuthState, get_state
from .models import RefreshToken, RevocationEvent, Session, UserCutoff

_sessions = cast(Table, Session.__table__)
_tokens = cast(Table, RefreshToken.__table__)
_cutoffs = cast(Table, UserCutoff.__table__)
_events = cast(Table, RevocationEvent.__table__)


def _has_spendable_token(now: datetime) -> Exists:
    """Whether a session still has a refresh token that can be rotated."""
    return exists().where(
        _tokens.c.family_id == _sessions.c.id, spendable(_tokens, now)
    )


@dataclass(frozen=True)
class SessionInfo:
    """One active session, as the sessions endpoint and CLI show it."""

    id: str
    user_agent: str | None
    ip_address: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime

    def to_json(self, current_session: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "userAgent": self.user_agent,
            "ipAddress": self.ip_address,
            "createdAt": self.created_at.isoformat(),
            "lastUsedAt": self.last_used_at.isoformat(),
            "expiresAt": self.expires_at.isoformat(),
            "current": self.id == current_session,
        }


def active_sessions(
    state: TokenAuthState, user_id: str, identity: str | None = None
) -> list[SessionInfo]:
    """The user's sessions that can still refresh, most recently used first.

    :param identity: the user's fingerprint (see :mod:`._identity`): then
        only sessions bound to it or not bound yet, not those of a former
        holder of the id.
    """
    now = datetime.now(timezone.utc)
    live_token = _has_spendable_token(now)
    query = (
        select(_sessions)
        .where(
            _sessions.c.user_id == user_id,
            _sessions.c.revoked_at.is_(None),
            _sessions.c.expires_at > now,
            live_token,
        )
        .order_by(_sessions.c.last_used_at.desc(), _sessions.c.id)
    )
    if identity is not None:
        query = query.where(
            or_(
                _sessions.c.user_identity.is_(None),
                _sessions.c.user_identity == identity,
            )
        )
    with state.db.begin() as conn:
        rows = conn.execute(query).all()
    return [
        SessionInfo(
            id=row.id,
            user_agent=row.user_agent,
            ip_address=row.ip_address,
            created_at=as_utc(row.created_at),
            last_used_at=as_utc(row.last_used_at),
            expires_at=as_utc(row.expires_at),
        )
        for row in rows
    ]


def revoke_in(
    state: TokenAuthState,
    conn: Connection,
    user_id: str,
    *,
    only: Collection[str] | None = None,
    keep: str | None = None,
    cutoff: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """Revoke the user's sessions in the caller's transaction ``conn``: those
    in ``only`` (default: all) except ``keep``.  With ``cutoff``, also refuse
    every access token the user was issued before ``now``.  Returns the ids
    revoked (only the user's own); the caller sends
    :func:`announce_revoked` once its transaction has committed.

    The revocation store is told here, before the caller commits: if it
    cannot be reached the error rolls the whole transaction back, so a 503
    means nothing was changed and a retry works.  The log of revocations is
    written whatever the store, so that switching to the database store
    later misses none.
    """
    now = now or datetime.now(timezone.utc)
    query = select(_sessions.c.id).where(
        _sessions.c.user_id == user_id, _sessions.c.revoked_at.is_(None)
    )
    if only is not None:
        query = query.where(_sessions.c.id.in_(list(only)))
    if keep is not None:
        query = query.where(_sessions.c.id != keep)
    ids = list(conn.execute(query).scalars())
    state.refresh_tokens.revoke_families(conn, ids, now)
    if cutoff:
        _set_cutoff(conn, user_id, now)
    record(conn, user_id, ids, cutoff_of(now) if cutoff else None, now)
    state.revocation.revoke_sessions(ids)
    if cutoff:
        state.revocation.revoke_user(user_id, now)
    return ids


def _set_cutoff(conn: Connection, user_id: str, now: datetime) -> None:
    """Refuse the user's access tokens issued before ``now``: one upsert, so
    two concurrent "log out everywhere" never collide on the key."""
    # The dialect's own insert, imported here: the PostgreSQL dialect costs
    # an app on SQLite (a host's test suite) 30 ms of import for nothing.
    insert = sqlite_insert
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        insert = postgresql_insert  # type: ignore[assignment]
    statement = insert(_cutoffs).values(user_id=user_id, tokens_valid_after=now)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[_cutoffs.c.user_id],
            set_={"tokens_valid_after": statement.excluded.tokens_valid_after},
        )
    )


def announce_revoked(
    state: TokenAuthState, user_id: str, ids: list[str], reason: str
) -> None:
    """Send :data:`~flask_tokenauth.signals.session_revoked` for ``ids``
    (``user_id`` in the user's own id type, as every signal carries it)."""
    if not ids:
        return
    try:
        owner = state.user_store.user_id(user_id)
    except (TypeError, ValueError):
        # A session of another id scheme (the store's key type changed):
        # revoked all the same, announced with the ``sub`` it carries.
        owner = user_id
    signals.session_revoked.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=owner,
        session_ids=ids,
        reason=reason,
    )


def revoke_sessions(
    state: TokenAuthState,
    user_id: str,
    *,
    reason: str,
    only: Collection[str] | None = None,
    keep: str | None = None,
    cutoff: bool = False,
) -> list[str]:
    """:func:`revoke_in` in a transaction of its own, then the signal."""
    with state.db.begin() as conn:
        ids = revoke_in(state, conn, user_id, only=only, keep=keep, cutoff=cutoff)
    announce_revoked(state, user_id, ids, reason)
    return ids


def revoke_user_sessions(user: Any, *, reason: str = "admin") -> list[str]:
    """Log a user out everywhere: revoke every session of theirs and every
    access token issued to them so far.  For admin tools and your own views;
    call it inside an app context.  Returns the revoked session ids.

    :param user: a user object of the user store (the host's model with
        :class:`~flask_tokenauth.userstore.SQLAlchemyUserStore`), its id, or
        its ``sub``: an ``int`` or canonical decimal string for integer
        keys, a :class:`uuid.UUID` or any form it parses for UUID keys.
    :raises ValueError: an id the user store refuses (``"01"``, ``" 1"``,
        ``"1.0"``): refused rather than revoking nothing in silence.
    """
    state = get_state()
    sub = state.user_store.to_sub(user)
    return revoke_sessions(state, sub, reason=reason, cutoff=True)


def purge(state: TokenAuthState, batch_size: int = 1000) -> int:
    """Delete the sessions (and their refresh tokens) that can never be used
    again, ``batch_size`` sessions per transaction.  Returns how many.

    A session is dead once its absolute lifetime is over, or once it has no
    refresh token left that can be used (idle timeout).  A revoked session
    is kept until its access tokens have expired too, so that the database
    revocation store still refuses them.  The revocation log loses its rows
    of the same age (every token they refuse has expired), and the mail
    flows' links and codes go a week after they expired (see
    :func:`._linktokens.purge`); they are not counted.
    """
    settings = state.settings
    total = 0
    while True:
        now = datetime.now(timezone.utc)
        settled = now - settings.access_expires - settings.leeway
        live_token = _has_spendable_token(now)
        dead = or_(
            _sessions.c.expires_at <= settled,
            _sessions.c.revoked_at <= settled,
            (_sessions.c.last_used_at <= settled) & ~live_token,
        )
        with state.db.begin() as conn:
            ids = list(
                conn.execute(
                    select(_sessions.c.id).where(dead).limit(batch_size)
                ).scalars()
            )
            if not ids:
                _purge_events(conn, settled)
                linktokens.purge(conn, now)
                return total
            conn.execute(delete(_tokens).where(_tokens.c.family_id.in_(ids)))
            conn.execute(delete(_sessions).where(_sessions.c.id.in_(ids)))
        total += len(ids)


def _purge_events(conn: Connection, settled: datetime) -> None:
    """Delete the log's rows older than ``settled``: every token they
    refuse has expired.  (A copy goes on from the last id it saw, and ids
    are never reused, so none misses a later row.)"""
    conn.execute(delete(_events).where(_events.c.created_at <= settled))
