"""Database errors are logged without the values of the statement that failed.

SQLAlchemy's message of a failed statement carries its parameters (an email,
a new password hash, a refresh token's hash), and psycopg2's adds ``DETAIL``
and ``LINE 1:`` lines with values in them.  Each test breaks a throwaway
database of its own (a table renamed, a trigger that fails) under a request
that carries secrets, and checks that no log record, traceback included,
holds any of them while the log still says what failed.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._db import describe_db_error
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._state import get_state

from .conftest import (
    PASSWORD,
    POSTGRES_URL,
    Auth,
    base_config,
    bearer,
    service_missing,
    throwaway_database,
)

EMAIL = "victim.secret@example.com"
NEW_PASSWORD = "tram orbit velvet 42"


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A migrated database of this test's own, free to break."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        _migrate(url)
        yield url
        return
    try:
        context = throwaway_database(POSTGRES_URL, "tokenauth_dblog_")
        url = context.__enter__()
    except Exception as e:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {e}")
    try:
        _migrate(url)
        yield url
    finally:
        context.__exit__(None, None, None)


def _migrate(url: str) -> None:
    engine = make_engine(url, {})
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture
def scratch_app(scratch_url: str) -> Iterator[Flask]:
    """An app whose engine the package makes itself from the URL."""
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_DATABASE_URL=scratch_url))
    TokenAuth().init_app(app)
    app.register_blueprint(auth_bp)
    yield app
    get_state(app).db.engine.dispose()


def ddl(app: Flask, sqlite: list[str], postgresql: list[str]) -> None:
    engine = get_state(app).db.engine
    with engine.begin() as conn:
        statements = sqlite if engine.dialect.name == "sqlite" else postgresql
        for statement in statements:
            conn.execute(text(statement))


def fail_writes_to_users(app: Flask) -> None:
    """Every INSERT and UPDATE of ``users`` fails with a driver error (not an
    integrity error); on PostgreSQL its DETAIL line shows the row's values."""
    ddl(
        app,
        sqlite=[
            # A write to a view fails with an OperationalError (a missing
            # table would read as migrations not run).
            "CREATE VIEW refused_by_trigger AS SELECT 1 AS x",
            "CREATE TRIGGER refuse_insert BEFORE INSERT ON tokenauth_users"
            " BEGIN INSERT INTO refused_by_trigger VALUES (1); END",
            "CREATE TRIGGER refuse_update BEFORE UPDATE ON tokenauth_users"
            " BEGIN INSERT INTO refused_by_trigger VALUES (1); END",
        ],
        postgresql=[
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'refused_by_trigger'"
            " USING DETAIL = 'row: ' || NEW.email || ' ' || NEW.password_hash;"
            " END $$",
            "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON tokenauth_users"
            " FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    )


def rename(app: Flask, table: str) -> None:
    statement = f"ALTER TABLE {table} RENAME TO {table}_gone"
    ddl(app, sqlite=[statement], postgresql=[statement])


def secrets_of_database(app: Flask) -> list[str]:
    """Every password hash and refresh-token hash stored."""
    with get_state(app).db.engine.connect() as conn:
        hashes = conn.execute(
            text("SELECT password_hash FROM tokenauth_users")
        ).scalars()
        tokens = conn.execute(
            text("SELECT token_hash FROM tokenauth_refresh_tokens")
        ).scalars()
        return [*hashes, *tokens]


def register(app: Flask) -> tuple[Auth, str]:
    auth = Auth(app.test_client())
    response = auth.register(EMAIL)
    assert response.status_code == 201, response.get_json()
    return auth, response.get_json()["accessToken"]


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the records say: messages, tracebacks, stacks."""
    formatter = logging.Formatter()
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
    return "\n".join(parts)


def assert_logged_without_secrets(
    caplog: pytest.LogCaptureFixture, secrets: list[str], names: str
) -> None:
    logged = log_text(caplog)
    assert "tokenauth database error" in logged
    assert names in logged  # what failed is still said
    for secret in [*secrets, EMAIL, EMAIL.split("@")[0], "$2b$", "$2a$"]:
        assert secret not in logged, (secret, logged)
    # Neither SQLAlchemy's parameter dump nor psycopg2's row and query lines.
    for marker in ("[parameters:", "[SQL:", "DETAIL", "LINE 1", "Failing row"):
        assert marker not in logged, (marker, logged)


Scenario = Callable[[Flask], tuple[Any, list[str], str]]


def registering(app: Flask) -> tuple[Any, list[str], str]:
    fail_writes_to_users(app)
    response = Auth(app.test_client()).register(EMAIL, NEW_PASSWORD)
    return response, [NEW_PASSWORD], "refused_by_trigger"


def logging_in(app: Flask) -> tuple[Any, list[str], str]:
    register(app)
    secrets = secrets_of_database(app)
    rename(app, "tokenauth_users")
    response = Auth(app.test_client()).login(EMAIL, PASSWORD)
    return response, [*secrets, PASSWORD], "tokenauth_users"


def changing_the_password(app: Flask) -> tuple[Any, list[str], str]:
    auth, token = register(app)
    secrets = secrets_of_database(app)
    fail_writes_to_users(app)
    response = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(token),
    )
    return response, [*secrets, PASSWORD, NEW_PASSWORD], "refused_by_trigger"


def refreshing(app: Flask) -> tuple[Any, list[str], str]:
    auth, _ = register(app)
    cookie = auth.refresh_cookie()
    assert cookie
    secrets = secrets_of_database(app)
    rename(app, "tokenauth_refresh_tokens")
    return auth.refresh(), [*secrets, cookie], "tokenauth_refresh_tokens"


@pytest.mark.parametrize(
    ("scenario", "status", "code"),
    [
        (registering, 503, "DATABASE_UNAVAILABLE"),
        # A renamed table is a missing one: migrations not run.
        (logging_in, 500, "DATABASE_NOT_MIGRATED"),
        (changing_the_password, 503, "DATABASE_UNAVAILABLE"),
        (refreshing, 500, "DATABASE_NOT_MIGRATED"),
    ],
)
def test_database_errors_are_logged_without_values(
    scratch_app: Flask,
    caplog: pytest.LogCaptureFixture,
    scenario: Scenario,
    status: int,
    code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The library's own logger too: an app made earlier in the process (the
    # example's log-mail set-up) may have given it a level of its own.
    caplog.set_level(logging.DEBUG, logger="flask_tokenauth")
    response, secrets, names = scenario(scratch_app)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["code"] == code
    assert_logged_without_secrets(caplog, secrets, names)


def test_engines_the_package_makes_hide_parameters(scratch_app: Flask) -> None:
    """So that a host logging the 503's cause (``raise ... from e``) with its
    traceback does not log SQLAlchemy's dump of the parameters either."""
    engine: Engine = get_state(scratch_app).db.engine
    assert engine.hide_parameters
    with pytest.raises(DBAPIError) as raised, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE x = :v"), {"v": EMAIL})
    shown = "".join(traceback.format_exception(raised.value))
    assert "[SQL parameters hidden due to hide_parameters=True]" in shown
    assert "[parameters:" not in shown
    if engine.dialect.name == "sqlite":
        # psycopg2's own message quotes the line of the query it inlined the
        # values into: only our log line (above) can leave that out.
        assert EMAIL not in shown
    own = make_engine("sqlite://", {"hide_parameters": False})
    assert not own.hide_parameters  # the host's options still win


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            'duplicate key value violates unique constraint "uq_users_email"\n'
            f"DETAIL:  Key (email)=({EMAIL}) already exists.\n",
            'duplicate key value violates unique constraint "uq_users_email"',
        ),
        (
            'relation "users" does not exist\n'
            f"LINE 1: SELECT id FROM users WHERE email = '{EMAIL}'\n"
            "                        ^\n",
            'relation "users" does not exist',
        ),
        ("", ""),
    ],
)
def test_describe_keeps_the_first_line_only(message: str, expected: str) -> None:
    class DriverError(Exception):
        pgcode = "23505"

    error = DBAPIError("SELECT :email", {"email": EMAIL}, DriverError(message))
    described = describe_db_error(error)
    assert EMAIL not in described
    assert described.endswith(f"DriverError [23505]: {expected}")


def test_the_cli_describes_database_errors_the_same_way() -> None:
    """``Cannot use the database: ...`` names the driver's error in one line,
    not the driver's whole message."""
    app = Flask(__name__)
    app.config.update(
        base_config(
            TOKENAUTH_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x?connect_timeout=2"
        )
    )
    app.register_blueprint(auth_bp)
    result = app.test_cli_runner().invoke(args=["tokenauth", "db", "upgrade"])
    assert result.exit_code == 1
    # The database it tried first, then the error in one line.
    announced, error = result.output.strip().splitlines()
    assert announced.startswith("flask_tokenauth database: postgresql+psycopg2://")
    assert error.startswith(
        "Error: Cannot use the database: psycopg2.OperationalError: "
    ), result.output
