"""The library's tables: the built-in users, sessions, refresh tokens, the
per-user cutoffs of "log out everywhere" and the log of revocations.

Every name starts with :data:`TABLE_PREFIX`, so none collides with a table
of the host application (a host ``users`` table is common).  Sessions,
refresh tokens and cutoffs name their user by the canonical ``sub`` string
(see :mod:`flask_tokenauth.userstore`), with no foreign key: the user may
live in the host's own table, whose key type is the host's.

They sit on the package's own :class:`~sqlalchemy.MetaData` with a naming
convention, so constraint names are the same on SQLite and PostgreSQL and the
migrations in ``alembic/`` can name them.  The migrations never import this
module; ``tests/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    event,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: The prefix of every table of ours, the one place that names it: raw SQL
#: elsewhere is built from the tables' ``.name``.
TABLE_PREFIX = "tokenauth_"

#: A user id as sessions and tokens store it: the canonical ``sub``.
USER_ID_LENGTH = 255


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = metadata


class UserMixin:
    """What Flask-Login's ``UserMixin`` offers, so templates and Flask-Login
    can ask the built-in user the same questions as any host user:
    ``is_authenticated``, ``is_active``, ``is_anonymous`` and ``get_id()``.

    No ``__eq__`` (Flask-Login's compares ``get_id()``): on a mapped class it
    would make instances unhashable, and the session's identity map already
    gives one object per row.
    """

    if TYPE_CHECKING:
        id: Any

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """The id as a string, as Flask-Login stores it in its session."""
        return str(self.id)


class AnonymousUser:
    """The caller of a ``login_required(optional=True)`` view that sent no
    token, as Flask-Login's ``AnonymousUserMixin``: a template can test
    ``current_user.is_authenticated`` without anything raising."""

    is_authenticated = False
    is_active = False
    is_anonymous = True

    def __bool__(self) -> bool:
        """Falsy, as Flask-JWT-Extended's ``None`` for the same caller: code
        written ``if current_user:`` keeps its meaning after the move (and
        in a template)."""
        return False

    def get_id(self) -> None:
        return None

    def __repr__(self) -> str:
        return "<AnonymousUser>"


class User(UserMixin, Base):
    """An account.  ``email`` is stored normalized (trimmed, lower-case), so
    the unique constraint is on the normalized form.

    Ids are never reused (AUTOINCREMENT on SQLite, a sequence elsewhere): a
    deleted user's tokens name an id that no later user gets.
    """

    __tablename__ = TABLE_PREFIX + "users"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    #: When the address was verified (``None``: not verified); cleared when
    #: the address changes (see docs/mail.md).
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def email_verified(self) -> bool:
        """Whether the user's address is verified."""
        return self.email_verified_at is not None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email!r}>"


class Session(Base):
    """One login on one device: a refresh-token family.

    ``id`` is the family id, also the ``sid`` claim of every access token the
    session issues.  ``last_used_at`` is the last refresh.
    """

    __tablename__ = TABLE_PREFIX + "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The user's ``sub``; no foreign key (see the module's docstring).
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), index=True)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: A keyed fingerprint of the user's identity value when the session
    #: started (see :mod:`flask_tokenauth._identity`); ``None``: not bound
    #: yet (a session of before 0007), bound at its next refresh.
    user_identity: Mapped[str | None] = mapped_column(String(32))
    #: Whether the user's address was verified, for the ``email_verified``
    #: claim of the tokens a refresh issues; set when the session starts and
    #: when the user verifies (``None``: verification is off, or unknown).
    email_verified: Mapped[bool | None] = mapped_column(Boolean)
    #: How the session was authenticated (see :mod:`flask_tokenauth._assurance`):
    #: RFC 8176 ``amr`` values, space-separated; the NIST ``aal``; when the
    #: user last authenticated (``auth_time``, renewed by a step-up); and
    #: what it may reach: ``"pending"`` (its second factor only) or
    #: ``"enroll"`` (enrolment only, ``TOKENAUTH_MFA = "required"``), else
    #: ``None``.  ``amr``... ``None``: a session of before 0009 (read as a
    #: password login at ``created_at``).
    amr: Mapped[str | None] = mapped_column(String(64))
    aal: Mapped[int | None] = mapped_column(Integer)
    auth_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mfa_state: Mapped[str | None] = mapped_column(String(8))

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id}>"


