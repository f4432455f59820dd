"""Refresh tokens: opaque random strings, stored only as a keyed hash,
rotated atomically on every use, revoked by family on reuse or logout.

A *family* is the chain of tokens one login produces by rotation; it is
also a *session* (a row of ``tokenauth_sessions`` with the same id, which is the
``sid`` claim of the session's access tokens).

The rotation is one conditional ``UPDATE ... RETURNING`` that marks the
presented token used only if it is still unused, unrevoked and unexpired and
its session is live (not revoked, not expired),
followed in the same transaction by the insert of its successor.  Of several
concurrent refreshes with one token the database lets exactly one UPDATE
match; the others find the token already used, which is reuse, unless one of
them falls within the reuse interval (see :meth:`RefreshTokens.rotate`).

Rotation and revocation are serialized on the session row: a rotation locks
it before it spends the token, a revocation locks it before it revokes the
tokens, in that order both.  So a revocation either waits for a rotation in
flight and then revokes its successor too (its next statement sees it), or
the rotation waits for the revocation and then finds the session revoked.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import cast

from sqlalchemy import (
    Connection,
    String,
    Table,
    insert,
    literal_column,
    update,
)

from ._authlevel import Assurance, of_row
from ._client import MAX_USER_AGENT as MAX_USER_AGENT
from ._client import clean_user_agent as _clean_user_agent
from ._client import valid_ip as _valid_ip
from ._db import PreparedStatement, as_utc
from ._refresh_families import MAX_TOKEN_LENGTH as MAX_TOKEN_LENGTH
from ._refresh_families import TokenFamilies
from ._refresh_results import IssuedToken as IssuedToken
from ._refresh_results import KnownToken as KnownToken
from ._refresh_results import Rotation as Rotation
from ._refresh_sql import (
    ASYNC_COMMIT,
    ISSUED_SUB,
    ROTATE_PARAMETERS,
    ROTATE_POSTGRESQL,
    ROTATE_POSTGRESQL_FROM,
    ROTATE_POSTGRESQL_HEAD,
    live_session,
)
from ._refresh_sql import UserStatus as UserStatus
from ._refresh_sql import spendable as spendable
from ._refusal import refused
from ._sid import new_session_id
from .errors import RefreshTokenInvalid
from .models import RefreshToken, Session

logger = logging.getLogger("flask_tokenauth")
_tokens = cast(Table, RefreshToken.__table__)
_sessions = cast(Table, Session.__table__)

#: 32 bytes = 256 bits of entropy, URL-safe base64 (43 characters).
TOKEN_BYTES = 32


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RefreshTokens(TokenFamilies):
    """Issues, rotates and revokes refresh tokens and their sessions (the
    revocation and the look-up of tokens: :class:`._refresh_families.TokenFamilies`).

    :param lifetime: a session's absolute lifetime.
    :param idle_timeout: how long one token stays valid unused (``None``:
        until the session ends).
    :param reuse_interval: how long after its rotation a token may be
        presented again without counting as reuse (zero: never).
    :param user_status: the user store's status of a user as SQL (see
        :data:`UserStatus`): a rotation on PostgreSQL then reads it in its
        own statement.
    :param async_commit: a rotation on PostgreSQL commits without waiting
        for the server to flush its WAL to disk (``TOKENAUTH_REFRESH_ASYNC_COMMIT``):
        faster, but a server crash may lose the last rotations, and their
        spent tokens are then valid again.
    """

    def __init__(
        self,
        secret: bytes,
        lifetime: timedelta,
        idle_timeout: timedelta | None = None,
        reuse_interval: timedelta = timedelta(0),
        user_status: UserStatus | None = None,
        async_commit: bool = False,
    ) -> None:
        self._secret = secret
        self._lifetime = lifetime
        self._idle_timeout = idle_timeout
        self._reuse_interval = reuse_interval
        self._user_status = user_status
        self._before_rotation = ASYNC_COMMIT if async_commit else ""
        #: The rotation statement, with the user's status if the store can
        #: give it; made at the first rotation (a store may need the app
        #: context to tell where its users are).
        self._rotate_sql: tuple[PreparedStatement, bool] | None = None

    def insert_token(
        self,
        conn: Connection,
        user_id: str,
        family_id: str,
        family_expires_at: datetime,
        now: datetime,
        parent_id: int | None = None,
        identity: str | None = None,
        email_verified: bool | None = None,
        assurance: Assurance | None = None,
    ) -> IssuedToken:
        """Insert a new token of session ``family_id``, in the caller's
        transaction (a login, a rotation, a session's new level)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires_at = family_expires_at
        if self._idle_timeout is not None:
            expires_at = min(now + self._idle_timeout, family_expires_at)
        conn.execute(
            insert(_tokens).values(
                user_id=user_id,
                token_hash=self.hash(token),
                family_id=family_id,
                parent_id=parent_id,
                created_at=now,
                expires_at=expires_at,
                family_expires_at=family_expires_at,
            )
        )
        return IssuedToken(
            token, user_id, family_id, expires_at, identity, email_verified, assurance
        )

    def start_family(
        self,
        conn: Connection,
        user_id: str,
        now: datetime | None = None,
        *,
        user_agent: str | None = None,
        ip_address: str | None = None,
        identity: str | None = None,
        email_verified: bool | None = None,
        assurance: Assurance | None = None,
        lifetime: timedelta | None = None,
    ) -> IssuedToken:
        """Start a session (a login): its row and its first token.

        :param user_id: the user's ``sub``.
        :param identity: the fingerprint of the user's identity value (see
            :mod:`._identity`); ``None``: bound at the first refresh.
        :param email_verified: the ``email_verified`` claim of the session's
            tokens (see :mod:`._verification`); ``None``: verification off.
        :param assurance: how the user authenticated (see
            :mod:`._authlevel`); default: a password, now.
        :param lifetime: a shorter absolute lifetime than the configured one
            (a session that waits for its second factor)."""
        now = now or _utcnow()
        user_id = str(user_id)  # an int from older callers names the same sub
        family_id = new_session_id(self._secret, user_id)
        if assurance is None:
            assurance = Assurance(auth_time=int(now.timestamp()))
        expires_at = now + min(lifetime or self._lifetime, self._lifetime)
        conn.execute(
            insert(_sessions).values(
                id=family_id,
                user_id=user_id,
                user_agent=_clean_user_agent(user_agent),
                ip_address=_valid_ip(ip_address),
                created_at=now,
                last_used_at=now,
                expires_at=expires_at,
                user_identity=identity,
                email_verified=email_verified,
                **assurance.row(),
            )
        )
        return self.insert_token(
            conn,
            user_id,
            family_id,
            expires_at,
            now,
            None,
            identity,
            email_verified,
            assurance,
        )

    def rotate(
        self, conn: Connection, token: str, now: datetime | None = None
    ) -> Rotation:
        """Spend ``token`` and issue its successor, in the caller's transaction.

        A token presented again within the reuse interval after its rotation,
        while its successor is still unused, is taken for a concurrent
        request of the same client (two tabs, parallel calls): the first such
        repeat gets a :class:`Rotation` without a new token rather than an
        error (a *grace answer*, one per rotation, claimed with a conditional
        UPDATE so that of concurrent repeats exactly one wins).

        :raises RefreshTokenReused: ``token`` was already rotated (outside the
            reuse interval, or its successor was rotated too, or its grace
            answer was given already).  The
            exception's ``family_id`` names the family to revoke, which the
            caller does in a transaction of its own (this one rolls back).
        :raises RefreshTokenRevoked: ``token``'s session was revoked.
        :raises RefreshTokenExpired: ``token`` or its session has expired.
        :raises RefreshTokenInvalid: ``token`` is unknown.
        """
        now = now or _utcnow()
        if len(token) > MAX_TOKEN_LENGTH:
            raise RefreshTokenInvalid()
        token_hash = self.hash(token)
        if conn.dialect.name == "postgresql":
            rotation = self._rotate_in_one_statement(conn, token_hash, now)
            return rotation or refused(conn, token_hash, now, self._reuse_interval)
        spend = (
            update(_tokens)
            .where(
                _tokens.c.token_hash == token_hash,
                spendable(_tokens, now),
                live_session(now),
            )
            .values(used_at=now)
            .returning(
                _tokens.c.id,
                _tokens.c.user_id,
                _tokens.c.family_id,
                _tokens.c.family_expires_at,
            )
        )
        row = conn.execute(spend).first()
        if row is None:
            return refused(conn, token_hash, now, self._reuse_interval)
        session = conn.execute(
            update(_sessions)
            .where(_sessions.c.id == row.family_id)
            .values(last_used_at=now)
            .returning(
                _sessions.c.user_identity,
                _sessions.c.email_verified,
                _sessions.c.amr,
                _sessions.c.aal,
                _sessions.c.auth_time,
                _sessions.c.mfa_state,
                _sessions.c.created_at,
            )
        ).one()
        bound, verified = session.user_identity, session.email_verified
        assurance = of_row(
            session.amr,
            session.aal,
            session.auth_time,
            session.mfa_state,
            session.created_at,
        )
        issued = self.insert_token(
            conn,
            row.user_id,
            row.family_id,
            as_utc(row.family_expires_at),
            now,
            parent_id=row.id,
            identity=bound,
            email_verified=verified,
            assurance=assurance,
        )
        return Rotation(
            row.user_id,
            row.family_id,
            issued,
            bound=bound,
            email_verified=verified,
            assurance=assurance,
        )

    def _rotation_statement(self, conn: Connection) -> tuple[PreparedStatement, bool]:
        """The PostgreSQL rotation statement, and whether it reads the
        user's status: made once, with the user store's SQL inlined, and
        prepared on each connection (see :class:`~._db.PreparedStatement`)."""
        if self._rotate_sql is None:
            sql = ROTATE_POSTGRESQL
            try:
                clauses = None
                if self._user_status is not None:
                    clauses = self._user_status(literal_column(ISSUED_SUB, String()))
                if clauses is not None:
                    status, identity = (
                        "NULL"
                        if clause is None
                        else clause.compile(
                            dialect=conn.dialect,
                            compile_kwargs={"literal_binds": True},
                        )
                        for clause in clauses
                    )
                    sql = (
                        f"{ROTATE_POSTGRESQL_HEAD}{status}, {identity}"
                        f"{ROTATE_POSTGRESQL_FROM}"
                    )
            except Exception:
                # A host model SQL cannot render: its status() still answers.
                logger.warning(
                    "tokenauth: the user store's status_clause failed; each"
                    " refresh asks its status() after the rotation instead",
                    exc_info=True,
                )
            statement = PreparedStatement(sql, ROTATE_PARAMETERS)
            self._rotate_sql = statement, sql is not ROTATE_POSTGRESQL
        return self._rotate_sql

    def _rotate_in_one_statement(
        self, conn: Connection, token_hash: str, now: datetime
    ) -> Rotation | None:
        """PostgreSQL: spend, touch the session, insert the successor and
        read the user's status in one statement (:data:`ROTATE_POSTGRESQL`),
        atomic on its own, sent straight to the driver, by name once it is
        prepared: outside a transaction it is one round trip, with no BEGIN
        and no COMMIT.  ``None`` if the
        token was refused."""
        statement, user_checked = self._rotation_statement(conn)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        idle_until = now + self._idle_timeout if self._idle_timeout else None
        row = statement.first_row(
            conn,
            {
                "hash": token_hash,
                "new_hash": self.hash(token),
                "now": now,
                "idle_until": idle_until,
            },
            before=self._before_rotation,
        )
        if row is None:
            return None
        user_id, family_id, expires_at, bound, verified = row[:5]
        amr, aal, auth_time, restriction, active, identity = row[5:]
        assurance = of_row(amr, aal, auth_time, restriction, None)
        return Rotation(
            user_id,
            family_id,
            IssuedToken(
                token,
                user_id,
                family_id,
                as_utc(expires_at),
                bound,
                verified,
                assurance,
            ),
            user_checked=user_checked,
            user_active=None if active is None else bool(active),
            bound=bound,
            user_identity=identity,
            email_verified=verified,
            assurance=assurance,
        )
