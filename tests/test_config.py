"""Configuration is read and validated once, at start-up."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import Engine

from flask_tokenauth import ConfigurationError, TokenAuth, auth_bp
from flask_tokenauth._config import Settings, parse_duration

from .conftest import ACCESS_SECRET, Auth, base_config


def settings(**config: Any) -> Settings:
    return Settings.from_mapping(base_config(**config))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("900s", timedelta(seconds=900)),
        ("900", timedelta(seconds=900)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        (" 2W ", timedelta(weeks=2)),
        (900, timedelta(seconds=900)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_durations(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["15x", "m15", "", "-5m", 0, -1, True, None, "1.5h"])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="TOKENAUTH_ACCESS_EXPIRES"):
        settings(TOKENAUTH_ACCESS_EXPIRES=value)


def test_defaults() -> None:
    s = settings()
    assert s.access_expires == timedelta(minutes=15)
    assert s.refresh_expires == timedelta(days=7)
    assert (s.algorithm, s.cookie_name, s.cookie_secure) == (
        "HS256",
        "refresh_token",
        True,
    )
    assert (s.cookie_samesite, s.max_content_length) == ("Strict", 10 * 1024)
    assert (
        Settings.from_mapping(
            {**base_config(), "TOKENAUTH_BCRYPT_ROUNDS": 12}
        ).bcrypt_rounds
        == 12
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"TOKENAUTH_ACCESS_SECRET": None}, "TOKENAUTH_ACCESS_SECRET is not set"),
        ({"TOKENAUTH_REFRESH_SECRET": ""}, "TOKENAUTH_REFRESH_SECRET is not set"),
        ({"TOKENAUTH_ACCESS_SECRET": "x" * 31}, "at least 32"),
        ({"TOKENAUTH_REFRESH_SECRET": "y" * 31}, "TOKENAUTH_REFRESH_SECRET is 31"),
        ({"TOKENAUTH_REFRESH_SECRET": ACCESS_SECRET}, "must be different"),
        ({"TOKENAUTH_ALGORITHM": "none"}, "TOKENAUTH_ALGORITHM must be one of"),
        ({"TOKENAUTH_ALGORITHM": "RS256"}, "TOKENAUTH_ALGORITHM=RS256 signs with"),
        (
            {"TOKENAUTH_ALGORITHM": "HS512", "TOKENAUTH_ACCESS_SECRET": "z" * 63},
            "at least 64",
        ),
        ({"TOKENAUTH_COOKIE_SAMESITE": "sometimes"}, "TOKENAUTH_COOKIE_SAMESITE"),
        (
            {"TOKENAUTH_COOKIE_SAMESITE": "None", "TOKENAUTH_COOKIE_SECURE": False},
            "requires",
        ),
        ({"TOKENAUTH_COOKIE_SECURE": "maybe"}, "TOKENAUTH_COOKIE_SECURE"),
        ({"TOKENAUTH_COOKIE_NAME": "a b"}, "TOKENAUTH_COOKIE_NAME"),
        ({"TOKENAUTH_BCRYPT_ROUNDS": 3}, "TOKENAUTH_BCRYPT_ROUNDS"),
        ({"TOKENAUTH_BCRYPT_ROUNDS": "twelve"}, "TOKENAUTH_BCRYPT_ROUNDS"),
        ({"TOKENAUTH_PASSWORD_MAX_LENGTH": 63}, "TOKENAUTH_PASSWORD_MAX_LENGTH"),
        ({"TOKENAUTH_ALLOWED_ORIGINS": ["https://a.example/path"]}, "not an origin"),
        ({"TOKENAUTH_ISSUER": ""}, "TOKENAUTH_ISSUER"),
        ({"TOKENAUTH_ACESS_SECRET": "typo"}, "Unknown configuration key"),
    ],
)
@pytest.mark.requirement("RFC-8725-3.5", "ASVS-5.0-9.1.2")
def test_misconfiguration_stops_start_up(config: dict[str, Any], message: str) -> None:
    app = Flask(__name__)
    app.config.update(base_config(**config))
    with pytest.raises(ConfigurationError, match=message):
        app.register_blueprint(auth_bp)
    assert "tokenauth" not in app.extensions


HOST = {"TOKENAUTH_COOKIE_NAME": "__Host-refresh", "TOKENAUTH_COOKIE_PATH": "/"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # __Host- needs Path=/, Secure and no Domain, or browsers drop it.
        ({"TOKENAUTH_COOKIE_NAME": "__Host-refresh"}, "TOKENAUTH_COOKIE_PATH='/'"),
        ({**HOST, "TOKENAUTH_COOKIE_PATH": "/api/auth"}, "TOKENAUTH_COOKIE_PATH='/'"),
        ({**HOST, "TOKENAUTH_COOKIE_SECURE": False}, "TOKENAUTH_COOKIE_SECURE=True"),
        ({**HOST, "TOKENAUTH_COOKIE_DOMAIN": "example.com"}, "TOKENAUTH_COOKIE_DOMAIN"),
        ({"TOKENAUTH_COOKIE_NAME": "__HOST-refresh"}, "__Host- prefix"),
        ({"TOKENAUTH_COOKIE_NAME": "__host-refresh"}, "__Host- prefix"),
        # __Secure- needs Secure.
        (
            {"TOKENAUTH_COOKIE_NAME": "__Secure-rt", "TOKENAUTH_COOKIE_SECURE": False},
            "TOKENAUTH_COOKIE_SECURE=True",
        ),
        (
            {"TOKENAUTH_COOKIE_NAME": "__secure-rt", "TOKENAUTH_COOKIE_SECURE": "no"},
            "__Secure- prefix",
        ),
        ({"TOKENAUTH_COOKIE_PATH": "api/auth"}, "TOKENAUTH_COOKIE_PATH must be"),
        ({"TOKENAUTH_COOKIE_PATH": "/a;Domain=x"}, "TOKENAUTH_COOKIE_PATH must be"),
        ({"TOKENAUTH_COOKIE_PATH": 1}, "TOKENAUTH_COOKIE_PATH must be"),
    ],
)
def test_cookies_a_browser_would_drop_stop_start_up(
    config: dict[str, Any], message: str
) -> None:
    app = Flask(__name__)
    app.config.update(base_config(**config))
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        app.register_blueprint(auth_bp)


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({}, None),
        ({"TOKENAUTH_COOKIE_PATH": "/"}, "/"),
        (HOST, "/"),
        ({"TOKENAUTH_COOKIE_NAME": "__Secure-rt", "TOKENAUTH_COOKIE_PATH": "/a"}, "/a"),
        (
            {
                "TOKENAUTH_COOKIE_NAME": "__Secure-rt",
                "TOKENAUTH_COOKIE_DOMAIN": "example.com",
            },
            None,
        ),
    ],
)
def test_cookie_prefixes_with_what_they_need(
    config: dict[str, Any], path: str | None
) -> None:
    assert settings(**config).cookie_path == path


@pytest.mark.parametrize("key", ["TOKENAUTH_ACCESS_SECRET", "TOKENAUTH_REFRESH_SECRET"])
@pytest.mark.parametrize(
    "value",
    [
        # examples/.env.example before 0.1, and the tutorial's .env
        "change-me-to-a-random-string-of-at-least-32-bytes-aaaa",
        "change-me-to-another-random-string-of-32-bytes-bbbbbb",
        "your-256-bit-secret-here-make-it-long-and-random",
        "another-256-bit-secret-different-from-access",
        "ANOTHER-256-bit-secret-different-from-access",
        # the markers, in any case and spelling
        "x" * 40 + "CHANGEME",
        "please_Change_Me_" + "k" * 32,
        "replace-me-" + "q" * 32,
        "my-app-your-secret-" + "z" * 32,
        b"changeme" + b"\xff" * 32,
    ],
)
@pytest.mark.requirement("RFC-8725-3.5")
def test_placeholder_secrets_are_refused(key: str, value: str | bytes) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"{key} is a placeholder.*token_urlsafe"
    ):
        settings(**{key: value})


def test_string_values_from_the_environment() -> None:
    s = settings(
        TOKENAUTH_COOKIE_SECURE="false",
        TOKENAUTH_BCRYPT_ROUNDS="10",
        TOKENAUTH_COOKIE_SAMESITE="lax",
        TOKENAUTH_ACCESS_EXPIRES="1h",
    )
    assert (s.cookie_secure, s.bcrypt_rounds, s.cookie_samesite) == (False, 10, "Lax")
    assert s.access_expires == timedelta(hours=1)


def test_register_blueprint_alone_is_enough(migrated_engine: Engine) -> None:
    app = Flask(__name__)
    url = migrated_engine.url.render_as_string(hide_password=False)
    app.config.update(
        base_config(TOKENAUTH_DATABASE_URL=url, TOKENAUTH_ACCESS_EXPIRES="1h")
    )
    app.register_blueprint(auth_bp)
    assert "tokenauth" in app.extensions
    response = Auth(app.test_client()).register("alone@example.com")
    assert response.status_code == 201
    claims = jwt.decode(
        response.get_json()["accessToken"], options={"verify_signature": False}
    )
    assert claims["exp"] - claims["iat"] == 3600
    with migrated_engine.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM tokenauth_users WHERE email = 'alone@example.com'"
        )


def test_sqlalchemy_database_uri_fallback(migrated_engine: Engine) -> None:
    app = Flask(__name__)
    url = migrated_engine.url.render_as_string(hide_password=False)
    app.config.update(base_config(SQLALCHEMY_DATABASE_URI=url))
    app.register_blueprint(auth_bp)
    assert app.extensions["tokenauth"].db.engine.url == migrated_engine.url


def test_zero_setup_default_is_sqlite_in_the_instance_folder(tmp_path: Any) -> None:
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(base_config())
    app.register_blueprint(auth_bp)
    engine = app.extensions["tokenauth"].db.engine
    assert engine.dialect.name == "sqlite"
    assert engine.url.database == str(tmp_path / "instance" / "tokenauth.sqlite3")
    engine.dispose()


def test_double_init_is_refused(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="already set up"):
        TokenAuth().init_app(app)


def test_options_in_code(engine: Engine) -> None:
    app = Flask(__name__)
    app.config.update(base_config())
    TokenAuth(app, engine=lambda: engine, config={"cookie_name": "rt"})
    app.register_blueprint(auth_bp)
    response = Auth(app.test_client()).register()
    assert response.headers["Set-Cookie"].startswith("rt=")


def test_two_apps_do_not_share_state(make_app: Any) -> None:
    one = make_app()
    two = make_app(
        TOKENAUTH_ACCESS_SECRET="another-access-secret-" + "c" * 40,
        TOKENAUTH_COOKIE_NAME="other",
    )
    ext = TokenAuth()
    assert not hasattr(ext, "app")
    for app in (one, two):

        @app.get("/me")
        def me() -> Any:
            from flask_tokenauth import current_claims

            return {"sub": current_claims["sub"]}

    token = Auth(one.test_client()).register().get_json()["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    assert one.test_client().get("/me", headers=headers).status_code == 200
    assert two.test_client().get("/me", headers=headers).status_code == 401
    assert one.extensions["tokenauth"].settings.cookie_name == "refresh_token"
    assert two.extensions["tokenauth"].settings.cookie_name == "other"