class RefreshToken(Base):
    """One refresh token.  Only its keyed hash is stored.

    Every token belongs to a *family*: the chain of tokens that one login
    produced by rotation.  ``family_expires_at`` is the family's absolute
    lifetime, copied to every member, which rotation never extends.
    ``used_at`` marks a rotated token; presenting it again is reuse.
    """

    __tablename__ = TABLE_PREFIX + "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    #: The token this one replaced; ``None`` for the first of a family.
    parent_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    family_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When this spent token got its one grace answer (a repeat within the
    #: reuse interval); any later repeat is reuse.
    grace_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(f"ix_{TABLE_PREFIX}refresh_tokens_expires_at", "expires_at"),
        # ``parent_id`` refers to ids: never reuse one.
        {"sqlite_autoincrement": True},
    )

    def __repr__(self) -> str:
        return f"<RefreshToken {self.id} family={self.family_id}>"


class UserCutoff(Base):
    """A user's "not before": access tokens issued before
    ``tokens_valid_after`` are refused ("log out everywhere", password
    change).  Read only by the database revocation store (Redis keeps its
    own copy); keyed by ``sub`` so that it works for the host's users too.
    """

    __tablename__ = TABLE_PREFIX + "user_cutoffs"

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    tokens_valid_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<UserCutoff {self.user_id} {self.tokens_valid_after}>"


class RevocationEvent(Base):
    """One revocation, in the order committed: what each process's copy of
    the revocations (see :mod:`flask_tokenauth._dbmirror`) reads, those
    newer than the last it saw.

    ``kind`` is ``"session"`` (``session_id`` revoked), ``"cutoff"`` (the
    user's tokens issued before ``not_before``, Unix seconds, refused) or
    ``"user-gone"`` (a built-in user deleted, even by raw SQL: a trigger of
    migration 0005 writes it).  Written in the revoking transaction, which
    locks the table first on PostgreSQL so that ids are committed in order.
    Kept for the longest access-token lifetime (``flask tokenauth purge``).
    The table's name is also the PostgreSQL ``NOTIFY`` channel.
    """

    __tablename__ = TABLE_PREFIX + "revocation_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    not_before: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), index=True
    )

    __table_args__ = ({"sqlite_autoincrement": True},)

    def __repr__(self) -> str:
        return f"<RevocationEvent {self.id} {self.kind}>"


