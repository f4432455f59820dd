"""The log of revocations, read by each process's copy of them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

* ``tokenauth_revocation_events``: one row per revoked session, per user
  cutoff ("log out everywhere", password change) and per deleted built-in
  user, in commit order.  The database revocation store keeps a copy of it
  in each process and reads only the rows newer than the last it saw.
* A trigger on ``tokenauth_users`` writes a ``user-gone`` row for every
  deleted user, so a deletion by raw SQL reaches the copies too.  On
  PostgreSQL it locks the log first (as the library's own writes do, so that
  ids are committed in order) and notifies the log's channel.
* The revocations already made (revoked sessions, cutoffs) are copied in,
  so that a copy loaded right after the upgrade misses none; ``flask
  tokenauth purge`` deletes those older than the access-token lifetime.

The downgrade drops the trigger and the table.
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "tokenauth_revocation_events"
TRIGGER = "tokenauth_users_gone"


def _is_sqlite():
    return op.get_context().dialect.name == "sqlite"


def upgrade():
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("not_before", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sqlite_autoincrement=True,
    )
    op.create_index(f"ix_{TABLE}_created_at", TABLE, ["created_at"])
    if _is_sqlite():
        epoch = "CAST(strftime('%s', tokens_valid_after) AS INTEGER)"
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON tokenauth_users BEGIN"
            f" INSERT INTO {TABLE} (kind, user_id, created_at) VALUES"
            " ('user-gone', CAST(OLD.id AS VARCHAR(255)), CURRENT_TIMESTAMP);"
            " END"
        )
    else:
        epoch = "CAST(floor(extract(epoch FROM tokens_valid_after)) AS BIGINT)"
        op.execute(
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN LOCK TABLE {TABLE} IN EXCLUSIVE MODE;"
            f" INSERT INTO {TABLE} (kind, user_id, created_at)"
            " VALUES ('user-gone', CAST(OLD.id AS VARCHAR(255)), now());"
            f" PERFORM pg_notify('{TABLE}', ''); RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON tokenauth_users"
            f" FOR EACH ROW EXECUTE PROCEDURE {TRIGGER}()"
        )
    op.execute(
        f"INSERT INTO {TABLE} (kind, session_id, user_id, created_at)"
        " SELECT 'session', id, user_id, revoked_at FROM tokenauth_sessions"
        " WHERE revoked_at IS NOT NULL ORDER BY revoked_at"
    )
    op.execute(
        f"INSERT INTO {TABLE} (kind, user_id, not_before, created_at)"
        f" SELECT 'cutoff', user_id, {epoch}, tokens_valid_after"
        " FROM tokenauth_user_cutoffs ORDER BY tokens_valid_after"
    )


def downgrade():
    if _is_sqlite():
        op.execute(f"DROP TRIGGER {TRIGGER}")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER} ON tokenauth_users")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    op.drop_index(f"ix_{TABLE}_created_at", table_name=TABLE)
    op.drop_table(TABLE)
