"""Sessions' refresh tokens as a whole: revoking sessions (every live
token of theirs) and recognising presented tokens without spending them.

Apart from the issuing and the rotation (:mod:`._refresh`, the hot path),
which inherit it: :class:`~._refresh.RefreshTokens` is one object for both.
The locking order the two share is described in :mod:`._refresh`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import cast

from sqlalchemy import Connection, Table, and_, case, select, update

from ._refresh_results import KnownToken
from ._refresh_sql import spendable
from .models import RefreshToken, Session

_tokens = cast(Table, RefreshToken.__table__)
_sessions = cast(Table, Session.__table__)

#: A presented cookie longer than this is not one of ours; refused unhashed.
MAX_TOKEN_LENGTH = 256


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TokenFamilies:
    """Revocation and look-up of refresh tokens, keyed by ``_secret`` (the
    refresh secret, set by :class:`~._refresh.RefreshTokens`)."""

    _secret: bytes

    def hash(self, token: str) -> str:
        """HMAC-SHA256 of ``token`` under the refresh secret: what the table
        stores, so a database dump alone cannot be replayed."""
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    def revoke_families(
        self, conn: Connection, family_ids: list[str], now: datetime | None = None
    ) -> None:
        """Revoke sessions and every live token of theirs.

        The session rows first, locked in id order (two revocations never
        deadlock), then the tokens: a rotation holds its session's lock
        until it commits, so this waits for any rotation in flight, and the
        tokens UPDATE, a statement of its own (a new snapshot under READ
        COMMITTED), sees the successor it inserted.
        """
        if not family_ids:
            return
        now = now or _utcnow()
        conn.execute(
            select(_sessions.c.id)
            .where(_sessions.c.id.in_(family_ids))
            .order_by(_sessions.c.id)
            .with_for_update(key_share=True)
        )
        conn.execute(
            update(_sessions)
            .where(_sessions.c.id.in_(family_ids), _sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        conn.execute(
            update(_tokens)
            .where(_tokens.c.family_id.in_(family_ids), _tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def known(
        self, conn: Connection, tokens: Sequence[str], now: datetime | None = None
    ) -> dict[str, KnownToken]:
        """Which of ``tokens`` are ours, and which of those are live, in one
        query over their keyed hashes.  Read-only: nothing is spent.

        Used when a request carries several refresh cookies of our name, to
        tell ours from values tossed in by someone else.
        """
        now = now or _utcnow()
        by_hash = {self.hash(t): t for t in tokens if len(t) <= MAX_TOKEN_LENGTH}
        if not by_hash:
            return {}
        live = and_(
            spendable(_tokens, now),
            _sessions.c.revoked_at.is_(None),
            _sessions.c.expires_at > now,
        )
        rows = conn.execute(
            select(
                _tokens.c.token_hash,
                _tokens.c.family_id,
                _tokens.c.user_id,
                case((live, True), else_=False).label("live"),
            )
            .select_from(
                _tokens.outerjoin(_sessions, _sessions.c.id == _tokens.c.family_id)
            )
            .where(_tokens.c.token_hash.in_(list(by_hash)))
        ).all()
        return {
            by_hash[row.token_hash]: KnownToken(
                row.family_id, row.user_id, bool(row.live)
            )
            for row in rows
        }
