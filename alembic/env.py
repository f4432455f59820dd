"""Alembic environment for flask_tokenauth's own migration history.

Run from a checkout with ``alembic upgrade head`` (the URL comes from
``-x url=...``, ``TOKENAUTH_DATABASE_URL``, ``DATABASE_URL`` or alembic.ini),
or from an installed app with ``flask tokenauth db upgrade``, which passes
its engine in ``config.attributes["engine"]``.

The history keeps its own version table, ``tokenauth_alembic_version``, and
only ever looks at its own tables, so it coexists with the host app's.
"""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, make_url

VERSION_TABLE = "tokenauth_alembic_version"
OUR_TABLES = {
    "tokenauth_users",
    "tokenauth_sessions",
    "tokenauth_refresh_tokens",
    "tokenauth_user_cutoffs",
    "tokenauth_revocation_events",
    "tokenauth_email_tokens",
    "tokenauth_email_verifications",
    "tokenauth_totp_secrets",
    "tokenauth_recovery_codes",
    "tokenauth_passkeys",
    "tokenauth_webauthn_challenges",
}

config = context.config
if config.config_file_name:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

try:  # Only autogenerate needs the models; migrations never import them.
    from flask_tokenauth._engine import normalize_url
    from flask_tokenauth.models import metadata as target_metadata
except ImportError:  # pragma: no cover
    target_metadata = None
    normalize_url = make_url


def include_name(name, type_, parent_names):
    if type_ == "table":
        return name in OUR_TABLES
    return True


def database_url():
    x_args = context.get_x_argument(as_dictionary=True)
    url = (
        x_args.get("url")
        or os.environ.get("TOKENAUTH_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    # The spellings the extension accepts: ``postgres://`` and a PostgreSQL
    # URL without a driver mean psycopg2 (SQLAlchemy 2.1 would pick psycopg 3).
    return normalize_url(url)


def configure(**kwargs):
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline():
    configure(url=database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = config.attributes.get("engine") or create_engine(database_url())
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        # Batch mode recreates SQLite tables (copy, drop, rename): with foreign
        # keys enforced (the extension's engines turn them on), dropping the
        # old ``users`` would cascade to every session.  The pragma only
        # takes effect outside a transaction, so it is set here, before any.
        foreign_keys = (
            sqlite and connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
        )
        if foreign_keys:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            configure(connection=connection, render_as_batch=sqlite)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if foreign_keys:
                # The connection goes back to the pool: as it came.
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
