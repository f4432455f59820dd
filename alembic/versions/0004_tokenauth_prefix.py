"""Prefixed tables; user ids as strings, without foreign keys; cutoffs table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

* ``users``, ``auth_sessions`` and ``refresh_tokens`` become
  ``tokenauth_users``, ``tokenauth_sessions`` and ``tokenauth_refresh_tokens``
  (a host app's own ``users`` table no longer collides), data kept, their
  constraints and indexes renamed to the naming convention's names.
* ``user_id`` of sessions and refresh tokens becomes a string, the user's
  ``sub`` (the host's primary key may be an integer, a UUID or a string),
  and their foreign keys to ``users`` are dropped: the user may live in a
  table that is not ours.
* ``users.tokens_valid_after`` moves to ``tokenauth_user_cutoffs``, keyed by
  the same string.

PostgreSQL renames in place.  SQLite cannot alter a column's type or drop a
foreign key: each table is created under its new name and the rows copied
(alembic/env.py turns foreign keys off for migrations), keeping the
AUTOINCREMENT counters so that ids are never reused.

The downgrade converts back; sessions and tokens of users that the 0.1
schema cannot name (no row in ``users``: a host user, or a deleted one) are
deleted, and so are the cutoffs of such users.
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: (old name, new name, sequence of the integer id or None)
TABLES = [
    ("users", "tokenauth_users", "users_id_seq"),
    ("auth_sessions", "tokenauth_sessions", None),
    ("refresh_tokens", "tokenauth_refresh_tokens", "refresh_tokens_id_seq"),
]
#: (table's new name, old index name, new index name)
INDEXES = [
    ("tokenauth_sessions", "ix_auth_sessions_user_id", "ix_tokenauth_sessions_user_id"),
    *(
        (
            "tokenauth_refresh_tokens",
            f"ix_refresh_tokens_{column}",
            f"ix_tokenauth_refresh_tokens_{column}",
        )
        for column in ("user_id", "family_id", "parent_id", "expires_at")
    ),
]
#: (table's new name, old constraint name, new constraint name)
CONSTRAINTS = [
    ("tokenauth_users", "pk_users", "pk_tokenauth_users"),
    ("tokenauth_users", "uq_users_email", "uq_tokenauth_users_email"),
    ("tokenauth_sessions", "pk_auth_sessions", "pk_tokenauth_sessions"),
    ("tokenauth_refresh_tokens", "pk_refresh_tokens", "pk_tokenauth_refresh_tokens"),
    (
        "tokenauth_refresh_tokens",
        "uq_refresh_tokens_token_hash",
        "uq_tokenauth_refresh_tokens_token_hash",
    ),
]
#: (old table, foreign key)
FOREIGN_KEYS = [
    ("auth_sessions", "fk_auth_sessions_user_id_users"),
    ("refresh_tokens", "fk_refresh_tokens_user_id_users"),
]


def _timestamp(name, nullable=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _users_table(name, with_cutoff):
    columns = [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
    ]
    if with_cutoff:
        columns.append(_timestamp("tokens_valid_after", nullable=True))
    op.create_table(
        name,
        *columns,
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.UniqueConstraint("email", name=f"uq_{name}_email"),
        sqlite_autoincrement=True,
    )


def _sessions_table(name, users, user_id_type):
    fks = []
    if users:
        fks.append(
            sa.ForeignKeyConstraint(
                ["user_id"],
                [f"{users}.id"],
                name=f"fk_{name}_user_id_{users}",
                ondelete="CASCADE",
            )
        )
    op.create_table(
        name,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", user_id_type, nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        _timestamp("created_at"),
        _timestamp("last_used_at"),
        _timestamp("expires_at"),
        _timestamp("revoked_at", nullable=True),
        *fks,
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
    )
    op.create_index(f"ix_{name}_user_id", name, ["user_id"])


def _tokens_table(name, users, user_id_type):
    fks = []
    if users:
        fks.append(
            sa.ForeignKeyConstraint(
                ["user_id"],
                [f"{users}.id"],
                name=f"fk_{name}_user_id_{users}",
                ondelete="CASCADE",
            )
        )
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", user_id_type, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=32), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("family_expires_at"),
        _timestamp("used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        _timestamp("grace_used_at", nullable=True),
        *fks,
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.UniqueConstraint("token_hash", name=f"uq_{name}_token_hash"),
        sqlite_autoincrement=True,
    )
    for column in ("user_id", "family_id", "parent_id", "expires_at"):
        op.create_index(f"ix_{name}_{column}", name, [column])


def _create_cutoffs():
    op.create_table(
        "tokenauth_user_cutoffs",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        _timestamp("tokens_valid_after"),
        sa.PrimaryKeyConstraint("user_id", name="pk_tokenauth_user_cutoffs"),
    )


def _is_sqlite():
    return op.get_context().dialect.name == "sqlite"


def _sqlite_copy(pairs, user_id_sql, users_columns, sessions_where, tokens_where):
    """SQLite: create each table under its new name (done by the caller),
    copy the rows, carry the AUTOINCREMENT counter, drop the old table."""
    (old_users, new_users), (old_sessions, new_sessions), (
        old_tokens,
        new_tokens,
    ) = pairs
    op.execute(
        f"INSERT INTO {new_users} (id, email, password_hash, created_at, updated_at"
        f"{users_columns[0]}) SELECT id, email, password_hash, created_at,"
        f" updated_at{users_columns[1]} FROM {old_users}"
    )
    session_columns = (
        "id, {}, user_agent, ip_address, created_at, last_used_at,"
        " expires_at, revoked_at"
    )
    op.execute(
        f"INSERT INTO {new_sessions} ({session_columns.format('user_id')})"
        f" SELECT {session_columns.format(user_id_sql)} FROM {old_sessions}"
        f" {sessions_where}"
    )
    token_columns = (
        "id, {}, token_hash, family_id, created_at, expires_at,"
        " family_expires_at, used_at, revoked_at, parent_id, grace_used_at"
    )
    op.execute(
        f"INSERT INTO {new_tokens} ({token_columns.format('user_id')})"
        f" SELECT {token_columns.format(user_id_sql)} FROM {old_tokens}"
        f" {tokens_where}"
    )
    for old, new in ((old_users, new_users), (old_tokens, new_tokens)):
        # The counter, not just MAX(id): the newest rows may have been deleted.
        op.execute(
            f"UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq"
            f" FROM sqlite_sequence WHERE name = '{old}'), 0)) WHERE name = '{new}'"
        )
        op.execute(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT '{new}', seq"
            f" FROM sqlite_sequence WHERE name = '{old}' AND NOT EXISTS"
            f" (SELECT 1 FROM sqlite_sequence WHERE name = '{new}')"
        )
    for old in (old_tokens, old_sessions, old_users):
        op.drop_table(old)


def upgrade():
    _create_cutoffs()
    op.execute(
        "INSERT INTO tokenauth_user_cutoffs (user_id, tokens_valid_after)"
        " SELECT CAST(id AS VARCHAR(255)), tokens_valid_after FROM users"
        " WHERE tokens_valid_after IS NOT NULL"
    )
    string_id = sa.String(length=255)
    if _is_sqlite():
        _users_table("tokenauth_users", with_cutoff=False)
        _sessions_table("tokenauth_sessions", None, string_id)
        _tokens_table("tokenauth_refresh_tokens", None, string_id)
        _sqlite_copy(
            [(old, new) for old, new, _ in TABLES],
            "CAST(user_id AS VARCHAR(255))",
            ("", ""),
            "",
            "",
        )
        return
    for table, fk in FOREIGN_KEYS:
        op.drop_constraint(fk, table, type_="foreignkey")
    op.drop_column("users", "tokens_valid_after")
    for old, new, sequence in TABLES:
        op.rename_table(old, new)
        if sequence:
            op.execute(f"ALTER SEQUENCE {sequence} RENAME TO {new}_id_seq")
    for table, old, new in CONSTRAINTS:
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}")
    for _table, old, new in INDEXES:
        op.execute(f"ALTER INDEX {old} RENAME TO {new}")
    for table in ("tokenauth_sessions", "tokenauth_refresh_tokens"):
        op.alter_column(
            table,
            "user_id",
            type_=string_id,
            existing_type=sa.Integer(),
            existing_nullable=False,
            postgresql_using="user_id::text",
        )


#: The rows the 0.1 schema can hold: those of a user of ``users``.
_OWNED = "WHERE user_id IN (SELECT CAST(id AS VARCHAR(255)) FROM {users})"


def downgrade():
    if _is_sqlite():
        _users_table("users", with_cutoff=True)
        _sessions_table("auth_sessions", "users", sa.Integer())
        _tokens_table("refresh_tokens", "users", sa.Integer())
        _sqlite_copy(
            [(new, old) for old, new, _ in TABLES],
            "CAST(user_id AS INTEGER)",
            (
                ", tokens_valid_after",
                ", (SELECT c.tokens_valid_after FROM tokenauth_user_cutoffs c"
                " WHERE c.user_id = CAST(tokenauth_users.id AS VARCHAR(255)))",
            ),
            _OWNED.format(users="tokenauth_users"),
            _OWNED.format(users="tokenauth_users"),
        )
    else:
        for table in ("tokenauth_refresh_tokens", "tokenauth_sessions"):
            op.execute(
                f"DELETE FROM {table} WHERE user_id NOT IN"
                " (SELECT CAST(id AS VARCHAR(255)) FROM tokenauth_users)"
            )
            op.alter_column(
                table,
                "user_id",
                type_=sa.Integer(),
                existing_type=sa.String(length=255),
                existing_nullable=False,
                postgresql_using="user_id::integer",
            )
        for _table, old, new in INDEXES:
            op.execute(f"ALTER INDEX {new} RENAME TO {old}")
        for table, old, new in CONSTRAINTS:
            op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {new} TO {old}")
        for old, new, sequence in TABLES:
            if sequence:
                op.execute(f"ALTER SEQUENCE {new}_id_seq RENAME TO {sequence}")
            op.rename_table(new, old)
        op.add_column("users", _timestamp("tokens_valid_after", nullable=True))
        op.execute(
            "UPDATE users SET tokens_valid_after = (SELECT c.tokens_valid_after"
            " FROM tokenauth_user_cutoffs c"
            " WHERE c.user_id = CAST(users.id AS VARCHAR(255)))"
        )
        for table, fk in FOREIGN_KEYS:
            op.create_foreign_key(
                fk, table, "users", ["user_id"], ["id"], ondelete="CASCADE"
            )
    op.drop_table("tokenauth_user_cutoffs")
