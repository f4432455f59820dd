"""``flask tokenauth db ...`` through Flask's CLI runner, on SQLite and
PostgreSQL, each test on an empty database of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from flask_tokenauth import TokenAuth
from flask_tokenauth._migrate import VERSION_TABLE
from flask_tokenauth._state import get_state

from .conftest import base_config
from .test_migrations import OUR_TABLES, fresh_database, head, our_revision, table_names


@pytest.fixture
def cli_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    with fresh_database(database_url, tmp_path) as url:
        app = Flask(__name__)
        app.config.update(base_config(TOKENAUTH_DATABASE_URL=url))
        TokenAuth(app)
        yield app
        get_state(app).db.engine.dispose()


@pytest.fixture
def runner(cli_app: Flask) -> FlaskCliRunner:
    return cli_app.test_cli_runner()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tokenauth", "--help"], ["db"]),
        (["tokenauth", "db", "--help"], ["upgrade", "downgrade", "current"]),
        (["tokenauth", "db", "upgrade", "--help"], ["REVISION", "head"]),
        (["tokenauth", "db", "downgrade", "--help"], ["REVISION", "base"]),
    ],
)
def test_help(runner: FlaskCliRunner, args: list[str], expected: list[str]) -> None:
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    for word in expected:
        assert word in result.output


def test_upgrade_current_downgrade(runner: FlaskCliRunner, cli_app: Flask) -> None:
    engine = get_state(cli_app).db.engine

    result = runner.invoke(args=["tokenauth", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "upgraded to head" in result.output
    assert table_names(engine) == OUR_TABLES | {VERSION_TABLE}
    assert our_revision(engine) == head()

    result = runner.invoke(args=["tokenauth", "db", "current"])
    assert result.exit_code == 0, result.output
    assert f"{head()} (head)" in result.output

    result = runner.invoke(args=["tokenauth", "db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert "downgraded to base" in result.output
    assert table_names(engine) & OUR_TABLES == set()
    assert our_revision(engine) is None

    result = runner.invoke(args=["tokenauth", "db", "current"])
    assert result.exit_code == 0, result.output
    assert head() not in result.output

    result = runner.invoke(args=["tokenauth", "db", "upgrade", head()])
    assert result.exit_code == 0, result.output
    assert our_revision(engine) == head()


@pytest.mark.parametrize("command", ["upgrade", "downgrade"])
def test_unknown_revision_is_a_clear_error(
    runner: FlaskCliRunner, cli_app: Flask, command: str
) -> None:
    result = runner.invoke(args=["tokenauth", "db", command, "no-such-rev"])
    assert result.exit_code == 1
    # A click error (SystemExit from click), not an escaped exception.
    assert isinstance(result.exception, SystemExit)
    assert "Error: " in result.output
    assert "no-such-rev" in result.output
    assert "Traceback" not in result.output
    assert our_revision(get_state(cli_app).db.engine) is None
