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
from flask_tokenauth.models import metadata

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
        (
            ["tokenauth", "db", "--help"],
            ["upgrade", "downgrade", "current", "stamp", "history"],
        ),
        (["tokenauth", "db", "stamp", "--help"], ["REVISION", "head"]),
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


@pytest.mark.parametrize("command", ["upgrade", "downgrade", "stamp"])
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


def test_stamp_adopts_tables_made_without_migrations(
    runner: FlaskCliRunner, cli_app: Flask
) -> None:
    """Tables made by ``create_all`` (no version row): ``upgrade`` refuses
    them with a one-line error, ``stamp`` adopts them, and ``upgrade`` then
    has nothing to do."""
    engine = get_state(cli_app).db.engine
    metadata.create_all(engine)

    result = runner.invoke(args=["tokenauth", "db", "upgrade"])
    assert result.exit_code == 1
    assert "Cannot use the database" in result.output
    assert "already exists" in result.output
    assert "Traceback" not in result.output

    result = runner.invoke(args=["tokenauth", "db", "stamp"])
    assert result.exit_code == 0, result.output
    assert "stamped as head" in result.output
    assert our_revision(engine) == head()
    # SQLite has no transactional DDL: the refused upgrade may leave the
    # tables of the revisions before the one that failed; ours are all there.
    assert OUR_TABLES | {VERSION_TABLE} <= table_names(engine)

    result = runner.invoke(args=["tokenauth", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert our_revision(engine) == head()


def test_stamp_a_revision_then_upgrade_from_it(
    runner: FlaskCliRunner, cli_app: Flask
) -> None:
    engine = get_state(cli_app).db.engine
    assert runner.invoke(args=["tokenauth", "db", "upgrade", "0001"]).exit_code == 0
    # Stamping moves the version row only: no table is made or dropped.
    result = runner.invoke(args=["tokenauth", "db", "stamp", "0002"])
    assert result.exit_code == 0, result.output
    assert our_revision(engine) == "0002"
    assert "auth_sessions" not in table_names(engine)

    result = runner.invoke(args=["tokenauth", "db", "stamp", "base"])
    assert result.exit_code == 0, result.output
    assert our_revision(engine) is None


def test_history_marks_the_current_revision(runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["tokenauth", "db", "upgrade"]).exit_code == 0
    result = runner.invoke(args=["tokenauth", "db", "history"])
    assert result.exit_code == 0, result.output
    assert "0001" in result.output
    assert f"-> {head()} (tokenauth) (head) (current)" in result.output


@pytest.mark.parametrize("command", ["stamp", "history"])
def test_unreachable_database_is_a_clear_error(
    database_url: str, tmp_path: Path, command: str
) -> None:
    """Like the other db commands: one line, no traceback."""
    app = Flask(__name__)
    app.config.update(
        base_config(TOKENAUTH_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    )
    TokenAuth(app)
    result = app.test_cli_runner().invoke(args=["tokenauth", "db", command])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Cannot use the database" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [["create-user", "a@example.com", "--password", "x" * 16], ["sessions", "a@b.org"]],
)
def test_admin_commands_on_an_unmigrated_database_say_what_to_run(
    runner: FlaskCliRunner, args: list[str]
) -> None:
    result = runner.invoke(args=["tokenauth", *args])
    assert result.exit_code == 1, result.output
    assert "run 'flask tokenauth db upgrade'" in result.output
    assert "Traceback" not in result.output
