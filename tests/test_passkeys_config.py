"""Passkeys' start-up checks: the relying party a browser will accept, and
the ``webauthn`` package (the ``[passkeys]`` extra)."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest

from flask_tokenauth import ConfigurationError
from flask_tokenauth._config import Settings

from .conftest import base_config


def settings(**config: Any) -> Settings:
    return Settings.from_mapping(base_config(**config))


def passkeys(**config: Any) -> Settings:
    return settings(TOKENAUTH_PASSKEYS_ENABLED=True, **config)


def test_off_by_default_and_nothing_required() -> None:
    s = settings()
    assert s.passkeys_enabled is False
    assert s.webauthn_rp_id is None


@pytest.mark.parametrize(
    ("rp_id", "origins"),
    [
        ("example.com", "https://example.com"),
        ("example.com", "https://app.example.com, https://example.com:8443"),
        ("Example.COM", ["https://login.eu.example.com"]),
        ("localhost", "http://localhost:5000"),
        ("localhost", "http://app.localhost:8080"),
        ("app.example.co.uk", "https://app.example.co.uk"),
    ],
)
def test_a_relying_party_browsers_accept(rp_id: str, origins: Any) -> None:
    s = passkeys(TOKENAUTH_WEBAUTHN_RP_ID=rp_id, TOKENAUTH_WEBAUTHN_ORIGINS=origins)
    assert s.webauthn_rp_id == rp_id.lower()
    # No name given: the RP id (the service name when there is one).
    assert s.webauthn_rp_name == rp_id.lower()


def test_rp_name_defaults_to_the_service_name() -> None:
    s = passkeys(
        TOKENAUTH_WEBAUTHN_RP_ID="example.com",
        TOKENAUTH_WEBAUTHN_ORIGINS="https://example.com",
        TOKENAUTH_SERVICE_NAME=["Acme", "acme.example"],
    )
    assert s.webauthn_rp_name == "Acme"
    s = passkeys(
        TOKENAUTH_WEBAUTHN_RP_ID="example.com",
        TOKENAUTH_WEBAUTHN_ORIGINS="https://example.com",
        TOKENAUTH_SERVICE_NAME="Acme",
        TOKENAUTH_WEBAUTHN_RP_NAME="Acme Login",
    )
    assert s.webauthn_rp_name == "Acme Login"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "needs TOKENAUTH_WEBAUTHN_RP_ID"),
        (
            {"TOKENAUTH_WEBAUTHN_RP_ID": "example.com"},
            "needs TOKENAUTH_WEBAUTHN_ORIGINS",
        ),
        # Not a registrable domain: scheme, port, path, a bare TLD, an IP.
        ({"TOKENAUTH_WEBAUTHN_RP_ID": "https://example.com"}, "must be a domain"),
        ({"TOKENAUTH_WEBAUTHN_RP_ID": "example.com:443"}, "must be a domain"),
        ({"TOKENAUTH_WEBAUTHN_RP_ID": "example.com/login"}, "must be a domain"),
        ({"TOKENAUTH_WEBAUTHN_RP_ID": "com"}, "must be a domain"),
        ({"TOKENAUTH_WEBAUTHN_RP_ID": "127.0.0.1"}, "is an IP address"),
        # Each origin's host must be the RP id or under it.
        (
            {
                "TOKENAUTH_WEBAUTHN_RP_ID": "example.com",
                "TOKENAUTH_WEBAUTHN_ORIGINS": "https://example.com.evil.test",
            },
            "not TOKENAUTH_WEBAUTHN_RP_ID 'example.com' nor under it",
        ),
        (
            {
                "TOKENAUTH_WEBAUTHN_RP_ID": "example.com",
                "TOKENAUTH_WEBAUTHN_ORIGINS": "https://notexample.com",
            },
            "nor under it",
        ),
        (
            {
                "TOKENAUTH_WEBAUTHN_RP_ID": "app.example.com",
                "TOKENAUTH_WEBAUTHN_ORIGINS": "https://example.com",
            },
            "nor under it",
        ),
        # https, but for localhost in development.
        (
            {
                "TOKENAUTH_WEBAUTHN_RP_ID": "example.com",
                "TOKENAUTH_WEBAUTHN_ORIGINS": "http://example.com",
            },
            "must be https",
        ),
        (
            {
                "TOKENAUTH_WEBAUTHN_RP_ID": "localhost",
                "TOKENAUTH_WEBAUTHN_ORIGINS": "http://127.0.0.1:5000",
            },
            "nor under it",
        ),
        (
            {
                "TOKENAUTH_WEBAUTHN_RP_ID": "example.com",
                "TOKENAUTH_WEBAUTHN_ORIGINS": "https://example.com/app",
            },
            "not an origin",
        ),
    ],
)
def test_misconfiguration_stops_start_up(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        passkeys(**config)


def test_a_relying_party_is_not_checked_while_passkeys_are_off() -> None:
    s = settings(TOKENAUTH_WEBAUTHN_RP_ID="com")
    assert s.passkeys_enabled is False


def test_without_the_extra_start_up_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "webauthn" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError, match=re.escape("[passkeys]")):
        passkeys(
            TOKENAUTH_WEBAUTHN_RP_ID="example.com",
            TOKENAUTH_WEBAUTHN_ORIGINS="https://example.com",
        )
