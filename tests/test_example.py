"""The example app: the tutorial's environment names, .env, /api/profile."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from dotenv import dotenv_values
from flask import Flask
from sqlalchemy import Engine

from flask_tokenauth._config import Settings
from flask_tokenauth.testing import wait_for_mail

from .conftest import ACCESS_SECRET, REFRESH_SECRET, Auth, bearer
from .smtp import link_in

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


#: What examples/.env.example shipped before the secret lines became empty.
OLD_EXAMPLE_SECRETS = {
    "ACCESS_TOKEN_SECRET": "change-me-to-a-random-string-of-at-least-32-bytes-aaaa",
    "REFRESH_TOKEN_SECRET": "change-me-to-another-random-string-of-32-bytes-bbbbbb",
}


@pytest.mark.parametrize("name", list(OLD_EXAMPLE_SECRETS))
def test_old_example_secrets_stop_start_up(
    example: ModuleType, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A .env hand-copied from the old example must not start: everyone can
    read those secrets and sign tokens with them."""
    monkeypatch.chdir(tmp_path)
    secrets = {
        "ACCESS_TOKEN_SECRET": ACCESS_SECRET,
        "REFRESH_TOKEN_SECRET": REFRESH_SECRET,
    }
    secrets[name] = OLD_EXAMPLE_SECRETS[name]
    for variable in ("TOKENAUTH_ACCESS_SECRET", "TOKENAUTH_REFRESH_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in secrets.items():
        monkeypatch.setenv(variable, value)
    from flask_tokenauth import ConfigurationError

    key = example.TUTORIAL_NAMES[name]
    with pytest.raises(ConfigurationError, match=f"{key} is a placeholder"):
        example.create_app()


def test_example_env_file_ships_without_secrets(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Copied as it is, the example's .env does not start the app."""
    monkeypatch.chdir(tmp_path)
    for name in ("ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(example.TUTORIAL_NAMES[name], raising=False)
    text = (EXAMPLE.parent / ".env.example").read_text()
    assert "ACCESS_TOKEN_SECRET=\n" in text and "REFRESH_TOKEN_SECRET=\n" in text
    (tmp_path / ".env").write_text(text)
    from flask_tokenauth import ConfigurationError

    with pytest.raises(ConfigurationError, match="TOKENAUTH_ACCESS_SECRET is not set"):
        example.create_app()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_env_fills_the_secrets(tmp_path: Path) -> None:
    """``make .env`` (run by ``make run``) fills both empty secret lines with
    distinct random values that pass the start-up checks."""
    root = EXAMPLE.parent.parent
    (tmp_path / "examples").mkdir()
    shutil.copy(root / "examples" / ".env.example", tmp_path / "examples")
    subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(root / "Makefile"),
            f"BIN={Path(sys.executable).parent}",
            ".env",
        ],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    values = dotenv_values(tmp_path / ".env")
    access, refresh = values["ACCESS_TOKEN_SECRET"], values["REFRESH_TOKEN_SECRET"]
    assert access and refresh and access != refresh
    assert len(access) == len(refresh) == 64
    settings = Settings.from_mapping(
        {"TOKENAUTH_ACCESS_SECRET": access, "TOKENAUTH_REFRESH_SECRET": refresh}
    )
    assert settings.access_secret == access.encode()


@pytest.fixture
def example_app(
    example: ModuleType, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Flask:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name, value in {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ACCESS_TOKEN_SECRET": ACCESS_SECRET,
        "REFRESH_TOKEN_SECRET": REFRESH_SECRET,
        "TOKENAUTH_BCRYPT_ROUNDS": "4",
    }.items():
        monkeypatch.setenv(name, value)
    app: Flask = example.create_app()
    return app


def test_example_tokens_carry_the_email(example_app: Flask) -> None:
    """As the tutorial's do, from login and from every refresh."""
    auth = Auth(example_app.test_client())
    auth.register(" Someone@Example.com")
    for response in (auth.login("someone@example.com"), auth.refresh(), auth.refresh()):
        assert response.status_code == 200, response.get_json()
        claims = jwt.decode(
            response.get_json()["accessToken"],
            ACCESS_SECRET,
            algorithms=["HS256"],
            options={"verify_aud": False},
        )
        assert claims["email"] == "someone@example.com"


def test_example_sets_security_headers_app_wide(example_app: Flask) -> None:
    """The tutorial sets them on every response, not only the API's."""
    client = example_app.test_client()
    for path in ("/api/health", "/"):
        with client.get(path) as response:
            assert response.status_code == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "PUT"])
def test_example_api_answers_unusual_methods_in_json(
    example_app: Flask, method: str
) -> None:
    client = example_app.test_client()
    for path in ("/api/profile", "/api/health"):
        response = client.open(path, method=method)
        assert response.status_code == 405
        assert response.get_json()["code"] == "METHOD_NOT_ALLOWED"
        assert "GET" in response.headers["Allow"]
    assert client.get("/api/nope").get_json()["code"] == "NOT_FOUND"
    page = client.open("/", method=method)  # a page: Flask's HTML
    assert page.status_code == 405
    assert not page.is_json


def test_example_turns_the_account_flows_on_with_mail_to_the_log(
    example_app: Flask,
) -> None:
    """With no mail configured (``make run``): every flow on, each mail in
    the log, links to the development server."""
    settings: Settings = example_app.extensions["tokenauth"].settings
    assert settings.mail_backend == "log"
    assert settings.link_base_url == "http://127.0.0.1:5000"
    assert settings.email_verification == "optional"
    assert settings.password_reset_enabled
    assert settings.change_email_enabled
    assert settings.email_login_enabled


@pytest.mark.parametrize("source", ["environment", "create_app"])
def test_example_reads_mail_keys_as_flask_mail_does(
    example: ModuleType,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    source: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ACCESS_TOKEN_SECRET": ACCESS_SECRET,
        "REFRESH_TOKEN_SECRET": REFRESH_SECRET,
        "TOKENAUTH_LINK_BASE_URL": "https://app.example.com",
        "TOKENAUTH_EMAIL_LOGIN_ENABLED": "false",
    }.items():
        monkeypatch.setenv(name, value)
    mail = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": "2525",
        "MAIL_USE_TLS": "false",
        "MAIL_USE_SSL": "false",
        "MAIL_USERNAME": "",
        "MAIL_DEFAULT_SENDER": "Demo <no-reply@example.com>",
    }
    if source == "environment":
        for name, value in mail.items():
            monkeypatch.setenv(name, value)
        app = example.create_app()
    else:
        app = example.create_app({"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 2525})
    # Typed as Flask-Mail wants them: "false" from the environment is False.
    assert app.config["MAIL_PORT"] == 2525
    if source == "environment":
        assert app.config["MAIL_USE_TLS"] is False
        assert app.config["MAIL_USE_SSL"] is False
        assert "MAIL_USERNAME" not in app.config  # empty: unset
        assert app.config["MAIL_DEFAULT_SENDER"] == "Demo <no-reply@example.com>"
    settings: Settings = app.extensions["tokenauth"].settings
    # A mail server configured: not the log; the environment's choices win.
    assert settings.mail_backend != "log"
    assert settings.link_base_url == "https://app.example.com"
    assert not settings.email_login_enabled
    assert settings.password_reset_enabled


def test_example_serves_the_link_pages_without_a_referrer(
    example: ModuleType, example_app: Flask
) -> None:
    """Each link's path (the ``TOKENAUTH_*_URL`` defaults) is the demo page,
    with ``Referrer-Policy: no-referrer``; the token is in the fragment."""
    settings: Settings = example_app.extensions["tokenauth"].settings
    templates = [
        settings.verify_email_url,
        settings.reset_password_url,
        settings.change_email_confirm_url,
        settings.change_email_cancel_url,
        settings.email_login_url,
    ]
    client = example_app.test_client()
    demo = client.get("/")
    paths = []
    for template in templates:
        path, _, fragment = template.partition("#")
        assert fragment == "token={token}"
        paths.append(path)
        with client.get(path) as page:
            assert page.status_code == 200
            assert page.mimetype == "text/html"
            assert page.data == demo.data
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert page.headers["X-Frame-Options"] == "DENY"
    assert sorted(paths) == sorted(example.LINK_PAGES)
    demo.close()


def test_example_mails_through_the_server_of_its_environment(
    example: ModuleType,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    smtp_server: Any,
) -> None:
    """``MAIL_SERVER`` and ``MAIL_PORT`` from the environment, strings as
    the environment has them: the example's mails reach that server, their
    links at ``TOKENAUTH_LINK_BASE_URL``'s pages."""
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ACCESS_TOKEN_SECRET": ACCESS_SECRET,
        "REFRESH_TOKEN_SECRET": REFRESH_SECRET,
        "TOKENAUTH_BCRYPT_ROUNDS": "4",
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": str(smtp_server.port),
        "MAIL_USE_TLS": "false",
        "TOKENAUTH_LINK_BASE_URL": "https://demo.example.com",
    }.items():
        monkeypatch.setenv(name, value)
    app = example.create_app()
    client = app.test_client()
    Auth(client).register("someone@example.com")
    response = client.post(
        "/api/auth/forgot-password", json={"email": "someone@example.com"}
    )
    assert response.status_code == 202
    wait_for_mail(app)
    [message] = [
        m
        for m in smtp_server.wait_for("someone@example.com")
        if "/reset-password#" in link_in(m)
    ]
    assert message["From"] == "flask_tokenauth demo <no-reply@example.com>"
    assert link_in(message).startswith("https://demo.example.com/reset-password#token=")
