"""Sessions bound to the identity they were issued to

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

``tokenauth_sessions.user_identity``: a keyed fingerprint (HMAC under the
refresh secret) of the user's identity value when the session started, by
default the stored password hash.  A refresh, and ``current_user``, refuse
a session whose user's value differs now: an id handed to another user by a
table reset, or a password changed outside ``/password``.

Existing sessions get ``NULL``: unbound, accepted, and bound at their next
refresh to the user who holds their id then (revoking them all would log
every user out at the upgrade).  The downgrade drops the column.
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "tokenauth_sessions"
COLUMN = "user_identity"


def upgrade():
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column(COLUMN, sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column(COLUMN)
