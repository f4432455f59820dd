"""Every method on a URL of the blueprint is answered by the blueprint: JSON,
the security headers, 405 with its own ``Allow``, even for methods no rule
lists and with the host's own HTML error pages.  Every other URL (the host's
routes, and URLs no rule matches, under our prefix or not) is answered as the
host alone answers it, whatever the mount point and registration order."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from flask import Blueprint, Flask
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse

import flask_tokenauth
from flask_tokenauth import TokenAuth, auth_bp

from .conftest import Auth, base_config, bearer
from .openapi_helpers import FULL_CONFIG

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
@pytest.mark.requirement("ASVS-5.0-3.5.3")
def test_unlisted_methods_get_our_405(
    host_app: Flask, method: str, path: str, allow: str
) -> None:
    response = host_app.test_client().open(path, method=method)
    assert_ours(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == allow


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
    assert response.headers["Allow"] == "OPTIONS, POST"
    assert response.get_data() == b""


def test_options_allow_is_what_the_view_takes(make_app: Any) -> None:
    """OPTIONS lists the methods the description declares for the route,
    the ones its 405 lists too (schemathesis's ``allow_header_conformance``
    found every method listed); checked on every described route, signed in
    so that the routes behind a token reach their method check too (a GET
    of one is not a HEAD: ``/sessions`` refuses HEAD, and its OPTIONS must
    not offer it; no rate limit: the mail routes count every request)."""
    app: Flask = make_app(**FULL_CONFIG, TOKENAUTH_RATELIMIT_ENABLED=False)
    client = app.test_client()
    auth = Auth(client)
    auth.register()
    headers = bearer(auth.login().get_json()["accessToken"])
    paths = client.get("/api/auth/openapi.json").get_json()["paths"]
    compared = []
    for path, item in paths.items():
        path = path.replace("{passkey_id}", "a" * 32).replace("{session_id}", "b" * 32)
        refused = client.open(path, method="TRACE", headers=headers)
        assert refused.status_code == 405, path
        documented = {method.upper() for method in item} | {"OPTIONS"}
        allow = set(client.options(path).headers["Allow"].split(", "))
        assert allow == set(refused.headers["Allow"].split(", ")), path
        assert allow == documented, path
        if "HEAD" not in allow:
            assert client.head(path, headers=headers).status_code == 405, path
        compared.append(path)
    assert {"/api/auth/login", "/api/auth/sessions", "/api/auth/mfa"} <= set(compared)


def test_options_of_a_switched_off_route_is_its_404(make_app: Any) -> None:
    """A flow that is off answers 404 to every method, OPTIONS too: no
    ``Allow`` that names a route the app does not serve."""
    app: Flask = make_app()
    for path in ("/api/auth/passkeys", "/api/auth/forgot-password"):
        assert_ours(app.test_client().options(path), 404, "NOT_FOUND")
    assert app.test_client().options("/api/auth/login").status_code == 200


def test_options_follows_the_apps_automatic_options_setting(make_app: Any) -> None:
    """An app that turned Flask's OPTIONS answer off gets our 405 instead."""
    app: Flask = make_app(PROVIDE_AUTOMATIC_OPTIONS=False)
    response = app.test_client().options("/api/auth/login")
    assert_ours(response, 405, "METHOD_NOT_ALLOWED")
    # Its Allow does not name the method it refuses.
    assert response.headers["Allow"] == "POST"
    jwks = app.test_client().options("/api/auth/.well-known/jwks.json")
    assert jwks.headers["Allow"] == "GET, HEAD"


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
        unknown = client.open(f"{prefix}/x", method="FOO")  # no rule: the host's
        assert unknown.get_data() == b"<h1>host 404</h1>"


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


# -- the host's answers, at every mount point ---------------------------------

#: Where the blueprint is mounted: its ``url_prefix`` (``None``: the
#: default), and the parent blueprint's prefix if nested.
MOUNTS = {
    "root": ("", None, ""),
    "default-prefix": (None, None, "/api/auth"),
    "nested": ("/auth", "/v1", "/v1/auth"),
    "nested-at-parent-root": ("", "/v1", "/v1"),
}


def add_host_routes(app: Flask, mount: str) -> None:
    """The host's routes: its index, a route of two methods, and a GET-only
    route under our mount point (``/api/auth/whoami`` by default)."""
    app.add_url_rule("/", "index", lambda: "index")
    if "home" not in app.view_functions:  # add_host_pages adds it too
        app.add_url_rule("/home", "home", lambda: "home", methods=["GET", "POST"])
    app.add_url_rule(f"{mount}/whoami", "whoami", lambda: "host whoami")


