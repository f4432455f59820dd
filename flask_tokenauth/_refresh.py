"""Refresh tokens: opaque random strings, stored only as a keyed hash,
rotated atomically on every use, revoked by family on reuse or logout.

The rotation is one conditional ``UPDATE ... RETURNING`` that marks the
presented token used only if it is still unused, unrevoked and unexpired,
followed in the same transaction by the insert of its successor.  Of several
concurrent refreshes with one token the database lets exactly one UPDATE
match; the others find the token already used, which is reuse.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import cast

from sqlalchemy import Connection, Table, insert, select, update

from .errors import (
    RefreshTokenExpired,
    RefreshTokenInvalid,
    RefreshTokenReused,
    RefreshTokenRevoked,
)
from .models import RefreshToken

#: 32 bytes = 256 bits of entropy, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
#: A presented cookie longer than this is not one of ours; refused unhashed.
MAX_TOKEN_LENGTH = 256

_table = cast(Table, RefreshToken.__table__)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued refresh token: the only time the plain value exists."""

    token: str
    user_id: int
    family_id: str
    expires_at: datetime


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class RefreshTokens:
    """Issues, rotates and revokes refresh tokens."""

    def __init__(self, secret: bytes, lifetime: timedelta) -> None:
        self._secret = secret
        self._lifetime = lifetime

    def hash(self, token: str) -> str:
        """HMAC-SHA256 of ``token`` under the refresh secret: what the table
        stores, so a database dump alone cannot be replayed."""
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    def _insert(
        self,
        conn: Connection,
        user_id: int,
        family_id: str,
        family_expires_at: datetime,
        now: datetime,
    ) -> IssuedToken:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires_at = min(now + self._lifetime, family_expires_at)
        conn.execute(
            insert(_table).values(
                user_id=user_id,
                token_hash=self.hash(token),
                family_id=family_id,
                created_at=now,
                expires_at=expires_at,
                family_expires_at=family_expires_at,
            )
        )
        return IssuedToken(token, user_id, family_id, expires_at)

    def start_family(
        self, conn: Connection, user_id: int, now: datetime | None = None
    ) -> IssuedToken:
        """Issue the first token of a new family (a login)."""
        now = now or datetime.now(timezone.utc)
        return self._insert(conn, user_id, uuid.uuid4().hex, now + self._lifetime, now)

    def rotate(
        self, conn: Connection, token: str, now: datetime | None = None
    ) -> IssuedToken:
        """Spend ``token`` and return its successor, in the caller's transaction.

        :raises RefreshTokenReused: ``token`` was already rotated.  The
            exception's ``family_id`` names the family to revoke, which the
            caller does in a transaction of its own (this one rolls back).
        :raises RefreshTokenRevoked: ``token``'s family was revoked.
        :raises RefreshTokenExpired: ``token`` or its family has expired.
        :raises RefreshTokenInvalid: ``token`` is unknown.
        """
        now = now or datetime.now(timezone.utc)
        if len(token) > MAX_TOKEN_LENGTH:
            raise RefreshTokenInvalid()
        token_hash = self.hash(token)
        row = conn.execute(
            update(_table)
            .where(
                _table.c.token_hash == token_hash,
                _table.c.used_at.is_(None),
                _table.c.revoked_at.is_(None),
                _table.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(_table.c.user_id, _table.c.family_id, _table.c.family_expires_at)
        ).first()
        if row is not None:
            return self._insert(
                conn, row.user_id, row.family_id, _aware(row.family_expires_at), now
            )
        self._explain_refusal(conn, token_hash, now)
        raise AssertionError("unreachable")  # pragma: no cover

    def _explain_refusal(
        self, conn: Connection, token_hash: str, now: datetime
    ) -> None:
        found = conn.execute(
            select(_table.c.family_id, _table.c.used_at, _table.c.revoked_at).where(
                _table.c.token_hash == token_hash
            )
        ).first()
        if found is None:
            raise RefreshTokenInvalid()
        if found.revoked_at is not None:
            raise RefreshTokenRevoked()
        if found.used_at is not None:
            raise RefreshTokenReused(family_id=found.family_id)
        raise RefreshTokenExpired()

    def revoke_family(
        self, conn: Connection, family_id: str, now: datetime | None = None
    ) -> int:
        """Revoke every live token of a family; returns how many."""
        result = conn.execute(
            update(_table)
            .where(_table.c.family_id == family_id, _table.c.revoked_at.is_(None))
            .values(revoked_at=now or datetime.now(timezone.utc))
        )
        return result.rowcount

    def revoke_by_token(self, conn: Connection, token: str) -> str | None:
        """Revoke the family of ``token`` (logout); returns its id, if known."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        family_id = conn.execute(
            select(_table.c.family_id).where(_table.c.token_hash == self.hash(token))
        ).scalar()
        if family_id is not None:
            self.revoke_family(conn, family_id)
        return family_id
