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

A database created since 0.2 has the prefixed names from 0001 on: there
only the columns change (SQLite: each table is moved aside, recreated and
copied).

The downgrade converts back to the 0.1 schema, under the 0.1 names where
they are all free; where the host has a table of one of those names (0.1
could never have been installed there) the tables keep the prefixed names.
Sessions and tokens of users that the 0.1 schema cannot name (no row in
``users``: a host user, or a deleted one) are deleted, and so are the
cutoffs of such users.
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_NAMES = {"users": "users", "sessions": "auth_sessions", "tokens": "refresh_tokens"}
NEW_NAMES = {
    "users": "tokenauth_users",
    "sessions": "tokenauth_sessions",
    "tokens": "tokenauth_refresh_tokens",
}
#: Where SQLite's tables wait while they are recreated under the same name.
PARKED_NAMES = {key: f"_tokenauth_0004_{key}" for key in NEW_NAMES}
#: The tables with an integer id, whose sequence PostgreSQL names after them.
SEQUENCES = {"users", "tokens"}
#: The columns with an index, per table.
INDEXED = {
    "sessions": ("user_id",),
    "tokens": ("user_id", "family_id", "parent_id", "expires_at"),
}


def _has_table(name):
    return sa.inspect(op.get_bind()).has_table(name)


def _names():
    """0.1's names on a database made by 0.1 (see 0001)."""
    if op.get_context().as_sql or _has_table("tokenauth_users"):
        return NEW_NAMES
    return OLD_NAMES


def _pairs(old, new):
    return [(old[key], new[key]) for key in ("users", "sessions", "tokens")]


def _rename(old, new):
    """Rename the tables with their constraints, indexes and sequences
    (PostgreSQL; SQLite only moves tables aside, see :func:`_park`)."""
    for key, (old_table, new_table) in zip(NEW_NAMES, _pairs(old, new)):
        op.rename_table(old_table, new_table)
        if key in SEQUENCES:
            op.execute(
                f"ALTER SEQUENCE {old_table}_id_seq RENAME TO {new_table}_id_seq"
            )
        constraints = [("pk_{}", "pk_{}")]
        if key == "users":
            constraints.append(("uq_{}_email", "uq_{}_email"))
        if key == "tokens":
            constraints.append(("uq_{}_token_hash", "uq_{}_token_hash"))
        for old_name, new_name in constraints:
            op.execute(
                f"ALTER TABLE {new_table} RENAME CONSTRAINT"
                f" {old_name.format(old_table)} TO {new_name.format(new_table)}"
            )
        for column in INDEXED.get(key, ()):
            op.execute(
                f"ALTER INDEX ix_{old_table}_{column}"
                f" RENAME TO ix_{new_table}_{column}"
            )


def _park(names):
    """SQLite: move the tables aside (their indexes dropped, their names
    being global) so that they can be created again under ``names``."""
    for key, columns in INDEXED.items():
        for column in columns:
            op.drop_index(f"ix_{names[key]}_{column}", table_name=names[key])
    for old, new in _pairs(names, PARKED_NAMES):
        op.rename_table(old, new)
    return PARKED_NAMES


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
    old = _names()
    _create_cutoffs()
    op.execute(
        "INSERT INTO tokenauth_user_cutoffs (user_id, tokens_valid_after)"
        f" SELECT CAST(id AS VARCHAR(255)), tokens_valid_after FROM {old['users']}"
        " WHERE tokens_valid_after IS NOT NULL"
    )
    string_id = sa.String(length=255)
    new = NEW_NAMES
    if _is_sqlite():
        source = _park(new) if old is new else old
        _users_table(new["users"], with_cutoff=False)
        _sessions_table(new["sessions"], None, string_id)
        _tokens_table(new["tokens"], None, string_id)
        _sqlite_copy(
            _pairs(source, new), "CAST(user_id AS VARCHAR(255))", ("", ""), "", ""
        )
        return
    for key in ("sessions", "tokens"):
        op.drop_constraint(
            f"fk_{old[key]}_user_id_{old['users']}", old[key], type_="foreignkey"
        )
    op.drop_column(old["users"], "tokens_valid_after")
    if old is not new:
        _rename(old, new)
    for key in ("sessions", "tokens"):
        op.alter_column(
            new[key],
            "user_id",
            type_=string_id,
            existing_type=sa.Integer(),
            existing_nullable=False,
            postgresql_using="user_id::text",
        )


#: The rows the 0.1 schema can hold: those of a user of ``users``.
_OWNED = "WHERE user_id IN (SELECT CAST(id AS VARCHAR(255)) FROM {users})"


def downgrade():
    new = NEW_NAMES
    # 0.1's names, unless the host has a table of one of them.
    free = not any(_has_table(name) for name in OLD_NAMES.values())
    old = OLD_NAMES if free else NEW_NAMES
    if _is_sqlite():
        source = new if old is not new else _park(new)
        _users_table(old["users"], with_cutoff=True)
        _sessions_table(old["sessions"], old["users"], sa.Integer())
        _tokens_table(old["tokens"], old["users"], sa.Integer())
        _sqlite_copy(
            _pairs(source, old),
            "CAST(user_id AS INTEGER)",
            (
                ", tokens_valid_after",
                ", (SELECT c.tokens_valid_after FROM tokenauth_user_cutoffs c"
                f" WHERE c.user_id = CAST({source['users']}.id AS VARCHAR(255)))",
            ),
            _OWNED.format(users=source["users"]),
            _OWNED.format(users=source["users"]),
        )
    else:
        for key in ("tokens", "sessions"):
            op.execute(
                f"DELETE FROM {new[key]} WHERE user_id NOT IN"
                f" (SELECT CAST(id AS VARCHAR(255)) FROM {new['users']})"
            )
            op.alter_column(
                new[key],
                "user_id",
                type_=sa.Integer(),
                existing_type=sa.String(length=255),
                existing_nullable=False,
                postgresql_using="user_id::integer",
            )
        if old is not new:
            _rename(new, old)
        users = old["users"]
        op.add_column(users, _timestamp("tokens_valid_after", nullable=True))
        op.execute(
            f"UPDATE {users} SET tokens_valid_after = (SELECT c.tokens_valid_after"
            " FROM tokenauth_user_cutoffs c"
            f" WHERE c.user_id = CAST({users}.id AS VARCHAR(255)))"
        )
        for key in ("sessions", "tokens"):
            op.create_foreign_key(
                f"fk_{old[key]}_user_id_{users}",
                old[key],
                users,
                ["user_id"],
                ["id"],
                ondelete="CASCADE",
            )
    op.drop_table("tokenauth_user_cutoffs")
