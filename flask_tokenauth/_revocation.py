"""Immediate revocation of access tokens.

An access token is stateless until it expires; to stop one sooner, every
protected request asks a revocation store two questions about its claims:
is the session (``sid``) revoked, and was the token issued (``iat``) before
the user's "not before" cutoff ("log out everywhere", password change)?

* :class:`RedisRevocation` keeps both facts in Redis, each entry expiring
  with the longest access-token lifetime (after that the token has expired
  anyway), so the store stays small.  Shared by every worker and machine;
  each process reads a copy kept current by pub/sub (see :mod:`._mirror`).
* :class:`DatabaseRevocation` keeps them in the database: no Redis needed.
  Each process reads a copy of the log of revocations, kept current by the
  database (see :mod:`._dbmirror`); while the copy is not current, one
  indexed query per request on the ``tokenauth_sessions`` and
  ``tokenauth_user_cutoffs`` tables.
* :class:`NoRevocation` asks nothing: purely stateless deployments that
  accept tokens until they expire.

When the store cannot answer, the request fails closed with 503
``REVOCATION_STORE_UNAVAILABLE``, unless ``TOKENAUTH_REVOCATION_FAIL_OPEN``
lets it through (and logs a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, select

from ._db import Database, as_utc, execute_one
from ._dbmirror import RevocationCopy
from ._mirror import RevocationMirror, channel_name
from .errors import RevocationStoreUnavailable, TokenRevoked, UserNotFound
from .models import Session, User, UserCutoff

logger = logging.getLogger("flask_tokenauth")

_sessions = cast(Table, Session.__table__)
_users = cast(Table, User.__table__)
_cutoffs = cast(Table, UserCutoff.__table__)


class RevocationStore(Protocol):
    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`TokenRevoked` if the token's session or user was
        revoked after it was issued."""

    def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        """Refuse every access token of these sessions from now on."""

    def revoke_user(self, user_id: int | str, at: datetime) -> None:
        """Refuse every access token of this user issued before ``at``."""


def cutoff_of(at: datetime) -> int:
    # ``iat`` has one-second resolution: a token issued in the same second as
    # the cutoff survives, so a token issued right after a password change
    # stays valid.  The sessions revoked at the same time cover the rest.
    return int(at.timestamp())


class NoRevocation:
    """Stateless: tokens are valid until they expire."""

    def check(self, claims: Mapping[str, Any]) -> None:
        return None

    def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        return None

    def revoke_user(self, user_id: int | str, at: datetime) -> None:
        return None


def _check_postgresql(builtin_users: bool) -> str:
    """The database store's check as one PostgreSQL statement (see
    :func:`_check_query`)."""
    cutoff = f"LEFT JOIN {_cutoffs.name} c ON c.user_id = %(uid)s"
    if builtin_users:
        return (
            f"SELECT s.id, s.revoked_at, c.tokens_valid_after FROM {_users.name} u"
            f" LEFT JOIN {_sessions.name} s ON s.id = %(sid)s AND s.user_id = %(uid)s"
            f" {cutoff} WHERE u.id = %(uid_int)s"
        )
    return (
        f"SELECT s.id, s.revoked_at, c.tokens_valid_after FROM {_sessions.name} s"
        f" {cutoff} WHERE s.id = %(sid)s AND s.user_id = %(uid)s"
    )


def _check_query(session_id: str, user_id: str, builtin_users: bool) -> Select[Any]:
    """The token's session and its user's cutoff: no row if there is no such
    session, or with the built-in users table no such user (a ``sub`` of
    that store is a canonical decimal); a host's users are not ours to
    join (see :mod:`.userstore`)."""
    columns = (_sessions.c.id, _sessions.c.revoked_at, _cutoffs.c.tokens_valid_after)
    cutoff = _cutoffs.c.user_id == user_id
    if builtin_users:
        return (
            select(*columns)
            .select_from(_users)
            .outerjoin(
                _sessions,
                (_sessions.c.id == session_id) & (_sessions.c.user_id == user_id),
            )
            .outerjoin(_cutoffs, cutoff)
            .where(_users.c.id == int(user_id))
        )
    return (
        select(*columns)
        .select_from(_sessions)
        .outerjoin(_cutoffs, cutoff)
        .where(_sessions.c.id == session_id, _sessions.c.user_id == user_id)
    )


