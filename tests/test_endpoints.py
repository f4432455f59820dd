"""The tutorial's contract: endpoints, JSON shapes, cookie and headers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_tokenauth import current_user, login_required

from .conftest import PASSWORD, Auth, bearer


def cookie_header(response: Any, name: str = "refresh_token") -> str:
    """The one ``Set-Cookie`` of ``name`` (a login also sets the device
    cookie, see test_lockout.py)."""
    headers = [
        h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")
    ]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return str(headers[0])


@pytest.mark.requirement("ASVS-5.0-3.3.4", "NIST-800-63B-4-5.1.1", "ASVS-5.0-3.3.2")
def test_register_shape_and_cookie(auth: Auth) -> None:
    response = auth.register("  New.User@Example.COM ")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"user", "accessToken"}
    assert body["user"] == {"id": body["user"]["id"], "email": "new.user@example.com"}
    assert isinstance(body["user"]["id"], int)
    header = cookie_header(response)
    assert header.startswith("refresh_token=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/api/auth"):
        assert attribute in header
    assert "Max-Age=604" in header  # 7 days = 604800 s, give or take a second
    # The refresh token is only ever in the cookie.
    assert auth.refresh_cookie() not in response.get_data(as_text=True)


def test_login_shape(auth: Auth) -> None:
    user_id = auth.register().get_json()["user"]["id"]
    response = auth.login("USER@example.com")
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {"id": user_id, "email": "user@example.com"}
    assert set(body) == {"user", "accessToken"}
    assert "HttpOnly" in cookie_header(response)


def test_refresh_shape_rotates_cookie(auth: Auth) -> None:
    auth.register()
    first = auth.refresh_cookie()
    response = auth.refresh()
    assert response.status_code == 200
    assert set(response.get_json()) == {"accessToken"}
    second = auth.refresh_cookie()
    assert second and second != first
    assert second not in response.get_data(as_text=True)


def test_logout_clears_cookie(auth: Auth) -> None:
    auth.register()
    response = auth.logout()
    assert response.status_code == 200
    assert response.get_json() == {"message": "Logged out successfully"}
    header = cookie_header(response)
    assert header.startswith("refresh_token=;")
    for attribute in (
        "Max-Age=0",
        "Path=/api/auth",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
    ):
        assert attribute in header
    assert auth.refresh_cookie() is None


@pytest.mark.parametrize("path", ["register", "login", "refresh", "logout"])
@pytest.mark.requirement("ASVS-5.0-3.4.4", "ASVS-5.0-14.3.2")
def test_security_headers(auth: Auth, path: str) -> None:
    auth.register("headers@example.com")
    response = auth.client.post(
        f"/api/auth/{path}", json={"email": "headers@example.com", "password": PASSWORD}
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_security_headers_app_wide_option(make_app: Any) -> None:
    plain = make_app()
    wide = make_app(TOKENAUTH_SECURITY_HEADERS_APP_WIDE=True)
    for app in (plain, wide):
        app.add_url_rule("/home", "home", lambda: "home")
    assert "X-Frame-Options" not in plain.test_client().get("/home").headers
    response = wide.test_client().get("/home")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_custom_prefix_moves_cookie_path(make_app: Any) -> None:
    app = make_app(url_prefix="/v2/session")
    client = app.test_client()
    auth = Auth(client, prefix="/v2/session")
    response = auth.register()
    assert response.status_code == 201
    assert "Path=/v2/session" in cookie_header(response)
    assert auth.refresh().status_code == 200
    assert client.post("/api/auth/login").status_code == 404


def test_protected_view_round_trip(app: Flask, client: FlaskClient, auth: Auth) -> None:
    @app.get("/api/profile")
    @login_required
    def profile() -> Any:
        return {"user": {"id": current_user.id, "email": current_user.email}}

    token = auth.register().get_json()["accessToken"]
    response = client.get("/api/profile", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json()["user"]["email"] == "user@example.com"
    refreshed = auth.refresh().get_json()["accessToken"]
    assert client.get("/api/profile", headers=bearer(refreshed)).status_code == 200
