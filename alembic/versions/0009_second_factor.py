"""Second factor: TOTP secrets, recovery codes, passkeys, session assurance

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

* ``tokenauth_totp_secrets``: a user's authenticator-app secret (encrypted),
  its confirmation and the last time step accepted.
* ``tokenauth_recovery_codes``: keyed hashes of single-use recovery codes.
* ``tokenauth_passkeys``: WebAuthn credentials, keyed by credential id.
* ``tokenauth_webauthn_challenges``: outstanding passkey challenges (single
  use, minutes long).
* ``tokenauth_sessions``: ``amr``, ``aal``, ``auth_time``, ``mfa_state``
  (``NULL`` for sessions of before: a password login at ``created_at``).

Plain ``ADD COLUMN`` (no batch copy) on SQLite.
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TOTP = "tokenauth_totp_secrets"
CODES = "tokenauth_recovery_codes"
PASSKEYS = "tokenauth_passkeys"
CHALLENGES = "tokenauth_webauthn_challenges"
SESSIONS = "tokenauth_sessions"
SESSION_COLUMNS = (
    ("amr", sa.String(length=64)),
    ("aal", sa.Integer()),
    ("auth_time", sa.DateTime(timezone=True)),
    ("mfa_state", sa.String(length=8)),
)


def upgrade():
    op.create_table(
        TOTP,
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=f"pk_{TOTP}"),
    )
    op.create_table(
        CODES,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{CODES}"),
    )
    op.create_index(f"ix_{CODES}_user_id", CODES, ["user_id"])
    op.create_table(
        PASSKEYS,
        sa.Column("id", sa.String(length=1400), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("public_key", sa.String(length=2048), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=True),
        sa.Column("transports", sa.String(length=255), nullable=True),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_handle", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{PASSKEYS}"),
    )
    op.create_index(f"ix_{PASSKEYS}_user_id", PASSKEYS, ["user_id"])
    op.create_table(
        CHALLENGES,
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("challenge", name=f"pk_{CHALLENGES}"),
    )
    op.create_index(f"ix_{CHALLENGES}_expires_at", CHALLENGES, ["expires_at"])
    for name, type_ in SESSION_COLUMNS:
        op.add_column(SESSIONS, sa.Column(name, type_, nullable=True))


def downgrade():
    for name, _ in reversed(SESSION_COLUMNS):
        op.drop_column(SESSIONS, name)
    op.drop_index(f"ix_{CHALLENGES}_expires_at", table_name=CHALLENGES)
    op.drop_table(CHALLENGES)
    op.drop_index(f"ix_{PASSKEYS}_user_id", table_name=PASSKEYS)
    op.drop_table(PASSKEYS)
    op.drop_index(f"ix_{CODES}_user_id", table_name=CODES)
    op.drop_table(CODES)
    op.drop_table(TOTP)
