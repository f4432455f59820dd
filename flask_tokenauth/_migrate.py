"""Running the Alembic migrations that ship with the package.

Alembic is imported by the functions that run it, not by this module: it is
a third of the package's import time, which every test run of a host app
would pay for nothing (see :func:`create_tables`).

In a wheel the top-level ``alembic/`` folder is installed as the package
``flask_tokenauth.migrations``; in a repository checkout (or a non-strict
editable install, which does not expose that mapping) the folder is used
where it lies.
"""

from __future__ import annotations

import sys
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_mock_engine,
    inspect,
    select,
)
from sqlalchemy.schema import CreateTable

from .models import TABLE_PREFIX, metadata

if TYPE_CHECKING:
    from alembic.config import Config

#: Our own version table, so our history never collides with the host app's.
VERSION_TABLE = "tokenauth_alembic_version"
#: The newest revision in ``alembic/versions``, which :func:`create_tables`
#: records without reading the scripts (a test checks that it is the head).
HEAD = "0009"
#: The version table as Alembic makes it.
_versions = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


def script_location() -> str:
    """The folder that holds ``env.py`` and ``versions/``."""
    spec = util.find_spec("flask_tokenauth.migrations")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "env.py").is_file():
                return str(location)
    checkout = Path(__file__).resolve().parent.parent / "alembic"
    if (checkout / "env.py").is_file():
        return str(checkout)
    raise RuntimeError(
        "flask_tokenauth's migration scripts are missing from this install."
    )


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs our migrations on ``engine``."""
    from alembic.config import Config

    # Alembic's default ``stdout`` is bound when alembic is imported; pass the
    # one in place now, so ``current`` prints where click (and its test
    # runner) expects.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", script_location())
    # Only read in offline mode; ConfigParser interpolation needs the ``%``
    # of URL-escaped passwords (``p%40ss``) doubled.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def current(engine: Engine) -> None:
    from alembic import command

    command.current(alembic_config(engine), verbose=False)


def stamp(engine: Engine, revision: str = "head") -> None:
    """Record ``revision`` as applied without running anything: for tables
    made some other way (``metadata.create_all``, a dump) that already match
    it, so a later ``upgrade`` starts from there instead of failing on
    tables that exist."""
    from alembic import command

    command.stamp(alembic_config(engine), revision)


def history(engine: Engine) -> None:
    from alembic import command

    command.history(alembic_config(engine), indicate_current=True)


#: The DDL of :func:`create_tables`, per dialect and server version.
_ddl: dict[tuple[str, Any], list[str]] = {}


def _create_statements(dialect: Dialect) -> list[str]:
    """What ``metadata.create_all`` sends to an empty database (our
    trigger included), and the version table, compiled once per process:
    each test of a host suite gets a new engine, whose statement cache is
    empty, and compiling the DDL again cost more than running it."""
    key = (dialect.name, dialect.server_version_info)
    statements = _ddl.get(key)
    if statements is None:
        captured: list[Any] = []
        mock = create_mock_engine(
            f"{dialect.name}+{dialect.driver}://",
            lambda sql, *args, **kwargs: captured.append(sql),
        )
        metadata.create_all(mock, checkfirst=False)
        captured.append(CreateTable(_versions))
        statements = [str(sql.compile(dialect=dialect)) for sql in captured]
        _ddl[key] = statements
    return statements


def _recorded(conn: Connection) -> list[str]:
    return list(conn.execute(select(_versions.c.version_num)).scalars())


def create_tables(engine: Engine) -> None:
    """Our tables at :data:`HEAD`, made from the models in one transaction
    (as ``metadata.create_all`` makes them, the deletion trigger included)
    and recorded in our version table, so that a later ``upgrade`` has
    nothing to do.

    For test databases: a millisecond or two, and no Alembic import, where
    running the migrations recreates SQLite tables several times over.  The
    schema is the migrations' (a test compares the two).  A database that
    has them already at :data:`HEAD` is left as it is.

    :raises RuntimeError: if the database has tables of ours of another
        revision (or none recorded): only ``upgrade`` can bring them to
        the models'.
    """
    with engine.begin() as conn:
        existing = set(inspect(conn).get_table_names())
        versions = VERSION_TABLE in existing
        recorded = _recorded(conn) if versions else []
        if recorded == [HEAD]:
            return
        if recorded or existing & set(metadata.tables):
            raise RuntimeError(
                f"flask_tokenauth's tables here are at revision {recorded or None},"
                f" not {HEAD}: run 'flask tokenauth db upgrade' instead."
            )
        statements = _create_statements(conn.dialect)
        # An empty version table stays after a downgrade to base.
        for statement in statements[:-1] if versions else statements:
            conn.exec_driver_sql(statement)
        conn.execute(_versions.insert().values(version_num=HEAD))


def drop_tables(engine: Engine) -> None:
    """Drop our tables, our version table and (PostgreSQL) the function of
    the deletion trigger, those that exist: undoes :func:`create_tables` or
    the migrations.  The app's own tables are not touched."""
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.format_table
        for table in [*reversed(metadata.sorted_tables), _versions]:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(table)}")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {TABLE_PREFIX}users_gone()")
