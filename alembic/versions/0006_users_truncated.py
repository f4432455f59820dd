"""A TRUNCATE of the built-in users ends their sessions (PostgreSQL)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

``TRUNCATE tokenauth_users`` fires no row trigger, so 0005's
``tokenauth_users_gone`` never logs those deletions and each process's copy
of the revocations keeps accepting the users' access tokens.  A
statement-level ``BEFORE TRUNCATE`` trigger (the rows can still be read
then; an ``AFTER TRUNCATE`` one would find the table empty) revokes the live
sessions of every user in the table and their refresh tokens, and logs one
``session`` row per session for the copies, notifying the log's channel.
Sessions, not ``user-gone`` rows: those name a user id, which ``TRUNCATE ...
RESTART IDENTITY`` gives to the next user.  The log is locked after the
session rows, in the order the library's own revocations take them.

SQLite has no TRUNCATE (its ``DELETE`` without ``WHERE`` fires 0005's row
trigger): nothing to do there.  The downgrade drops the trigger.
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TRIGGER = "tokenauth_users_truncated"
USERS = "tokenauth_users"
SESSIONS = "tokenauth_sessions"
TOKENS = "tokenauth_refresh_tokens"
EVENTS = "tokenauth_revocation_events"
#: The sessions this truncation revokes: those of the table's users that it
#: revoked at this transaction's ``now()``.
REVOKED = (
    f"{SESSIONS}.revoked_at = now() AND {SESSIONS}.user_id IN"
    f" (SELECT CAST(id AS VARCHAR(255)) FROM {USERS})"
)


def upgrade():
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN UPDATE {SESSIONS} SET revoked_at = now()"
        f" WHERE revoked_at IS NULL AND user_id IN"
        f" (SELECT CAST(id AS VARCHAR(255)) FROM {USERS});"
        f" UPDATE {TOKENS} SET revoked_at = now() WHERE revoked_at IS NULL"
        f" AND family_id IN (SELECT id FROM {SESSIONS} WHERE {REVOKED});"
        f" LOCK TABLE {EVENTS} IN EXCLUSIVE MODE;"
        f" INSERT INTO {EVENTS} (kind, session_id, user_id, created_at)"
        f" SELECT 'session', id, user_id, now() FROM {SESSIONS} WHERE {REVOKED}"
        " ORDER BY id;"
        f" PERFORM pg_notify('{EVENTS}', ''); RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGER} BEFORE TRUNCATE ON {USERS}"
        f" FOR EACH STATEMENT EXECUTE PROCEDURE {TRIGGER}()"
    )


def downgrade():
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER {TRIGGER} ON {USERS}")
    op.execute(f"DROP FUNCTION {TRIGGER}()")
