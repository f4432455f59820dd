"""sessions, refresh_tokens.parent_id, users.tokens_valid_after

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "auth_sessions",
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
            ["users.id"],
            name="fk_auth_sessions_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_auth_sessions"),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    # Every existing family becomes a session (without device details).
    op.execute(
        "INSERT INTO auth_sessions (id, user_id, created_at, last_used_at, expires_at,"
        " revoked_at)"
        " SELECT family_id, MIN(user_id), MIN(created_at), MAX(created_at),"
        " MAX(family_expires_at), MAX(revoked_at)"
        " FROM refresh_tokens GROUP BY family_id"
    )
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_index("ix_refresh_tokens_parent_id", ["parent_id"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("tokens_valid_after", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tokens_valid_after")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_index("ix_refresh_tokens_parent_id")
        batch.drop_column("parent_id")
    op.drop_index("ix_auth_sessions_user_id", table_name="auth_sessions")
    op.drop_table("auth_sessions")
