"""The table of configuration keys is the one source of the settings and of
their documentation: the docs' configuration reference is generated from it
(tests/test_docs.py checks that), and every setting comes from a key of it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from flask_tokenauth import ConfigurationError
from flask_tokenauth._config import DEFAULTS, Settings
from flask_tokenauth._config_checks import DERIVED
from flask_tokenauth._config_keys import BY_NAME, KEYS

from .conftest import base_config


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_every_key_is_documented(key: Any) -> None:
    # One line of Markdown: no line break; no "|", so it also fits a table.
    for text in (key.doc, key.default_shown()):
        assert text.strip() == text
        assert text
        assert "\n" not in text
        assert "|" not in text
    assert key.doc.endswith((".", ")"))
    assert key.name == key.name.upper()
    assert not key.name.startswith("TOKENAUTH_")


def test_each_key_is_declared_once() -> None:
    assert len(BY_NAME) == len(KEYS)
    assert list(DEFAULTS) == [key.name for key in KEYS]


def test_every_setting_comes_from_a_key_or_a_documented_derivation() -> None:
    fields = {field.name for field in dataclasses.fields(Settings)}
    from_keys = {key.field for key in KEYS}
    sources = {name for names in DERIVED.values() for name in names}
    # Each field is filled by the key of its name or by a derivation ...
    assert fields == (fields & from_keys) | set(DERIVED)
    assert not set(DERIVED) & from_keys
    # ... and each key fills a field or feeds a derivation.
    assert {key.name for key in KEYS if key.field not in fields} <= sources
    assert sources <= set(BY_NAME)


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_every_default_is_a_valid_value(key: Any) -> None:
    if key.default_shown().startswith("**required**"):
        with pytest.raises(ConfigurationError, match=f"{key.full_name} is not set"):
            Settings.from_mapping(base_config(**{key.full_name: key.default}))
        return
    key.parse(key.default, key.full_name)


@pytest.mark.parametrize("name", ["LEEWAY", "REUSE_INTERVAL"])
@pytest.mark.parametrize("value", ["0", "0s", 0, None, ""])
def test_durations_shown_as_zero_parse_zero(name: str, value: object) -> None:
    """The docs show their default as ``0``; from the environment that is
    the string ``"0"``, which must be read as zero, not refused."""
    settings = Settings.from_mapping(base_config(**{f"TOKENAUTH_{name}": value}))
    assert getattr(settings, name.lower()) == timedelta(0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # Each parser of _parsers.py and each check of _config_checks.py, by
        # the message that names the key to set.
        # Both secrets missing: the access secret is named first.
        (
            {"TOKENAUTH_ACCESS_SECRET": None, "TOKENAUTH_REFRESH_SECRET": None},
            "TOKENAUTH_ACCESS_SECRET is not set",
        ),
        ({"TOKENAUTH_REUSE_INTERVAL": -1}, "TOKENAUTH_REUSE_INTERVAL must not be"),
        ({"TOKENAUTH_LEEWAY": "soon"}, "TOKENAUTH_LEEWAY must be a timedelta"),
        ({"TOKENAUTH_KEYS_RELOAD_INTERVAL": "0"}, "KEYS_RELOAD_INTERVAL must be pos"),
        ({"TOKENAUTH_IDLE_TIMEOUT": "x"}, "TOKENAUTH_IDLE_TIMEOUT must be a"),
        ({"TOKENAUTH_JWKS_PATH": "jwks"}, "TOKENAUTH_JWKS_PATH must be a path"),
        ({"TOKENAUTH_ENGINE_OPTIONS": "x"}, "TOKENAUTH_ENGINE_OPTIONS must be a dict"),
        ({"TOKENAUTH_AUDIENCE": 3}, "TOKENAUTH_AUDIENCE must be a non-empty"),
        ({"TOKENAUTH_MAX_CONTENT_LENGTH": 255}, "between 256 and 10485760"),
        ({"TOKENAUTH_TRUSTED_PROXIES": 11}, "TOKENAUTH_TRUSTED_PROXIES must be betw"),
        ({"TOKENAUTH_TOKEN_CACHE_SIZE": -1}, "TOKENAUTH_TOKEN_CACHE_SIZE must be be"),
        ({"TOKENAUTH_ALLOWED_ORIGINS": 5}, "TOKENAUTH_ALLOWED_ORIGINS must be a list"),
        ({"TOKENAUTH_RATELIMIT_LOGIN": "often"}, "TOKENAUTH_RATELIMIT_LOGIN must be"),
        ({"TOKENAUTH_REVOCATION": "x"}, "TOKENAUTH_REVOCATION must be one of auto"),
        ({"TOKENAUTH_REVOCATION": "redis"}, "needs TOKENAUTH_REDIS_URL"),
        ({"TOKENAUTH_SIGNING_KEY_PASSWORD": 5}, "SIGNING_KEY_PASSWORD must be a str"),
        ({"TOKENAUTH_KEYS_DIR": 5}, "TOKENAUTH_KEYS_DIR must be a path"),
        ({"TOKENAUTH_DEVICE_COOKIE_NAME": "__Host-d"}, "cannot start with '__Host-'"),
        ({"TOKENAUTH_DEVICE_COOKIE_NAME": "refresh_token"}, "must differ from"),
        (
            {"TOKENAUTH_ACCESS_EXPIRES": "3m", "TOKENAUTH_JWKS_MAX_AGE": "3m"},
            "TOKENAUTH_JWKS_MAX_AGE must be shorter than TOKENAUTH_ACCESS_EXPIRES",
        ),
        (
            {"TOKENAUTH_REVOCATION_LISTEN_URL": "sqlite://"},
            "TOKENAUTH_REVOCATION_LISTEN_URL must be a PostgreSQL URL",
        ),
    ],
)
def test_each_check_names_its_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_mapping(base_config(**config))


@pytest.mark.parametrize(
    ("config", "field", "expected"),
    [
        ({}, "jwks_max_age", timedelta(minutes=5)),
        ({}, "revocation", "database"),
        ({"TOKENAUTH_REDIS_URL": "redis://h:6379/0"}, "revocation", "redis"),
        ({}, "ratelimit_storage_uri", "memory://"),
        (
            {"TOKENAUTH_REDIS_URL": "redis://h:6379/0"},
            "ratelimit_storage_uri",
            "redis://h:6379/0",
        ),
        (
            {"RATELIMIT_STORAGE_URI": "memory://", "TOKENAUTH_REDIS_URL": "redis://h"},
            "ratelimit_storage_uri",
            "memory://",
        ),
        # Only ours: the app's database is found at set-up (_default_db.py).
        ({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, "database_url", None),
        (
            {"SQLALCHEMY_DATABASE_URI": "sqlite://", "TOKENAUTH_DATABASE_URL": "a://"},
            "database_url",
            "a://",
        ),
        ({}, "database_url", None),
    ],
)
def test_derived_defaults(config: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(Settings.from_mapping(base_config(**config)), field) == expected
