"""The example app: the tutorial's environment names, .env, /api/profile."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Engine

from .conftest import ACCESS_SECRET, REFRESH_SECRET, Auth, bearer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app.py"


@pytest.fixture
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_app", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorial_environment_names(
    example: ModuleType, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    url = engine.url.render_as_string(hide_password=False)
    for name, value in {
        "DATABASE_URL": url,
        "ACCESS_TOKEN_SECRET": ACCESS_SECRET,
        "REFRESH_TOKEN_SECRET": REFRESH_SECRET,
        "ACCESS_TOKEN_EXPIRES_IN": "5m",
        "REFRESH_TOKEN_EXPIRES_IN": "1d",
        "TOKENAUTH_BCRYPT_ROUNDS": "4",
    }.items():
        monkeypatch.setenv(name, value)
    app = example.create_app()
    settings = app.extensions["tokenauth"].settings
    assert settings.access_expires.total_seconds() == 300
    assert settings.refresh_expires.total_seconds() == 86400
    assert settings.bcrypt_rounds == 4

    client = app.test_client()
    assert client.get("/api/health").get_json() == {"status": "ok"}
    token = Auth(client).register().get_json()["accessToken"]
    response = client.get("/api/profile", headers=bearer(token))
    assert response.get_json()["user"]["email"] == "user@example.com"
    assert client.get("/api/profile").get_json()["code"] == "TOKEN_MISSING"


def test_dotenv_file(
    example: ModuleType, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    url = engine.url.render_as_string(hide_password=False)
    (tmp_path / ".env").write_text(
        f"ACCESS_TOKEN_SECRET={ACCESS_SECRET}\n"
        f"REFRESH_TOKEN_SECRET={REFRESH_SECRET}\n"
        f"DATABASE_URL={url}\n"
        "TOKENAUTH_BCRYPT_ROUNDS=4\n"
        "TOKENAUTH_COOKIE_NAME=from_dotenv\n"
    )
    app = example.create_app()
    response = Auth(app.test_client()).register()
    assert response.status_code == 201
    assert response.headers["Set-Cookie"].startswith("from_dotenv=")


def test_missing_secrets_stop_start_up(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ACCESS_TOKEN_SECRET", "TOKENAUTH_ACCESS_SECRET"):
        monkeypatch.delenv(name, raising=False)
    from flask_tokenauth import ConfigurationError

    with pytest.raises(ConfigurationError, match="TOKENAUTH_ACCESS_SECRET is not set"):
        example.create_app()