class EmailToken(Base):
    """A one-time link (or code) mailed by an account flow (see
    :mod:`flask_tokenauth._linktokens`).  A link carries ``<id>.<secret>``:
    ``id`` finds the row, and only a keyed hash of the secret is stored,
    compared in constant time.  ``used_at`` set: spent."""

    __tablename__ = TABLE_PREFIX + "email_tokens"
    __table_args__ = (
        Index(None, "user_id", "purpose"),
        # A sign-in code is looked up by its address: without it, each
        # ``/email-login/verify`` would scan every row (decoys included).
        Index(None, "email", "purpose"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: ``"verify"``, ``"reset"``, ``"change"``, ``"cancel"``, ``"login"``.
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    #: The address the flow is about (the new one, for an address change).
    email: Mapped[str] = mapped_column(String(320))
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: What the token is bound to when issued (a reset: the user's password
    #: fingerprint): it dies when that changes.
    binding: Mapped[str | None] = mapped_column(String(64))
    #: A sign-in code's keyed hash, and its wrong tries so far.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The token issued with this one (an address change's cancel link
    #: names its confirm link).
    related_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<EmailToken {self.id} {self.purpose} user={self.user_id}>"


class EmailVerification(Base):
    """The verified address of a host user whose model has no column for
    it, keyed by ``sub``: verified while the user's address is this one."""

    __tablename__ = TABLE_PREFIX + "email_verifications"

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<EmailVerification {self.user_id} {self.email!r}>"


class TotpSecret(Base):
    """A user's authenticator-app secret, encrypted at rest."""

    __tablename__ = TABLE_PREFIX + "totp_secrets"

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    #: The secret, encrypted (see :mod:`flask_tokenauth._totp`).
    secret: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: ``None`` until a first code confirmed the enrolment.
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The last time step a code was accepted for: never accepted again.
    last_step: Mapped[int | None] = mapped_column(BigInteger)

    def __repr__(self) -> str:
        return f"<TotpSecret user={self.user_id}>"


class RecoveryCode(Base):
    """One single-use recovery code; only its keyed hash is stored."""

    __tablename__ = TABLE_PREFIX + "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<RecoveryCode {self.id} user={self.user_id}>"


class Passkey(Base):
    """A WebAuthn credential of a user (see :mod:`flask_tokenauth._passkeys`)."""

    __tablename__ = TABLE_PREFIX + "passkeys"

    #: The credential id, base64url.
    id: Mapped[str] = mapped_column(String(1400), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), index=True)
    public_key: Mapped[str] = mapped_column(String(2048))
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    aaguid: Mapped[str | None] = mapped_column(String(36))
    transports: Mapped[str | None] = mapped_column(String(255))
    #: Synced (backed up) credential: ``amr`` ``swk``; else ``hwk``.
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The WebAuthn user handle the credential was created with (base64url
    #: of an HMAC of the ``sub``, never the address): checked against the
    #: one an authenticator returns at sign-in.
    user_handle: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<Passkey {self.id[:12]} user={self.user_id}>"


class WebAuthnChallenge(Base):
    """A passkey ceremony's challenge, outstanding: deleted when spent (one
    ``DELETE``, so two requests cannot both spend it) or past its expiry
    (see :mod:`flask_tokenauth._passkey_challenges`)."""

    __tablename__ = TABLE_PREFIX + "webauthn_challenges"

    #: The challenge, base64url (as the client's ``clientDataJSON`` has it).
    challenge: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``register``, ``login`` or ``verify``.
    purpose: Mapped[str] = mapped_column(String(16))
    #: The session (``sid``) it is bound to (``register``, ``verify``).
    session_id: Mapped[str | None] = mapped_column(String(32))
    #: SHA-256 of the sign-in cookie it is bound to (``login``).
    binding: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"<WebAuthnChallenge {self.purpose}>"


def _log_user_deletions() -> None:
    """Deleting a built-in user, even by raw SQL, logs a ``user-gone``
    event; on PostgreSQL after locking the log, as the library's own writes
    do, and notifying its channel.  Migration 0005 creates the same trigger;
    this makes ``metadata.create_all`` do so too."""
    trigger = f"{TABLE_PREFIX}users_gone"
    users = User.__tablename__
    events = RevocationEvent.__tablename__
    insert = (
        f"INSERT INTO {events} (kind, user_id, created_at) VALUES"
        " ('user-gone', CAST(OLD.id AS VARCHAR(255)), {now});"
    )
    statements = [
        (
            "sqlite",
            f"CREATE TRIGGER {trigger} AFTER DELETE ON {users} BEGIN"
            f" {insert.format(now='CURRENT_TIMESTAMP')} END",
        ),
        (
            "postgresql",
            f"CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN LOCK TABLE {events} IN EXCLUSIVE"
            f" MODE; {insert.format(now='now()')}"
            f" PERFORM pg_notify('{events}', ''); RETURN NULL; END $$",
        ),
        (
            "postgresql",
            f"CREATE TRIGGER {trigger} AFTER DELETE ON {users}"
            f" FOR EACH ROW EXECUTE PROCEDURE {trigger}()",
        ),
    ]
    statements += _truncation_statements()
    for dialect, statement in statements:
        ddl = DDL(statement)  # type: ignore[no-untyped-call]
        event.listen(User.__table__, "after_create", ddl.execute_if(dialect=dialect))


def _truncation_statements() -> list[tuple[str, str]]:
    """PostgreSQL: ``TRUNCATE tokenauth_users`` fires no row trigger; a
    statement trigger of its own, run before the rows go, revokes the live
    sessions of the table's users (and their refresh tokens) and logs them
    for each process's copy.  Session rows, not ``user-gone`` rows: a
    ``RESTART IDENTITY`` gives the next user the same id.  Migration 0006
    creates the same trigger."""
    trigger = f"{TABLE_PREFIX}users_truncated"
    users = User.__tablename__
    sessions = Session.__tablename__
    tokens = RefreshToken.__tablename__
    events = RevocationEvent.__tablename__
    revoked = (
        f"{sessions}.revoked_at = now() AND {sessions}.user_id IN"
        f" (SELECT CAST(id AS VARCHAR(255)) FROM {users})"
    )
    return [
        (
            "postgresql",
            f"CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN UPDATE {sessions} SET revoked_at = now()"
            " WHERE revoked_at IS NULL AND user_id IN"
            f" (SELECT CAST(id AS VARCHAR(255)) FROM {users});"
            f" UPDATE {tokens} SET revoked_at = now() WHERE revoked_at IS NULL"
            f" AND family_id IN (SELECT id FROM {sessions} WHERE {revoked});"
            f" LOCK TABLE {events} IN EXCLUSIVE MODE;"
            f" INSERT INTO {events} (kind, session_id, user_id, created_at)"
            f" SELECT 'session', id, user_id, now() FROM {sessions} WHERE {revoked}"
            " ORDER BY id;"
            f" PERFORM pg_notify('{events}', ''); RETURN NULL; END $$",
        ),
        (
            "postgresql",
            f"CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {users}"
            f" FOR EACH STATEMENT EXECUTE PROCEDURE {trigger}()",
        ),
    ]


_log_user_deletions()
