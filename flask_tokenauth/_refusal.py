"""Why a refresh token could not be rotated: the error to raise, or the
one grace answer a repeat within the reuse interval gets (see
:meth:`._refresh.RefreshTokens.rotate`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, exists, select, update

from ._authlevel import of_row
from ._db import as_utc
from ._refresh_results import Rotation
from ._refresh_sql import live_session, spendable, transaction
from .errors import (
    RefreshTokenExpired,
    RefreshTokenInvalid,
    RefreshTokenReused,
    RefreshTokenRevoked,
)
from .models import RefreshToken, Session

_tokens = cast(Table, RefreshToken.__table__)
_sessions = cast(Table, Session.__table__)


def refused(
    conn: Connection, token_hash: str, now: datetime, reuse_interval: timedelta
) -> Rotation:
    """Why ``token_hash`` could not be rotated: raise the error, or
    return the grace answer to a repeat within the reuse interval."""
    owner = _sessions.c.id.label("owner_id")
    session_revoked_at = _sessions.c.revoked_at.label("session_revoked_at")
    session_expires_at = _sessions.c.expires_at.label("session_expires_at")
    bound = _sessions.c.user_identity.label("bound")
    verified = _sessions.c.email_verified.label("email_verified")
    created_at = _sessions.c.created_at.label("session_created_at")
    query = (
        select(
            _tokens.c.id,
            _tokens.c.user_id,
            _tokens.c.family_id,
            _tokens.c.used_at,
            _tokens.c.revoked_at,
            session_revoked_at,
            session_expires_at,
            owner,
            bound,
            verified,
            _sessions.c.amr,
            _sessions.c.aal,
            _sessions.c.auth_time,
            _sessions.c.mfa_state,
            created_at,
        )
        .select_from(
            _tokens.outerjoin(
                _sessions,
                (_sessions.c.id == _tokens.c.family_id)
                & (_sessions.c.user_id == _tokens.c.user_id),
            )
        )
        .where(_tokens.c.token_hash == token_hash)
    )
    with transaction(conn):
        found = conn.execute(query).first()
        # No session: the credentials of no account.
        if found is None or found.owner_id is None:
            raise RefreshTokenInvalid()
        if found.revoked_at is not None or found.session_revoked_at is not None:
            raise RefreshTokenRevoked()
        if found.used_at is None or as_utc(found.session_expires_at) <= now:
            raise RefreshTokenExpired()
        if _claim_grace(conn, found.id, now, reuse_interval):
            return Rotation(
                found.user_id,
                found.family_id,
                None,
                bound=found.bound,
                email_verified=found.email_verified,
                assurance=of_row(
                    found.amr,
                    found.aal,
                    found.auth_time,
                    found.mfa_state,
                    found.session_created_at,
                ),
            )
    raise RefreshTokenReused(family_id=found.family_id, user_id=found.user_id)


def _claim_grace(
    conn: Connection, token_id: int, now: datetime, reuse_interval: timedelta
) -> bool:
    """Claim the one grace answer of spent token ``token_id``: only
    within the reuse interval, while its successor is still unused and
    its session live, and only once (a conditional UPDATE: of concurrent
    claims the database lets one match)."""
    if not reuse_interval:
        return False
    successor = _tokens.alias("successor")
    live_successor = exists().where(
        successor.c.parent_id == _tokens.c.id, spendable(successor, now)
    )
    claim = (
        update(_tokens)
        .where(
            _tokens.c.id == token_id,
            _tokens.c.grace_used_at.is_(None),
            _tokens.c.revoked_at.is_(None),
            _tokens.c.used_at >= now - reuse_interval,
            live_successor,
            live_session(now),
        )
        .values(grace_used_at=now)
    )
    return conn.execute(claim).rowcount == 1
