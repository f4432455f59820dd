"""How the description is served: made once per registration and script
root (not per request: it costs tens of milliseconds, on a route anyone may
call), the cache bounded and per app, the answer still conditional."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_tokenauth.views import openapi as view

pytestmark = pytest.mark.sqlite


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The documents made, as (registration, server url)."""
    made: list[tuple[str, str]] = []
    real = view.openapi_document

    def counting(app: Any, registration: str, server_url: str) -> dict[str, Any]:
        made.append((registration, server_url))
        return real(app, registration, server_url)

    monkeypatch.setattr(view, "openapi_document", counting)
    return made


def test_made_once_then_served_from_the_cache(
    app: Flask, builds: list[tuple[str, str]]
) -> None:
    client = app.test_client()
    first = client.get("/api/auth/openapi.json")
    second = client.get("/api/auth/openapi.json")
    head = client.head("/api/auth/openapi.json")
    assert builds == [("tokenauth", "/")]
    assert first.get_data() == second.get_data()
    assert first.headers["ETag"] == second.headers["ETag"] == head.headers["ETag"]
    assert head.headers["Content-Length"] == str(len(first.get_data()))
    again = client.get(
        "/api/auth/openapi.json", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304
    assert not again.get_data()


def test_one_document_per_script_root(
    app: Flask, builds: list[tuple[str, str]]
) -> None:
    client = app.test_client()
    mounted = client.get(
        "/api/auth/openapi.json", environ_overrides={"SCRIPT_NAME": "/shop"}
    )
    plain = client.get("/api/auth/openapi.json")
    assert mounted.get_json()["servers"] == [{"url": "/shop"}]
    assert plain.get_json()["servers"] == [{"url": "/"}]
    assert mounted.headers["ETag"] != plain.headers["ETag"]
    assert builds == [("tokenauth", "/shop"), ("tokenauth", "/")]


def test_the_cache_is_bounded(app: Flask, builds: list[tuple[str, str]]) -> None:
    """A client that invents script roots (a proxy's ``X-Forwarded-Prefix``)
    makes work, not memory."""
    client = app.test_client()
    for n in range(3 * view.CACHE_SIZE):
        root = f"/p{n}"
        answer = client.get(
            "/api/auth/openapi.json", environ_overrides={"SCRIPT_NAME": root}
        )
        assert answer.get_json()["servers"] == [{"url": root}]
    from flask_tokenauth._state import get_state

    assert len(get_state(app).openapi_cache) == view.CACHE_SIZE
    assert len(builds) == 3 * view.CACHE_SIZE


def test_each_app_its_own(make_app: Any, builds: list[tuple[str, str]]) -> None:
    """Two apps in one process: each describes its own settings."""
    plain = make_app()
    passkeys = make_app(
        TOKENAUTH_PASSKEYS_ENABLED=True,
        TOKENAUTH_WEBAUTHN_RP_ID="localhost",
        TOKENAUTH_WEBAUTHN_ORIGINS="http://localhost:5000",
    )
    without = plain.test_client().get("/api/auth/openapi.json").get_json()
    with_ = passkeys.test_client().get("/api/auth/openapi.json").get_json()
    assert "/api/auth/passkeys" not in without["paths"]
    assert "/api/auth/passkeys" in with_["paths"]
    assert len(builds) == 2
