"""Session operations that span the database, the revocation store and the
signals: list a user's sessions, revoke some or all of them.

The database is the record; the revocation store is told in the same
transaction, before it commits, so that access tokens of revoked sessions
stop at their next request.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from flask import current_app
from sqlalchemy import Connection, Table, delete, exists, or_, select, update

from . import signals
from ._db import as_utc
from ._state import TokenAuthState, get_state
from .models import RefreshToken, Session, User

_sessions = cast(Table, Session.__table__)
_tokens = cast(Table, RefreshToken.__table__)
_users = cast(Table, User.__table__)


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


def active_sessions(state: TokenAuthState, user_id: int) -> list[SessionInfo]:
    """The user's sessions that can still refresh, most recently used first."""
    now = datetime.now(timezone.utc)
    live_token = exists().where(
        _tokens.c.family_id == _sessions.c.id,
        _tokens.c.used_at.is_(None),
        _tokens.c.revoked_at.is_(None),
        _tokens.c.expires_at > now,
    )
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
    user_id: int,
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
    means nothing was changed and a retry works.
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
        conn.execute(
            update(_users).where(_users.c.id == user_id).values(tokens_valid_after=now)
        )
    state.revocation.revoke_sessions(ids)
    if cutoff:
        state.revocation.revoke_user(user_id, now)
    return ids


def announce_revoked(user_id: int, ids: list[str], reason: str) -> None:
    """Send :data:`~flask_tokenauth.signals.session_revoked` for ``ids``."""
    if ids:
        signals.session_revoked.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user_id=user_id,
            session_ids=ids,
            reason=reason,
        )


def revoke_sessions(
    state: TokenAuthState,
    user_id: int,
    *,
    reason: str,
    only: Collection[str] | None = None,
    keep: str | None = None,
    cutoff: bool = False,
) -> list[str]:
    """:func:`revoke_in` in a transaction of its own, then the signal."""
    with state.db.begin() as conn:
        ids = revoke_in(state, conn, user_id, only=only, keep=keep, cutoff=cutoff)
    announce_revoked(user_id, ids, reason)
    return ids


def revoke_user_sessions(user_id: int, *, reason: str = "admin") -> list[str]:
    """Log a user out everywhere: revoke every session of theirs and every
    access token issued to them so far.  For admin tools and your own views;
    call it inside an app context.  Returns the revoked session ids."""
    return revoke_sessions(get_state(), user_id, reason=reason, cutoff=True)


def purge(state: TokenAuthState, batch_size: int = 1000) -> int:
    """Delete the sessions (and their refresh tokens) that can never be used
    again, ``batch_size`` sessions per transaction.  Returns how many.

    A session is dead once its absolute lifetime is over, or once it has no
    refresh token left that can be used (idle timeout).  A revoked session
    is kept until its access tokens have expired too, so that the database
    revocation store still refuses them.
    """
    settings = state.settings
    total = 0
    while True:
        now = datetime.now(timezone.utc)
        settled = now - settings.access_expires - settings.leeway
        live_token = exists().where(
            _tokens.c.family_id == _sessions.c.id,
            _tokens.c.used_at.is_(None),
            _tokens.c.revoked_at.is_(None),
            _tokens.c.expires_at > now,
        )
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
                return total
            conn.execute(delete(_tokens).where(_tokens.c.family_id.in_(ids)))
            conn.execute(delete(_sessions).where(_sessions.c.id.in_(ids)))
        total += len(ids)