def host_only(handlers: bool, mount: str) -> Flask:
    """The host app without flask_tokenauth: what it answers is the oracle."""
    app = Flask(__name__)
    if handlers:
        add_host_pages(app)
    add_host_routes(app, mount)
    return app


def host_with_us(
    engine: Any, handlers: bool, mount_name: str, auth_first: bool
) -> Flask:
    prefix, parent_prefix, mount = MOUNTS[mount_name]
    app = Flask(__name__)
    app.config.update(base_config())
    TokenAuth(engine=engine).init_app(app)
    if handlers:
        add_host_pages(app)

    def register() -> None:
        options = {} if prefix is None else {"url_prefix": prefix}
        if parent_prefix is None:
            app.register_blueprint(auth_bp, **options)
        else:
            parent = Blueprint("api", __name__, url_prefix=parent_prefix)
            parent.register_blueprint(auth_bp, **options)
            app.register_blueprint(parent)

    if auth_first:
        register()
    add_host_routes(app, mount)
    if not auth_first:
        register()
    return app


def host_requests(mount: str) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path in ("/", "/home", "/nope", f"{mount}/whoami")
        for method in ("GET", "POST", "PUT", "TRACE", "PROPFIND", "OPTIONS")
    ] + [
        (method, path)
        for path in (f"{mount}/", f"{mount}/nope", f"{mount}/login/extra", "/a/b")
        for method in ("GET", "POST", "TRACE")
    ]


def answer(response: TestResponse) -> tuple[int, bytes, list[tuple[str, str]]]:
    return response.status_code, response.get_data(), sorted(response.headers)


@pytest.mark.parametrize("auth_first", [True, False], ids=["auth-first", "auth-last"])
@pytest.mark.parametrize("mount_name", MOUNTS)
@pytest.mark.parametrize("handlers", [False, True], ids=["plain", "html-handlers"])
def test_host_answers_are_unchanged(
    engine: Any, handlers: bool, mount_name: str, auth_first: bool
) -> None:
    """Every URL of the host (its routes under any method, its 404s, a
    GET-only route under our mount point, unknown URLs under our prefix) is
    answered byte for byte as the host without us answers it."""
    mount = MOUNTS[mount_name][2]
    ours = host_with_us(engine, handlers, mount_name, auth_first).test_client()
    alone = host_only(handlers, mount).test_client()
    for method, path in host_requests(mount):
        expected = answer(alone.open(path, method=method))
        assert answer(ours.open(path, method=method)) == expected, (method, path)


@pytest.mark.parametrize("auth_first", [True, False], ids=["auth-first", "auth-last"])
@pytest.mark.parametrize("mount_name", MOUNTS)
@pytest.mark.parametrize("handlers", [False, True], ids=["plain", "html-handlers"])
def test_our_urls_answer_json_at_every_mount(
    engine: Any, handlers: bool, mount_name: str, auth_first: bool
) -> None:
    mount = MOUNTS[mount_name][2]
    client = host_with_us(engine, handlers, mount_name, auth_first).test_client()
    for method in ("GET", "PUT", "TRACE", "PROPFIND", "FOO"):
        response = client.open(f"{mount}/login", method=method)
        assert_ours(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["Allow"] == "OPTIONS, POST"
    assert_ours(client.post(f"{mount}/login", json={}), 400, "VALIDATION_ERROR")
    preflight = client.options(f"{mount}/refresh")
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["Allow"]


@pytest.mark.parametrize("mount_name", MOUNTS)
def test_a_host_request_runs_none_of_our_code(engine: Any, mount_name: str) -> None:
    """Nothing of ours is app-wide: a request to a host URL (a route, a 404,
    a 405) calls no function of the package, so it costs the host nothing."""
    client = host_with_us(engine, True, mount_name, True).test_client()
    package = str(Path(flask_tokenauth.__file__).parent)
    ours: list[str] = []

    def watch(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(package):
            ours.append(frame.f_code.co_name)

    mount = MOUNTS[mount_name][2]
    for method, path in [("GET", "/home"), ("GET", "/nope"), ("TRACE", "/home")]:
        sys.setprofile(watch)
        try:
            client.open(path, method=method)
        finally:
            sys.setprofile(None)
    assert ours == []
    sys.setprofile(watch)  # the watch sees our code when it runs
    try:
        client.open(f"{mount}/login", method="TRACE")
    finally:
        sys.setprofile(None)
    assert ours
