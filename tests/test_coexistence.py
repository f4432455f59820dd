"""Living in a host app: its error handlers, optional authentication, the
user's ``is_authenticated``, Flask-Login in the same app, Flask-WTF's
CSRFProtect (item 6 of issue 10)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from flask import Flask, abort, jsonify
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException

from flask_tokenauth import (
    AnonymousUser,
    User,
    current_claims,
    current_user,
    init_flask_login,
    login_required,
)

from .coexist_app import create_app, load_host_user
from .conftest import ACCESS_KID, ACCESS_SECRET, PASSWORD, Auth, bearer


def expired(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 100, exp=int(time.time()) - 10)
    headers = {"typ": "at+jwt", "kid": ACCESS_KID}
    return jwt.encode(claims, ACCESS_SECRET, algorithm="HS256", headers=headers)


def assert_our_401(response: Any, code: str) -> None:
    assert response.status_code == 401
    assert response.get_json() == {"error": response.get_json()["error"], "code": code}
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')


# -- 1. the host's error handlers do not swallow our 401 ----------------------


def json_handler(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle(error: HTTPException) -> Any:
        return jsonify(error=error.name), error.code


def html_401_handler(app: Flask) -> None:
    @app.errorhandler(401)
    def handle(error: HTTPException) -> Any:
        return "<h1>Please log in</h1>", 401


def exception_handler(app: Flask) -> None:
    @app.errorhandler(Exception)
    def handle(error: Exception) -> Any:
        return "<h1>Oops</h1>", 500


HANDLERS = [json_handler, html_401_handler, exception_handler]


@pytest.fixture(params=HANDLERS, ids=lambda h: h.__name__)
def host(request: pytest.FixtureRequest, app: Flask) -> Flask:
    request.param(app)
    app.config["HANDLER"] = request.param

    @app.get("/api/sync")
    @login_required
    def sync_view() -> Any:
        return {"email": current_user.email}

    @app.get("/api/async")
    @login_required
    async def async_view() -> Any:
        return {"email": current_user.email}

    @app.get("/api/undecorated")
    def undecorated() -> Any:
        return {"email": current_user.email}

    return app


@pytest.fixture
def token(auth: Auth) -> str:
    return str(auth.register().get_json()["accessToken"])


@pytest.mark.parametrize("path", ["/api/sync", "/api/async"])
def test_host_handlers_do_not_swallow_our_401(
    host: Flask, client: FlaskClient, token: str, path: str
) -> None:
    assert client.get(path, headers=bearer(token)).get_json() == {
        "email": "user@example.com"
    }
    assert_our_401(client.get(path, headers=bearer(expired(token))), "TOKEN_EXPIRED")
    assert_our_401(client.get(path), "TOKEN_MISSING")
    assert_our_401(client.get(path, headers=bearer("x.y.z")), "TOKEN_INVALID")


@pytest.mark.parametrize("path", ["/api/sync", "/api/async"])
def test_errors_raised_inside_a_decorated_view_are_ours_too(
    host: Flask, client: FlaskClient, token: str, engine: Engine, path: str
) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tokenauth_users")
    # current_user raises USER_NOT_FOUND inside the view.
    assert_our_401(client.get(path, headers=bearer(token)), "USER_NOT_FOUND")


def test_outside_the_decorator_current_user_raises_to_the_host(
    host: Flask, client: FlaskClient
) -> None:
    """Documented: without the decorator, our errors are raised as any
    exception is, and a host handler that catches them answers.  (An
    ``errorhandler(401)`` does not: it is keyed on werkzeug's
    ``Unauthorized``, which ours are not, so they render themselves.)"""
    response = client.get("/api/undecorated")
    body = response.get_json(silent=True) or {}
    if host.config["HANDLER"] is html_401_handler:
        assert_our_401(response, "TOKEN_MISSING")
    else:
        assert response.status_code in (401, 500)
        assert "code" not in body


def test_the_hosts_own_errors_in_a_decorated_view_stay_the_hosts(
    app: Flask, client: FlaskClient, auth: Auth
) -> None:
    html_401_handler(app)

    @app.get("/api/forbidden")
    @login_required
    def forbidden() -> Any:
        abort(401)

    token = auth.register().get_json()["accessToken"]
    response = client.get("/api/forbidden", headers=bearer(token))
    assert response.data == b"<h1>Please log in</h1>"


# -- 2. optional authentication ---------------------------------------------------


@pytest.fixture
def optional_app(app: Flask) -> Flask:
    json_handler(app)

    def describe() -> dict[str, Any]:
        return {
            "authenticated": current_user.is_authenticated,
            "anonymous": current_user.is_anonymous,
            "id": current_user.get_id(),
            "claims": sorted(current_claims),
        }

    @app.get("/maybe")
    @login_required(optional=True)
    def maybe() -> Any:
        return describe()

    @app.get("/maybe-async")
    @login_required(optional=True)
    async def maybe_async() -> Any:
        return describe()

    @app.get("/strict-parenthesised")
    @login_required()
    def strict_parenthesised() -> Any:
        return describe()

    @login_required
    def strict_helper() -> Any:
        return {"strict": current_claims["sub"]}

    @app.get("/maybe-then-strict")
    @login_required(optional=True)
    def maybe_then_strict() -> Any:
        return strict_helper()

    return app


@pytest.mark.parametrize("path", ["/maybe", "/maybe-async"])
@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwdw=="])
def test_optional_without_a_token_is_anonymous(
    optional_app: Flask, client: FlaskClient, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "authenticated": False,
        "anonymous": True,
        "id": None,
        "claims": [],
    }


@pytest.mark.parametrize("path", ["/maybe", "/maybe-async"])
def test_optional_with_a_token_is_the_user(
    optional_app: Flask, client: FlaskClient, token: str, path: str
) -> None:
    body = client.get(path, headers=bearer(token)).get_json()
    assert body["authenticated"] is True
    assert body["anonymous"] is False
    assert body["id"] == "1" or body["id"].isdigit()
    assert "sub" in body["claims"]


@pytest.mark.parametrize("path", ["/maybe", "/maybe-async"])
def test_optional_with_a_bad_token_is_still_401(
    optional_app: Flask, client: FlaskClient, token: str, auth: Auth, path: str
) -> None:
    """A client whose token expired must hear it (and refresh), not be served
    as an anonymous visitor."""
    assert_our_401(client.get(path, headers=bearer(expired(token))), "TOKEN_EXPIRED")
    assert_our_401(client.get(path, headers=bearer("x.y.z")), "TOKEN_INVALID")
    assert_our_401(
        client.get(path, headers={"Authorization": "Bearer "}), "TOKEN_INVALID"
    )
    auth.logout(headers=bearer(token))
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 401


def test_anonymous_is_not_a_pass_for_a_strict_check(
    optional_app: Flask, client: FlaskClient, token: str
) -> None:
    assert_our_401(client.get("/maybe-then-strict"), "TOKEN_MISSING")
    assert client.get("/maybe-then-strict", headers=bearer(token)).status_code == 200


def test_login_required_with_parentheses_is_strict(
    optional_app: Flask, client: FlaskClient, token: str
) -> None:
    assert_our_401(client.get("/strict-parenthesised"), "TOKEN_MISSING")
    body = client.get("/strict-parenthesised", headers=bearer(token)).get_json()
    assert body["authenticated"] is True


def test_optional_keeps_the_view_name(optional_app: Flask) -> None:
    assert optional_app.view_functions["maybe"].__name__ == "maybe"


# -- 3. the user objects answer Flask-Login's questions ---------------------------


def test_user_and_anonymous_user_answer_like_flask_login() -> None:
    user = User(id=7, email="u@example.com", password_hash="x")
    assert (user.is_authenticated, user.is_active, user.is_anonymous) == (
        True,
        True,
        False,
    )
    assert user.get_id() == "7"
    anonymous = AnonymousUser()
    assert (anonymous.is_authenticated, anonymous.is_active) == (False, False)
    assert anonymous.is_anonymous is True
    assert anonymous.get_id() is None


# -- 4. Flask-Login in the same app -----------------------------------------------


@pytest.fixture
def host_app(engine: Engine) -> Flask:
    return create_app(engine)


@pytest.fixture
def host_client(host_app: Flask) -> FlaskClient:
    return host_app.test_client()


@pytest.fixture
def host_token(host_client: FlaskClient) -> str:
    response = Auth(host_client).register()
    # Leave the client without the refresh cookie: an API caller.
    host_client.delete_cookie("refresh_token", path="/api/auth")
    return str(response.get_json()["accessToken"])


def html_login(client: FlaskClient) -> None:
    response = client.post(
        "/html-login", data={"email": "user@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200


def test_html_pages_render_for_anonymous_visitors(host_client: FlaskClient) -> None:
    """The module imports our current_user and login_required, and still
    serves its pages to visitors."""
    for path in ("/", "/flask-login-home"):
        response = host_client.get(path)
        assert response.status_code == 200
        assert response.data == b"Hello visitor"
    response = host_client.get("/account")
    assert response.status_code == 302  # Flask-Login sends visitors to log in


def test_html_pages_with_a_flask_login_session(
    host_client: FlaskClient, host_token: str
) -> None:
    html_login(host_client)
    assert host_client.get("/flask-login-home").data == b"Hello user@example.com"
    assert host_client.get("/account").data == b"Account of user@example.com"
    # The session cookie is no access token: our API still wants one.
    assert_our_401(host_client.get("/api/me"), "TOKEN_MISSING")
    assert host_client.post("/html-logout").status_code == 200
    assert host_client.get("/flask-login-home").data == b"Hello visitor"


def test_api_views_take_bearer_tokens(
    host_client: FlaskClient, host_token: str
) -> None:
    headers = bearer(host_token)
    assert host_client.get("/api/me", headers=headers).get_json() == {
        "email": "user@example.com"
    }
    assert host_client.get("/", headers=headers).data == b"Hello user@example.com"
    assert_our_401(
        host_client.get("/api/me", headers=bearer(expired(host_token))),
        "TOKEN_EXPIRED",
    )


def test_flask_login_sees_bearer_callers(
    host_client: FlaskClient, host_token: str
) -> None:
    response = host_client.get("/api/flask-login-me", headers=bearer(host_token))
    assert response.get_json() == {"email": "user@example.com", "authenticated": True}
    response = host_client.get("/api/flask-login-protected", headers=bearer(host_token))
    assert response.get_json() == {"email": "user@example.com"}
    # A token we refuse is nobody to Flask-Login.
    response = host_client.get(
        "/api/flask-login-protected", headers=bearer(expired(host_token))
    )
    assert response.status_code == 302


def test_a_flask_login_session_wins_for_flask_login_the_token_for_us(
    host_client: FlaskClient, host_token: str
) -> None:
    """Documented precedence: Flask-Login asks its session before any request
    loader; our current_user is always the token's."""
    other = Auth(host_client).register(email="other@example.com")
    other_token = other.get_json()["accessToken"]
    host_client.delete_cookie("refresh_token", path="/api/auth")
    html_login(host_client)  # user@example.com
    response = host_client.get("/api/both", headers=bearer(other_token))
    assert response.get_json() == {
        "ours": "other@example.com",
        "flask_login": "user@example.com",
    }


