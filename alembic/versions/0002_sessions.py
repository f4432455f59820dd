"""sessions, refresh_tokens.parent_id, users.tokens_valid_after

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Under the tables' 0.1 names on a database made by 0.1, under the prefixed
names otherwise (see 0001).
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
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


def upgrade():
    names = _names()
    users, sessions, tokens = names["users"], names["sessions"], names["tokens"]
    op.create_table(
        sessions,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{users}.id"],
            name=f"fk_{sessions}_user_id_{users}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{sessions}"),
    )
    op.create_index(f"ix_{sessions}_user_id", sessions, ["user_id"])
    # Every existing family becomes a session (without device details).
    op.execute(
        f"INSERT INTO {sessions} (id, user_id, created_at, last_used_at,"
        " expires_at, revoked_at)"
        " SELECT family_id, MIN(user_id), MIN(created_at), MAX(created_at),"
        " MAX(family_expires_at), MAX(revoked_at)"
        f" FROM {tokens} GROUP BY family_id"
    )
    with op.batch_alter_table(tokens) as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_index(f"ix_{tokens}_parent_id", ["parent_id"])
    with op.batch_alter_table(users) as batch:
        batch.add_column(
            sa.Column("tokens_valid_after", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    names = _names()
    users, sessions, tokens = names["users"], names["sessions"], names["tokens"]
    with op.batch_alter_table(users) as batch:
        batch.drop_column("tokens_valid_after")
    with op.batch_alter_table(tokens) as batch:
        batch.drop_index(f"ix_{tokens}_parent_id")
        batch.drop_column("parent_id")
    op.drop_index(f"ix_{sessions}_user_id", table_name=sessions)
    op.drop_table(sessions)