class DatabaseRevocation:
    """Reads revocations from this process's copy of the database's log
    while it is current, from the tables the session operations write
    otherwise.

    :param builtin_users: the users are the built-in table's, whose
        deletion the check sees too (``USER_NOT_FOUND``).
    :param copy: this process's copy of the log; ``None``: ask the database
        on every request.
    """

    def __init__(
        self,
        db: Database,
        builtin_users: bool = True,
        copy: RevocationCopy | None = None,
    ) -> None:
        self._db = db
        self._builtin_users = builtin_users
        self._check_sql = _check_postgresql(builtin_users)
        self.copy = copy

    def check(self, claims: Mapping[str, Any]) -> None:
        copy = self.copy
        if copy is not None:
            # What the copy holds is true even when it is not current: only
            # real revocations are in the log.
            current = copy.current()
            user_id = claims["sub"]
            if self._builtin_users and user_id in copy.gone:
                raise UserNotFound()
            if claims["sid"] in copy.sessions:
                raise TokenRevoked()
            cutoff = copy.cutoffs.get(user_id)
            if cutoff is not None and claims["iat"] < cutoff[0]:
                raise TokenRevoked()
            if current:
                return
        self._ask_database(claims)

    def _ask_database(self, claims: Mapping[str, Any]) -> None:
        session_id, user_id = claims["sid"], claims["sub"]
        with self._db.single_statement() as conn:
            if conn.dialect.name == "postgresql":
                # The hot path: straight to the driver, one round trip.
                params = {"sid": session_id, "uid": user_id}
                if self._builtin_users:
                    params["uid_int"] = int(user_id)
                row = execute_one(conn, self._check_sql, params)
            else:
                row = conn.execute(
                    _check_query(session_id, user_id, self._builtin_users)
                ).first()
        if row is None:
            if self._builtin_users:
                raise UserNotFound()
            raise TokenRevoked()
        found, revoked_at, valid_after = row
        # A session that no longer exists was purged (see ``flask tokenauth
        # purge``) or never was: either way its tokens are not honoured.
        if found is None or revoked_at is not None:
            raise TokenRevoked()
        if valid_after is not None and claims["iat"] < cutoff_of(as_utc(valid_after)):
            raise TokenRevoked()

    def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        # The sessions' revoked_at and the log are the record; the log's
        # writer tells this process's copies (see :func:`._dbmirror.record`).
        return None

    def revoke_user(self, user_id: int | str, at: datetime) -> None:
        return None  # tokenauth_user_cutoffs and the log are the record


class RedisRevocation:
    """A denylist of sessions and a per-user cutoff in Redis, read through
    this process's :class:`~._mirror.RevocationMirror` while that is current
    (a dict lookup), from Redis itself otherwise."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        ttl: timedelta,
        fail_open: bool = False,
        mirror: RevocationMirror | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = max(int(ttl.total_seconds()) + 1, 1)
        self._fail_open = fail_open
        self._mirror = mirror

    @classmethod
    def from_url(
        cls, url: str, prefix: str, ttl: timedelta, fail_open: bool = False
    ) -> RedisRevocation:
        import redis

        client = redis.Redis.from_url(
            url,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            health_check_interval=30,
        )
        store = cls(client, prefix, ttl, fail_open)
        store._mirror = RevocationMirror(url, prefix, store._ttl)
        return store

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}revoked-session:{session_id}"

    def _user_key(self, user_id: int | str) -> str:
        return f"{self._prefix}not-before:{user_id}"

    def _unavailable(self, error: Exception) -> None:
        if self._fail_open:
            logger.warning(
                "tokenauth revocation store unreachable, failing open: %s", error
            )
            return
        logger.error("tokenauth revocation store unreachable: %s", error)
        raise RevocationStoreUnavailable() from error

    def check(self, claims: Mapping[str, Any]) -> None:
        if self._mirror is not None:
            revoked, cutoff, current = self._mirror.lookup(claims["sid"], claims["sub"])
            if revoked or (cutoff is not None and claims["iat"] < cutoff):
                raise TokenRevoked()
            if current:
                return
        revoked, cutoff = self._ask_redis(claims["sid"], claims["sub"])
        if revoked or (cutoff is not None and claims["iat"] < cutoff):
            raise TokenRevoked()

    def _ask_redis(self, session_id: str, user_id: str) -> tuple[bool, int | None]:
        import redis

        try:
            revoked, not_before = self._redis.mget(
                self._session_key(session_id), self._user_key(user_id)
            )
        except redis.RedisError as e:
            self._unavailable(e)
            return False, None
        return revoked is not None, None if not_before is None else int(not_before)

    def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        import redis

        ids = list(session_ids)
        if not ids:
            return
        try:
            # MULTI/EXEC: if Redis refuses a write (maxmemory reached) it
            # runs none of them, so nothing is published that did not happen.
            with self._redis.pipeline(transaction=True) as pipe:
                for session_id in ids:
                    pipe.set(self._session_key(session_id), 1, ex=self._ttl)
                    pipe.publish(channel_name(self._prefix), f"s:{session_id}")
                pipe.execute()
        except redis.RedisError as e:
            self._unavailable(e)
        if self._mirror is not None:
            for session_id in ids:
                self._mirror.note_session(session_id)

    def revoke_user(self, user_id: int | str, at: datetime) -> None:
        import redis

        cutoff = cutoff_of(at)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._user_key(user_id), cutoff, ex=self._ttl)
                pipe.publish(channel_name(self._prefix), f"u:{user_id}:{cutoff}")
                pipe.execute()
        except redis.RedisError as e:
            self._unavailable(e)
        if self._mirror is not None:
            self._mirror.note_user(str(user_id), cutoff)
