"""``flask tokenauth purge | create-user | sessions | revoke-sessions``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import auth_bp, current_claims, login_required

from .conftest import Auth, base_config, bearer


def run(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["tokenauth", *args], input=input)


@pytest.mark.parametrize(
    "command", ["purge", "create-user", "sessions", "revoke-sessions"]
)
def test_help(app: Flask, command: str) -> None:
    result = run(app, command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_create_user(app: Flask) -> None:
    result = run(app, "create-user", " Admin@Example.com", "--password", "long enough")
    assert result.exit_code == 0, result.output
    assert "<admin@example.com>" in result.output
    assert (
        Auth(app.test_client()).login("admin@example.com", "long enough").status_code
        == 200
    )


def test_create_user_prompts_for_the_password(app: Flask) -> None:
    result = run(
        app, "create-user", "p@example.com", input="long enough\nlong enough\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        Auth(app.test_client()).login("p@example.com", "long enough").status_code == 200
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["not-an-email", "--password", "long enough"], 2, "Invalid email address"),
        (["a@example.com", "--password", "short"], 2, "at least 8 characters"),
    ],
)
def test_create_user_bad_input(
    app: Flask, args: list[str], code: int, message: str
) -> None:
    result = run(app, "create-user", *args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_create_user_twice(app: Flask) -> None:
    assert (
        run(app, "create-user", "a@example.com", "--password", "long enough").exit_code
        == 0
    )
    result = run(app, "create-user", "A@example.com", "--password", "long enough")
    assert result.exit_code == 1
    assert "exists" in result.output


def test_sessions_and_revoke(app: Flask) -> None:
    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"sid": current_claims["sid"]}

    tokens = []
    for agent in ("Phone/1", "Laptop/2"):
        auth = Auth(app.test_client())
        response = auth.login(headers={"User-Agent": agent})
        if response.status_code == 401:
            response = auth.register(headers={"User-Agent": agent})
        tokens.append(response.get_json()["accessToken"])
    listed = run(app, "sessions", "USER@example.com")
    assert listed.exit_code == 0
    assert "Phone/1" in listed.output and "Laptop/2" in listed.output
    revoked = run(app, "revoke-sessions", "user@example.com")
    assert revoked.exit_code == 0
    assert "Revoked 2 session(s)." in revoked.output
    for token in tokens:
        assert app.test_client().get("/me", headers=bearer(token)).status_code == 401
    assert (
        run(app, "sessions", "user@example.com").output.strip() == "No active sessions."
    )


@pytest.mark.parametrize(
    ("stored", "printed"),
    [
        ("Evil/1 \x1b]0;pwned\x07", "Evil/1 \\x1b]0;pwned\\x07"),
        ("\x1b[2J\x1b[1;1Hfake\r\n\x9b31m", "\\x1b[2J\\x1b[1;1Hfake\\r\\n\\x9b31m"),
        ("a\u202eevil", "a\\u202eevil"),
        ("C:\\x1b not an escape", "C:\\\\x1b not an escape"),
        ("Firefox/128 é 日本", "Firefox/128 é 日本"),
    ],
)
def test_sessions_escape_control_characters(
    app: Flask, engine: Engine, stored: str, printed: str
) -> None:
    """A user agent stored with terminal escape sequences (a row written
    before agents were cleaned, or by another program) is printed escaped."""
    Auth(app.test_client()).register()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tokenauth_sessions SET user_agent = :ua"), {"ua": stored}
        )
    result = run(app, "sessions", "user@example.com")
    assert result.exit_code == 0, result.output
    line = result.output.rstrip("\n")
    assert line.endswith("  " + printed)
    assert "\n" not in line
    assert not any(c in line for c in "\x1b\x07\x9b\r\u202e")


@pytest.mark.parametrize("command", ["sessions", "revoke-sessions"])
def test_unknown_user(app: Flask, command: str) -> None:
    result = run(app, command, "nobody@example.com")
    assert result.exit_code == 1
    assert "No user with email nobody@example.com" in result.output
    assert run(app, command, "not an email").exit_code == 2


def test_purge(app: Flask, engine: Engine) -> None:
    auths = []
    for _ in range(5):
        auth = Auth(app.test_client())
        auth.login() if auths else auth.register()
        auths.append(auth)
    long_ago = datetime.now(timezone.utc) - timedelta(days=30)
    recently = datetime.now(timezone.utc) - timedelta(minutes=1)
    with engine.begin() as conn:
        ids = [
            row[0]
            for row in conn.execute(
                text("SELECT id FROM tokenauth_sessions ORDER BY created_at, id")
            )
        ]
        update = "UPDATE tokenauth_sessions SET {} WHERE id = :id"
        conn.execute(
            text(update.format("expires_at = :t")), {"t": long_ago, "id": ids[0]}
        )
        conn.execute(
            text(update.format("revoked_at = :t")), {"t": long_ago, "id": ids[1]}
        )
        # Revoked a minute ago: its access tokens may still be alive, keep it.
        conn.execute(
            text(update.format("revoked_at = :t")), {"t": recently, "id": ids[2]}
        )
        # Idle: no usable token left, last used long ago.
        conn.execute(
            text(
                "UPDATE tokenauth_refresh_tokens SET expires_at = :t"
                " WHERE family_id = :id"
            ),
            {"t": long_ago, "id": ids[3]},
        )
        conn.execute(
            text(update.format("last_used_at = :t")), {"t": long_ago, "id": ids[3]}
        )
    result = run(app, "purge", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "Purged 3 session(s)." in result.output
    with engine.connect() as conn:
        left = {
            row[0] for row in conn.execute(text("SELECT id FROM tokenauth_sessions"))
        }
        tokens = {
            row[0]
            for row in conn.execute(
                text("SELECT DISTINCT family_id FROM tokenauth_refresh_tokens")
            )
        }
    assert left == tokens == {ids[2], ids[4]}
    assert auths[4].refresh().status_code == 200
    assert run(app, "purge").output.strip() == "Purged 0 session(s)."


def test_purge_bad_batch_size(app: Flask) -> None:
    result = run(app, "purge", "--batch-size", "0")
    assert result.exit_code == 2
    assert "--batch-size" in result.output


def test_database_unreachable() -> None:
    app = Flask(__name__)
    app.config.update(
        base_config(
            TOKENAUTH_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x?connect_timeout=2"
        )
    )
    app.register_blueprint(auth_bp)
    result = run(app, "purge")
    assert result.exit_code == 1
    assert "Database unavailable" in result.output
    assert "Traceback" not in result.output
