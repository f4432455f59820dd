"""Our tables in a host's test database without running the migrations:
``flask_tokenauth.testing.create_tables`` / the ``tokenauth_tables`` fixture
make the migrations' schema from the models and record the head, in a
transaction and without importing Alembic.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import TokenAuth
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import (
    HEAD,
    VERSION_TABLE,
    downgrade,
    script_location,
    upgrade,
)
from flask_tokenauth.models import TABLE_PREFIX
from flask_tokenauth.testing import create_tables, drop_tables

from .conftest import base_config
from .test_first_install import HOST_NAMES, host_rows, make_host_tables
from .test_migrations import OUR_TABLES, compare, fresh_database, our_revision
from .test_migrations import table_names as names_in
from .test_testing_helpers import host_env

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def test_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app on an empty database of its own, with host tables in it."""
    with fresh_database(database_url, tmp_path) as url:
        engine = make_engine(url, {})
        app = Flask(__name__)
        app.config.update(base_config())
        TokenAuth(engine=engine).init_app(app)
        yield app
        engine.dispose()


def engine_of(app: Flask) -> Engine:
    engine: Engine = app.extensions["tokenauth"].db.engine
    return engine


def test_head_is_the_newest_revision() -> None:
    """``HEAD`` is recorded without reading the scripts: a new revision
    must move it."""
    assert ScriptDirectory(script_location()).get_current_head() == HEAD


def test_create_tables_is_the_migrations_schema(test_app: Flask) -> None:
    engine = engine_of(test_app)
    host = make_host_tables(engine, HOST_NAMES)
    rows = host_rows(engine, host)

    create_tables(test_app)
    assert names_in(engine) == OUR_TABLES | {VERSION_TABLE} | set(HOST_NAMES)
    assert our_revision(engine) == HEAD
    assert compare(engine) == []
    create_tables(test_app)  # again: nothing to do
    # The deletion trigger, as migration 0005 makes it.
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {TABLE_PREFIX}users (email, password_hash)"
                " VALUES ('a@example.com', 'x')"
            )
        )
        conn.execute(text(f"DELETE FROM {TABLE_PREFIX}users"))
        kinds = conn.execute(text(f"SELECT kind FROM {TABLE_PREFIX}revocation_events"))
        assert kinds.scalars().all() == ["user-gone"]
    upgrade(engine)  # nothing to run
    assert our_revision(engine) == HEAD
    # Named as the migrations name them: every downgrade finds its indexes.
    downgrade(engine, "base")
    assert names_in(engine) <= {VERSION_TABLE} | set(HOST_NAMES)
    assert host_rows(engine, host) == rows

    create_tables(test_app)
    drop_tables(test_app)
    assert names_in(engine) == set(HOST_NAMES)
    assert host_rows(engine, host) == rows
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            functions = conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = :name"),
                {"name": f"{TABLE_PREFIX}users_gone"},
            )
            assert functions.scalar() == 0


def test_create_tables_refuses_older_tables(test_app: Flask) -> None:
    upgrade(engine_of(test_app), "0004")
    with pytest.raises(RuntimeError, match="flask tokenauth db upgrade"):
        create_tables(test_app)


def test_a_host_suite_with_the_fixture_never_runs_migrations() -> None:
    """tests/host_suite (25 tests, a database per test) passes through the
    plugin's ``tokenauth_tables`` without importing Alembic at all, nor
    the modules only some requests or databases need."""
    check = textwrap.dedent(
        f"""
        import sys
        import pytest
        code = pytest.main([
            "-q", "-p", "no:cacheprovider", "-p", "no:flask_tokenauth",
            "-p", "pytest_flask_tokenauth",
            "--confcutdir", {str(REPO / "tests" / "host_suite")!r},
            {str(REPO / "tests" / "host_suite")!r},
        ])
        print("alembic imported:", "alembic" in sys.modules)
        # Imported on first use only: a suite on SQLite that registers no
        # address needs neither (tens of milliseconds of import).
        for name in ("email_validator", "sqlalchemy.dialects.postgresql"):
            print(name, "imported:", name in sys.modules)
        sys.exit(code)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=REPO,
        env={**host_env(), "HOST_SUITE_TOKENAUTH": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "25 passed" in result.stdout
    assert "alembic imported: False" in result.stdout
    assert "email_validator imported: False" in result.stdout
    assert "sqlalchemy.dialects.postgresql imported: False" in result.stdout
