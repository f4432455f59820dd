"""users and refresh_tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Since 0.2 the tables are created under their prefixed names,
``tokenauth_users`` and ``tokenauth_refresh_tokens``, so a first install
never touches a host table called ``users`` or ``refresh_tokens``.  0.1
created them as ``users`` and ``refresh_tokens``; a database made by 0.1
keeps those names until 0004 renames them.  Revisions 0002-0004 therefore
look up which names our tables have (:func:`_names`), and work under either.

One linear history with the same revision ids, rather than a second base
revision: a database of 0.1 records ``0001``-``0005`` in its version table,
and Alembic has no "one parent or the other" revision that both lines could
join, so any later revision would have to be written twice.
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = ("tokenauth",)
depends_on = None

#: Our tables as 0.1 named them, and as this release names them.
OLD_NAMES = {"users": "users", "tokens": "refresh_tokens"}
NEW_NAMES = {"users": "tokenauth_users", "tokens": "tokenauth_refresh_tokens"}


def _names():
    """The names our tables have here: 0.1's on a database made by 0.1.

    ``tokenauth_users`` exists from 0001 on, unless 0.1 made the database
    (then it appears in 0004).  Offline (``--sql``) there is nothing to look
    at: a new database is assumed.
    """
    if op.get_context().as_sql:
        return NEW_NAMES
    if sa.inspect(op.get_bind()).has_table("tokenauth_users"):
        return NEW_NAMES
    return OLD_NAMES


def upgrade():
    users, tokens = NEW_NAMES["users"], NEW_NAMES["tokens"]
    op.create_table(
        users,
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
        sa.PrimaryKeyConstraint("id", name=f"pk_{users}"),
        sa.UniqueConstraint("email", name=f"uq_{users}_email"),
    )
    op.create_table(
        tokens,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("family_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{users}.id"],
            name=f"fk_{tokens}_user_id_{users}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{tokens}"),
        sa.UniqueConstraint("token_hash", name=f"uq_{tokens}_token_hash"),
    )
    for column in ("user_id", "family_id", "expires_at"):
        op.create_index(f"ix_{tokens}_{column}", tokens, [column])


def downgrade():
    names = _names()
    users, tokens = names["users"], names["tokens"]
    for column in ("expires_at", "family_id", "user_id"):
        op.drop_index(f"ix_{tokens}_{column}", table_name=tokens)
    op.drop_table(tokens)
    op.drop_table(users)
