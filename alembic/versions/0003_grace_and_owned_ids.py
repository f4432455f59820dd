"""refresh_tokens.grace_used_at; ids never reused on SQLite; sessions revoked

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

* ``refresh_tokens.grace_used_at``: a spent token gets one grace answer
  within the reuse interval, claimed by setting it.
* ``users`` and ``refresh_tokens`` get AUTOINCREMENT on SQLite, whose plain
  INTEGER PRIMARY KEY hands the id of a deleted newest row to the next one
  (a deleted user's leftover sessions would then log into the newcomer's
  account).  SQLite cannot alter a primary key: both tables are recreated.
  PostgreSQL's sequences never reuse a value; nothing to do there.
* Session ids are now bound to their user (a keyed hash of the user id in
  the id, checked on every access token): the ids made before are not, so
  every live session is revoked and its users log in again, once.

Under the tables' 0.1 names on a database made by 0.1, under the prefixed
names otherwise (see 0001).
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


OLD_NAMES = {"users": "users", "sessions": "auth_sessions", "tokens": "refresh_tokens"}
NEW_NAMES = {
    "users": "tokenauth_users",
    "sessions": "tokenauth_sessions",
    "tokens": "tokenauth_refresh_tokens",
}


def _names():
    """0.1's names on a database made by 0.1 (see 0001)."""
    if op.get_context().as_sql:
        return NEW_NAMES
    if sa.inspect(op.get_bind()).has_table("tokenauth_users"):
        return NEW_NAMES
    return OLD_NAMES


def _is_sqlite():
    return op.get_context().dialect.name == "sqlite"


def upgrade():
    sqlite = _is_sqlite()
    names = _names()
    users, sessions, tokens = names["users"], names["sessions"], names["tokens"]
    # The recreation needs foreign keys off (alembic/env.py turns them off on
    # SQLite): with them on, dropping the old users table would cascade.
    with op.batch_alter_table(
        tokens,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(
            sa.Column("grace_used_at", sa.DateTime(timezone=True), nullable=True)
        )
    if sqlite:
        with op.batch_alter_table(
            users, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    for table in (sessions, tokens):
        op.execute(
            f"UPDATE {table} SET revoked_at = CURRENT_TIMESTAMP"
            " WHERE revoked_at IS NULL"
        )


def downgrade():
    # The sessions revoked on the way up stay revoked.
    sqlite = _is_sqlite()
    names = _names()
    users, tokens = names["users"], names["tokens"]
    if sqlite:
        with op.batch_alter_table(
            users, recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
    with op.batch_alter_table(
        tokens,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": False},
    ) as batch:
        batch.drop_column("grace_used_at")
