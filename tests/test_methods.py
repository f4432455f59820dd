"""Every method on a URL of the blueprint is answered by the blueprint: JSON,
the security headers, 405 with its own ``Allow`` (or 404 under the prefix),
even for methods no rule lists and with the host's own HTML error pages."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse

from flask_tokenauth import TokenAuth, auth_bp

from .conftest import Auth, base_config, bearer

ODD_METHODS = ["TRACE", "PROPFIND", "FOO", "CONNECT", "MKCOL"]


def assert_ours(response: TestResponse, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    assert response.get_json()["code"] == code
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def add_host_pages(app: Flask) -> None:
    """The host's own HTML pages for every error, and a route of its own."""

    @app.errorhandler(405)
    def html_405(e: Exception) -> tuple[str, int]:
        return "<h1>host 405</h1>", 405

    @app.errorhandler(HTTPException)
    def html_any(e: HTTPException) -> tuple[str, int]:
        return f"<h1>host {e.code}</h1>", e.code or 500

    app.add_url_rule("/home", "home", lambda: "home", methods=["GET", "POST"])


@pytest.fixture(params=[False, True], ids=["plain-host", "host-html-handlers"])
def host_app(request: pytest.FixtureRequest, make_app: Any) -> Flask:
    app: Flask = make_app()
    if request.param:
        add_host_pages(app)
    return app


@pytest.mark.parametrize("method", ODD_METHODS)
@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/auth/login", "OPTIONS, POST"),
        ("/api/auth/register", "OPTIONS, POST"),
        ("/api/auth/refresh", "OPTIONS, POST"),
        ("/api/auth/logout", "OPTIONS, POST"),
        ("/api/auth/client.js", "GET, HEAD, OPTIONS"),
    ],
)
def test_unlisted_methods_get_our_405(
    host_app: Flask, method: str, path: str, allow: str
) -> None:
    response = host_app.test_client().open(path, method=method)
    assert_ours(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == allow


@pytest.mark.parametrize("method", ODD_METHODS)
@pytest.mark.parametrize("path", ["/api/auth/", "/api/auth/nope", "/api/auth/a/b"])
def test_unlisted_methods_under_the_prefix_get_our_404(
    host_app: Flask, method: str, path: str
) -> None:
    assert_ours(host_app.test_client().open(path, method=method), 404, "NOT_FOUND")


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
def test_protected_routes_answer_odd_methods_as_they_answer_put(
    host_app: Flask, method: str
) -> None:
    """The view runs as for any method it refuses: authentication first."""
    client = host_app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    for path in ("/api/auth/sessions", "/api/auth/sessions/abc", "/api/auth/password"):
        assert_ours(client.open(path, method=method), 401, "TOKEN_MISSING")
        odd = client.open(path, method=method, headers=bearer(token))
        put = client.open(path, method="PUT", headers=bearer(token))
        assert_ours(odd, 405, "METHOD_NOT_ALLOWED")
        assert odd.headers["Allow"] == put.headers["Allow"]


def test_options_still_answers_preflight(host_app: Flask) -> None:
    response = host_app.test_client().options("/api/auth/login")
    assert response.status_code == 200
    assert "POST" in response.headers["Allow"]


def test_host_routes_keep_their_own_405(make_app: Any) -> None:
    app: Flask = make_app()
    add_host_pages(app)
    client = app.test_client()
    for method in ("TRACE", "PUT", "FOO"):
        response = client.open("/home", method=method)
        assert response.status_code == 405
        assert response.get_data(as_text=True) == "<h1>host 405</h1>"
        assert "X-Frame-Options" not in response.headers
    assert client.open("/nowhere", method="TRACE").get_data() == b"<h1>host 404</h1>"


def test_nested_and_renamed_blueprint(engine: Any) -> None:
    """The hook finds our rules under any prefix, name or parent."""
    app = Flask(__name__)
    app.config.update(base_config())
    TokenAuth(engine=engine).init_app(app)
    add_host_pages(app)
    parent = Blueprint("api", __name__, url_prefix="/v1")
    parent.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(parent)
    app.register_blueprint(auth_bp, name="second", url_prefix="/second")
    client = app.test_client()
    for prefix in ("/v1/auth", "/second"):
        response = client.open(f"{prefix}/login", method="TRACE")
        assert_ours(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["Allow"] == "OPTIONS, POST"
        assert_ours(client.open(f"{prefix}/x", method="FOO"), 404, "NOT_FOUND")


def test_odd_methods_count_against_the_rate_limit(make_app: Any) -> None:
    """Our blueprint's hooks (the rate limits) run for them as for a PUT."""
    app: Flask = make_app(TOKENAUTH_RATELIMIT_LOGIN="2/minute")
    client = app.test_client()
    for _ in range(2):
        assert client.open("/api/auth/login", method="TRACE").status_code == 405
    assert_ours(client.open("/api/auth/login", method="TRACE"), 429, "RATE_LIMITED")


def test_host_http_exception_page_does_not_answer_our_errors(make_app: Any) -> None:
    """Our errors are HTTPExceptions: a host's catch-all page must not take
    them (Flask would choose it over our per-status handlers)."""
    app: Flask = make_app()
    add_host_pages(app)
    auth = Auth(app.test_client())
    auth.register()
    assert_ours(auth.login(password="wrong password!"), 401, "INVALID_CREDENTIALS")
    assert_ours(app.test_client().get("/api/auth/sessions"), 401, "TOKEN_MISSING")
    assert_ours(auth.client.put("/api/auth/login"), 405, "METHOD_NOT_ALLOWED")
