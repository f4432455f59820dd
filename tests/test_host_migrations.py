"""A host app's own Flask-Migrate on the database our tables live in.

The host (Flask-SQLAlchemy, its own ``User`` model on table ``user``,
Flask-Migrate) runs ``flask db init`` and ``flask db migrate`` after
``flask tokenauth db upgrade``: with our filter its migrations never touch
our tables; without it (the negative control) autogenerate drops every one.
Then docs/migrations.md's "one history" variant, followed to the letter.  On SQLite
and PostgreSQL, each test on an empty database of its own.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text
from sqlalchemy.orm import Mapped, mapped_column

from flask_tokenauth import (
    TokenAuth,
    alembic_include_name,
    alembic_include_object,
    tokenauth_tables,
)
from flask_tokenauth._migrate import VERSION_TABLE, script_location
from flask_tokenauth._state import get_state
from flask_tokenauth.models import metadata

from .conftest import base_config
from .test_migrations import fresh_database, head, our_revision

# Flask-Migrate's env.py template tries Flask-SQLAlchemy 2's ``get_engine()``
# first, which Flask-SQLAlchemy 3.1 answers with a DeprecationWarning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:'get_engine' is deprecated:DeprecationWarning"
)

#: Every table of ours, named here and not through the helper under test.
OURS = {table.name for table in metadata.tables.values()} | {VERSION_TABLE}

HOOKS: dict[str, dict[str, Callable[..., bool]]] = {
    "include_name": {"include_name": alembic_include_name},
    "include_object": {"include_object": alembic_include_object},
    "both": {
        "include_name": alembic_include_name,
        "include_object": alembic_include_object,
    },
}


@contextmanager
def logging_restored() -> Iterator[None]:
    """Alembic's ``env.py`` runs ``fileConfig(alembic.ini)``, which disables
    every logger it does not name and replaces the root's handlers: put the
    test process's logging back as it was afterwards."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (logger.disabled, logger.level, list(logger.handlers), logger.propagate)
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger):
                continue
            disabled, level, handlers, propagate = saved.get(
                name, (False, logging.NOTSET, [], True)
            )
            logger.disabled, logger.propagate = disabled, propagate
            logger.setLevel(level)
            logger.handlers[:] = handlers


def host_app(url: str, directory: Path, **migrate_options: Any) -> Flask:
    """The host: its own ``User`` on table ``user``, Flask-Migrate with
    ``migrate_options``, and flask_tokenauth on the same database."""
    app = Flask("hostapp")
    app.config.update(base_config(SQLALCHEMY_DATABASE_URI=url))
    db = SQLAlchemy()

    class User(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "user"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(80))

    db.init_app(app)
    Migrate(app, db, directory=str(directory), **migrate_options)
    TokenAuth(app)
    return app


@pytest.fixture
def host_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(database_url, tmp_path) as url, logging_restored():
        yield url


def run(runner: FlaskCliRunner, *args: str) -> str:
    """One command, as if in a process of its own: Flask-Migrate's env.py
    keeps its "no empty revision" hook, bound to the first command's
    options, in the app's Migrate for later commands of the same process."""
    migrate = runner.app.extensions["migrate"]
    migrate.configure_args.pop("process_revision_directives", None)
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def new_revisions(directory: Path, seen: set[Path]) -> list[str]:
    files = set((directory / "versions").glob("*.py")) - seen
    seen |= files
    return [path.read_text() for path in sorted(files)]


def ops_on(script: str, table: str) -> list[str]:
    """The lines of a migration script that name ``table``."""
    quoted = re.compile(rf"""['"]{re.escape(table)}['"]""")
    return [line.strip() for line in script.splitlines() if quoted.search(line)]


def dispose(app: Flask) -> None:
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()
    get_state(app).db.engine.dispose()


@pytest.mark.parametrize("hooks", sorted(HOOKS))
def test_host_autogenerate_leaves_our_tables_alone(
    host_url: str, tmp_path: Path, hooks: str
) -> None:
    directory = tmp_path / "migrations"
    app = host_app(host_url, directory, **HOOKS[hooks])
    runner = app.test_cli_runner()
    seen: set[Path] = set()
    try:
        run(runner, "tokenauth", "db", "upgrade")
        run(runner, "db", "init")

        run(runner, "db", "migrate", "-m", "host users")
        [script] = new_revisions(directory, seen)
        assert ops_on(script, "user") != []  # the host's own table is there
        for table in OURS:
            assert ops_on(script, table) == [], table

        run(runner, "db", "upgrade")
        # Nothing more to do: no revision is written for our tables.
        output = run(runner, "db", "migrate", "-m", "again")
        assert new_revisions(directory, seen) == []
        assert "No changes in schema detected" in output

        # And both histories stand side by side.
        engine = get_state(app).db.engine
        assert our_revision(engine) == head()
        names = set(inspect(engine).get_table_names())
        assert names >= OURS | {"user", "alembic_version"}
    finally:
        dispose(app)


def test_without_the_filter_autogenerate_drops_our_tables(
    host_url: str, tmp_path: Path
) -> None:
    """The negative control: what the filter is for."""
    directory = tmp_path / "migrations"
    app = host_app(host_url, directory)
    runner = app.test_cli_runner()
    try:
        run(runner, "tokenauth", "db", "upgrade")
        run(runner, "db", "init")
        run(runner, "db", "migrate", "-m", "host users")
        [script] = new_revisions(directory, set())
        for table in OURS:
            assert f"op.drop_table('{table}')" in script, table
    finally:
        dispose(app)


