"""Cross-site requests: refresh and logout refuse them and rotate nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from .conftest import Auth

CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
]
SAME_SITE = [
    {},
    {"Origin": "http://localhost"},
    {"Origin": "http://LOCALHOST"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
]


def used_tokens(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM refresh_tokens"
                    " WHERE used_at IS NOT NULL OR revoked_at IS NOT NULL"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("route", ["refresh", "logout"])
@pytest.mark.parametrize("headers", CROSS_SITE)
def test_cross_site_is_refused(
    auth: Auth, engine: Engine, route: str, headers: dict[str, str]
) -> None:
    auth.register()
    cookie = auth.refresh_cookie()
    response = auth.client.post(f"/api/auth/{route}", headers=headers)
    assert response.status_code == 403
    assert response.get_json() == {
        "error": "Cross-site request refused",
        "code": "CROSS_SITE_REQUEST",
    }
    assert used_tokens(engine) == 0
    assert auth.refresh_cookie() == cookie
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("headers", SAME_SITE)
def test_same_origin_and_non_browser_clients_pass(
    auth: Auth, headers: dict[str, str]
) -> None:
    auth.register()
    assert auth.refresh(headers=headers).status_code == 200
    assert auth.logout(headers=headers).status_code == 200


def test_allowed_origins(make_app: Any) -> None:
    app = make_app(
        TOKENAUTH_ALLOWED_ORIGINS="https://app.example.com, https://m.example.com"
    )
    auth = Auth(app.test_client())
    auth.register()
    ok = {"Origin": "https://app.example.com", "Sec-Fetch-Site": "cross-site"}
    assert auth.refresh(headers=ok).status_code == 200
    bad = {"Origin": "https://other.example.com"}
    assert auth.refresh(headers=bad).status_code == 403
