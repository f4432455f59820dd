"""Cross-site requests: refresh and logout refuse them and rotate nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from werkzeug.middleware.proxy_fix import ProxyFix

from .conftest import Auth

CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
    # The app is on http://localhost: another scheme or port is another origin.
    {"Origin": "https://localhost"},
    {"Origin": "http://localhost:8080"},
    {"Origin": "https://localhost:80"},
    # Not an origin a browser sends.
    {"Origin": "http://localhost:99999"},
    {"Origin": "http://user@localhost"},
    {"Origin": "http://localhost/path"},
    {"Origin": "localhost"},
    {"Origin": ""},
]
SAME_SITE = [
    {},
    {"Origin": "http://localhost"},
    {"Origin": "http://LOCALHOST"},
    {"Origin": "HTTP://localhost:80"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
]


def used_tokens(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM tokenauth_refresh_tokens"
                    " WHERE used_at IS NOT NULL OR revoked_at IS NOT NULL"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("route", ["refresh", "logout"])
@pytest.mark.parametrize("headers", CROSS_SITE)
@pytest.mark.requirement("ASVS-5.0-3.5.1")
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


#: What a TLS-terminating proxy in front of the app adds to each request.
BEHIND_TLS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com"}


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://app.example.com", 200),
        # The same host over plain http (a network attacker's page) is not.
        ("http://app.example.com", 403),
        ("https://localhost", 403),
    ],
)
def test_behind_a_tls_proxy_with_proxy_fix(
    make_app: Any, origin: str, status: int
) -> None:
    """With werkzeug's ``ProxyFix`` the app knows its public scheme and host,
    and the browser's https ``Origin`` is its own."""
    app = make_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    auth = Auth(app.test_client())
    auth.register()
    headers = {**BEHIND_TLS, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
    assert auth.refresh(headers=headers).status_code == status
    assert auth.logout(headers=headers).status_code == status


@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://app.example.com", 200), ("https://localhost", 403)],
)
def test_behind_a_tls_proxy_with_allowed_origins(
    make_app: Any, origin: str, status: int
) -> None:
    """Without ``ProxyFix`` the app sees http; ``TOKENAUTH_ALLOWED_ORIGINS``
    names its public origin instead."""
    app = make_app(TOKENAUTH_ALLOWED_ORIGINS="https://app.example.com")
    auth = Auth(app.test_client())
    auth.register()
    headers = {**BEHIND_TLS, "Origin": origin}
    assert auth.refresh(headers=headers).status_code == status
    assert auth.logout(headers=headers).status_code == status


@pytest.mark.requirement("ASVS-5.0-3.5.1")
def test_an_https_origin_on_an_http_app_is_refused(auth: Auth) -> None:
    """Neither ``ProxyFix`` nor ``TOKENAUTH_ALLOWED_ORIGINS``: forwarded
    headers are not trusted, the app is on http, an https page is another
    origin."""
    auth.register()
    for headers in (
        {"Origin": "https://localhost"},
        {**BEHIND_TLS, "Origin": "https://app.example.com"},
    ):
        assert auth.refresh(headers=headers).status_code == 403
        assert auth.logout(headers=headers).status_code == 403
