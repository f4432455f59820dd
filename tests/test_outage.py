"""A database outage answers 503 JSON and leaves nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from flask_tokenauth import _refresh, auth_bp, current_user, login_required
from flask_tokenauth._refresh import RefreshTokens

from .conftest import Auth, base_config, bearer

UNREACHABLE = {
    # A real connection attempt to a port where nothing listens.
    "postgresql": "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2",
    "sqlite": "sqlite:////nonexistent-directory/tokenauth.sqlite3",
}


def assert_503(response: Any) -> None:
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "Database unavailable, try again shortly",
        "code": "DATABASE_UNAVAILABLE",
    }
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("backend", list(UNREACHABLE))
def test_unreachable_database(backend: str, make_app: Any) -> None:
    token = Auth(make_app().test_client()).register().get_json()["accessToken"]
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_DATABASE_URL=UNREACHABLE[backend]))
    app.register_blueprint(auth_bp)

    @app.get("/api/profile")
    @login_required
    def profile() -> Any:
        return {"email": current_user.email}

    auth = Auth(app.test_client())
    assert_503(auth.register())
    assert_503(auth.login())
    auth.set_refresh_cookie("x" * 43)
    assert_503(auth.refresh())
    assert_503(auth.logout())
    # Loading the user needs the database; verifying the token does not.
    assert_503(auth.client.get("/api/profile", headers=bearer(token)))


def fail_inserts(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(RefreshTokens, "insert_token", broken)


def test_failed_registration_leaves_no_user(
    auth: Auth, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_inserts(monkeypatch)
    assert_503(auth.register())
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM tokenauth_users")).scalar_one() == 0
        )
    monkeypatch.undo()
    assert auth.register().status_code == 201


def test_failed_rotation_does_not_spend_the_token(
    app: Flask, auth: Auth, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.register()
    cookie = auth.refresh_cookie()
    assert cookie is not None
    # Make the insert of the successor fail inside the rotation: its value
    # collides with an existing token's (unique token_hash).
    monkeypatch.setattr(_refresh.secrets, "token_urlsafe", lambda n: cookie)
    assert_503(auth.refresh())
    monkeypatch.undo()
    with engine.connect() as conn:
        used = conn.execute(
            text(
                "SELECT count(*) FROM tokenauth_refresh_tokens"
                " WHERE used_at IS NOT NULL"
            )
        ).scalar_one()
    assert used == 0
    assert auth.refresh_cookie() == cookie
    # The same token still rotates normally: it was not counted as reuse.
    assert auth.refresh().status_code == 200