@pytest.fixture
def extra_table() -> Iterator[Table]:
    """A table added to our models, as a later release would."""
    table = Table("tokenauth_future", metadata, Column("id", Integer, primary_key=True))
    yield table
    metadata.remove(table)


def test_filters_follow_our_metadata(extra_table: Table) -> None:
    names = {table.name for table in metadata.tables.values()}
    assert tokenauth_tables() == names | {VERSION_TABLE}
    assert "tokenauth_future" in tokenauth_tables()
    assert not alembic_include_name("tokenauth_future", "table", {})
    assert not alembic_include_name(
        "ix_x", "index", {"table_name": "tokenauth_future", "schema_name": None}
    )
    assert not alembic_include_object(
        extra_table, extra_table.name, "table", False, None
    )
    column = extra_table.c.id
    assert not alembic_include_object(column, "id", "column", False, None)
    host = Table("user", MetaData(), Column("id", Integer, primary_key=True))
    assert alembic_include_name("user", "table", {})
    assert alembic_include_name(None, "schema", {})
    assert alembic_include_object(host, "user", "table", False, None)
    assert alembic_include_object(host.c.id, "id", "column", False, None)


# -- docs/migrations.md's "one history" variant --------------------------------

#: A revision of ours from a later release, for the one-history test.
NEXT_RELEASE = """
revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
"""


def one_history(directory: Path, ours: Path) -> None:
    """docs/migrations.md's lines for ``alembic.ini``, with ``ours`` for the
    package's folder (a checkout has no ``flask_tokenauth.migrations``)."""
    ini = directory / "alembic.ini"
    config = ini.read_text()
    assert "version_locations" not in config
    assert "path_separator" not in config
    config = config.replace(
        "[alembic]\n",
        "[alembic]\npath_separator = space\n"
        f"version_locations = %(here)s/versions {ours}\n",
    )
    ini.write_text(config)


def host_versions(engine: Any) -> set[str]:
    with engine.connect() as conn:
        query = text("SELECT version_num FROM alembic_version")
        return set(conn.execute(query).scalars())


def test_one_history(host_url: str, tmp_path: Path) -> None:
    """Follows docs/migrations.md: our versions in the host's ``version_locations``,
    the host's own branch depending on ours, ``upgrade heads``; a later
    release of ours is picked up by the next ``upgrade heads``."""
    ours = tmp_path / "tokenauth-versions"  # a copy: the test adds a release
    shutil.copytree(
        Path(script_location()) / "versions",
        ours,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    directory = tmp_path / "migrations"
    app = host_app(host_url, directory, include_name=alembic_include_name)
    runner = app.test_cli_runner()
    seen = set(ours.glob("*.py"))
    try:
        run(runner, "db", "init")
        one_history(directory, ours)

        run(runner, "db", "upgrade", "heads")  # ours only, so far
        output = run(
            runner, "db", "migrate", "-m", "host users",
            "--head", "base", "--branch-label", "app",
            "--version-path", str(directory / "versions"),
        )  # fmt: skip
        [first] = set((directory / "versions").glob("*.py"))
        assert set(ours.glob("*.py")) == seen, output  # nothing written in ours
        script = first.read_text()
        assert ops_on(script, "user") != []
        for table in OURS:
            assert ops_on(script, table) == [], table
        assert "depends_on = None" in script
        first.write_text(
            script.replace("depends_on = None", 'depends_on = "tokenauth"')
        )

        run(runner, "db", "upgrade", "heads")
        engine = get_state(app).db.engine
        names = set(inspect(engine).get_table_names())
        assert names >= {table.name for table in metadata.tables.values()} | {"user"}
        assert VERSION_TABLE not in names  # one history: the host's table only
        assert head() in host_versions(engine)

        # Two heads now: plain ``head`` is ambiguous, as docs/migrations.md says.
        result = runner.invoke(args=["db", "upgrade"])
        assert result.exit_code != 0

        output = run(runner, "db", "migrate", "-m", "again", "--head", "app@head")
        assert "No changes in schema detected" in output
        assert len(set((directory / "versions").glob("*.py"))) == 1

        # Our next release: no merge, the next ``upgrade heads`` applies it.
        (ours / "0099_next.py").write_text(NEXT_RELEASE.format(head=head()))
        run(runner, "db", "upgrade", "heads")
        assert "0099" in host_versions(engine)
        assert head() not in host_versions(engine)
    finally:
        dispose(app)


def test_one_history_needs_a_version_path(host_url: str, tmp_path: Path) -> None:
    """Why docs/migrations.md says ``--version-path``: without it Alembic writes the
    host's revision next to its parent, into our (installed) folder."""
    ours = tmp_path / "tokenauth-versions"
    shutil.copytree(
        Path(script_location()) / "versions",
        ours,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    before = set(ours.glob("*.py"))
    directory = tmp_path / "migrations"
    app = host_app(host_url, directory, include_name=alembic_include_name)
    runner = app.test_cli_runner()
    try:
        run(runner, "db", "init")
        one_history(directory, ours)
        run(runner, "db", "upgrade", "heads")
        run(runner, "db", "migrate", "-m", "host users")
        assert len(set(ours.glob("*.py")) - before) == 1
        assert set((directory / "versions").glob("*.py")) == set()
    finally:
        dispose(app)
