"""Account lifecycle: one-time mail links, verified addresses

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

* ``tokenauth_email_tokens``: the links (and sign-in codes) the account
  flows mail; only a keyed hash of each secret is stored.
* ``tokenauth_email_verifications``: the verified address of a host user
  whose model has no column for it, keyed by ``sub``.
* ``tokenauth_users.email_verified_at``: the built-in users' verification.
* ``tokenauth_sessions.email_verified``: the ``email_verified`` claim of
  the tokens a session's refreshes issue.

Plain ``ADD COLUMN`` (no batch copy) on SQLite: the table's triggers stay.
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TOKENS = "tokenauth_email_tokens"
VERIFICATIONS = "tokenauth_email_verifications"


def upgrade():
    op.create_table(
        TOKENS,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("related_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TOKENS}"),
    )
    op.create_index(f"ix_{TOKENS}_user_id", TOKENS, ["user_id", "purpose"])
    # Sign-in codes are looked up by address.
    op.create_index(f"ix_{TOKENS}_email", TOKENS, ["email", "purpose"])
    op.create_table(
        VERIFICATIONS,
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=f"pk_{VERIFICATIONS}"),
    )
    op.add_column(
        "tokenauth_users",
        sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "tokenauth_sessions",
        sa.Column("email_verified", sa.Boolean(), nullable=True),
    )


def downgrade():
    # SQLite 3.35+ drops a plain column in place (no table copy: triggers stay).
    op.drop_column("tokenauth_sessions", "email_verified")
    op.drop_column("tokenauth_users", "email_verified_at")
    op.drop_table(VERIFICATIONS)
    op.drop_index(f"ix_{TOKENS}_email", table_name=TOKENS)
    op.drop_index(f"ix_{TOKENS}_user_id", table_name=TOKENS)
    op.drop_table(TOKENS)