def test_without_the_bridge_flask_login_does_not_see_tokens(engine: Engine) -> None:
    """What init_flask_login adds (and the check that the test above tests it)."""
    app = create_app(engine, flask_login_bridge=False)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    response = client.get("/api/flask-login-protected", headers=bearer(token))
    assert response.status_code == 302


@pytest.mark.parametrize("visited", [False, True], ids=["no-session", "session"])
def test_a_token_request_never_writes_the_session(
    host_client: FlaskClient, host_token: str, visited: bool
) -> None:
    """A view calling login_user() on a token request: no session cookie and
    no remember-me cookie come back, so the token does not become a cookie
    (with or without an anonymous session the browser already had)."""
    before = None
    if visited:
        assert host_client.get("/visit").status_code == 200
        before = host_client.get_cookie("session")
        assert before is not None
    response = host_client.post(
        "/api/try-to-make-a-session", headers=bearer(host_token)
    )
    assert response.status_code == 200
    assert response.headers.getlist("Set-Cookie") == []
    session_cookie = host_client.get_cookie("session")
    if visited:
        assert session_cookie is not None and before is not None
        assert session_cookie.value == before.value
    else:
        assert session_cookie is None
    assert host_client.get_cookie("remember_token") is None
    assert host_client.get("/account").status_code == 302


