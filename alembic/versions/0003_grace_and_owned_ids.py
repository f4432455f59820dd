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
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _is_sqlite():
    return op.get_context().dialect.name == "sqlite"


def upgrade():
    sqlite = _is_sqlite()
    # The recreation needs foreign keys off (alembic/env.py turns them off on
    # SQLite): with them on, dropping the old users table would cascade.
    with op.batch_alter_table(
        "refresh_tokens",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(
            sa.Column("grace_used_at", sa.DateTime(timezone=True), nullable=True)
        )
    if sqlite:
        with op.batch_alter_table(
            "users", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    op.execute(
        "UPDATE auth_sessions SET revoked_at = CURRENT_TIMESTAMP"
        " WHERE revoked_at IS NULL"
    )
    op.execute(
        "UPDATE refresh_tokens SET revoked_at = CURRENT_TIMESTAMP"
        " WHERE revoked_at IS NULL"
    )


def downgrade():
    # The sessions revoked on the way up stay revoked.
    sqlite = _is_sqlite()
    if sqlite:
        with op.batch_alter_table(
            "users", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
    with op.batch_alter_table(
        "refresh_tokens",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": False},
    ) as batch:
        batch.drop_column("grace_used_at")