def test_init_flask_login_keeps_the_hosts_request_loader(engine: Engine) -> None:
    app = create_app(engine, flask_login_bridge=False)
    user_ids: list[str] = []

    @app.login_manager.request_loader  # type: ignore[attr-defined]
    def api_key_loader(request: Any) -> Any:
        if request.headers.get("X-Api-Key") == "k":
            return load_host_user(user_ids[0])
        return None

    init_flask_login(app)
    init_flask_login(app)  # twice is once
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    user_ids.append(jwt.decode(token, options={"verify_signature": False})["sub"])
    headers = bearer(token)
    assert client.get("/api/flask-login-protected", headers=headers).status_code == 200
    response = client.get("/api/flask-login-protected", headers={"X-Api-Key": "k"})
    assert response.status_code == 200


def test_init_flask_login_needs_flask_login(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="LoginManager"):
        init_flask_login(app)


# -- 5. Flask-WTF's CSRFProtect ------------------------------------------------------

MOUNTS = {"app": "/api/auth", "nested": "/api/v1/auth", "renamed": "/api/auth2"}


@pytest.mark.parametrize("mount", list(MOUNTS))
@pytest.mark.parametrize("order", ["before", "after"])
def test_csrfprotect_exempts_the_blueprint(
    engine: Engine, order: str, mount: str
) -> None:
    app = create_app(engine, csrf=order, mount=mount)
    client = app.test_client()
    auth = Auth(client, prefix=MOUNTS[mount])
    assert auth.register().status_code == 201
    login = auth.login()
    assert login.status_code == 200
    refreshed = auth.refresh()
    assert refreshed.status_code == 200, refreshed.get_json()
    token = refreshed.get_json()["accessToken"]
    assert (
        client.get(f"{MOUNTS[mount]}/sessions", headers=bearer(token)).status_code
        == 200
    )
    assert auth.logout().status_code in (200, 204)
    # The host's own forms are still guarded.
    response = client.post("/comment", data={"text": "hi"})
    assert response.status_code == 400
    assert b"CSRF" in response.data


def test_the_host_form_passes_with_its_csrf_token(engine: Engine) -> None:
    app = create_app(engine, csrf="after")
    client = app.test_client()

    @app.get("/form")
    def form() -> Any:
        from flask_wtf.csrf import generate_csrf

        return generate_csrf()

    csrf_token = client.get("/form").get_data(as_text=True)
    response = client.post("/comment", data={"csrf_token": csrf_token})
    assert response.status_code == 200


def test_a_token_request_does_not_stop_the_next_request_saving_its_session(
    host_app: Flask, host_client: FlaskClient, host_token: str
) -> None:
    """With the app context held across requests (a Flask-SQLAlchemy-style
    test fixture shares ``g`` between them), the mark "this request's user
    came from a token" must stay with its request: the HTML login after it
    saves its session as usual."""
    with host_app.app_context():
        response = host_client.get("/api/flask-login-me", headers=bearer(host_token))
        assert response.get_json()["authenticated"] is True
        html_login(host_client)
        assert host_client.get_cookie("session") is not None
        assert host_client.get("/account").status_code == 200
