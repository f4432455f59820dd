"""Bad input on every route: always a 4xx JSON error, never a 500, never an
HTML page, never a half-written row."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from werkzeug import exceptions as werkzeug_errors

from .conftest import PASSWORD, Auth

JSON_ROUTES = ["/api/auth/register", "/api/auth/login"]
ALL_ROUTES = [*JSON_ROUTES, "/api/auth/refresh", "/api/auth/logout"]


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "code"}
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]


def count_rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        users = conn.execute(text("SELECT count(*) FROM tokenauth_users")).scalar_one()
        tokens = conn.execute(
            text("SELECT count(*) FROM tokenauth_refresh_tokens")
        ).scalar_one()
    return users, tokens


BAD_BODIES = {
    "malformed": (b'{"email": "a@b.co", ', "INVALID_JSON"),
    "empty": (b"", "INVALID_JSON"),
    "array": (b"[]", "INVALID_JSON"),
    "null": (b"null", "INVALID_JSON"),
    "number": (b"5", "INVALID_JSON"),
    "string": (b'"a@b.co"', "INVALID_JSON"),
    "invalid utf-8": (b'{"email": "\xff\xfe"}', "INVALID_JSON"),
    "deeply nested": (b"[" * 5000 + b"]" * 5000, "INVALID_JSON"),
    "missing email": (b'{"password": "long enough"}', "VALIDATION_ERROR"),
    "missing password": (b'{"email": "a@b.co"}', "VALIDATION_ERROR"),
    "email not a string": (
        b'{"email": 5, "password": "long enough"}',
        "VALIDATION_ERROR",
    ),
    "password not a string": (
        b'{"email": "a@b.co", "password": ["x"]}',
        "VALIDATION_ERROR",
    ),
    "email null": (b'{"email": null, "password": "long enough"}', "VALIDATION_ERROR"),
    "invalid email": (
        b'{"email": "not-an-email", "password": "long enough"}',
        "INVALID_EMAIL",
    ),
    "lone surrogate in password": (
        b'{"email": "a@b.co", "password": "\\ud800long enough"}',
        "VALIDATION_ERROR",
    ),
    "lone surrogate in email": (
        b'{"email": "a\\udfff@b.co", "password": "long enough"}',
        "VALIDATION_ERROR",
    ),
    "NUL in email": (
        b'{"email": "a\\u0000@b.co", "password": "long enough"}',
        "INVALID_EMAIL",
    ),
    "NUL in password": (
        b'{"email": "a@b.co", "password": "long\\u0000enough"}',
        "INVALID_PASSWORD",
    ),
    "password too long": (
        json.dumps({"email": "a@b.co", "password": "x" * 257}).encode(),
        "INVALID_PASSWORD",
    ),
    "email too long": (
        json.dumps({"email": "a" * 250 + "@b.co", "password": "long enough"}).encode(),
        "INVALID_EMAIL",
    ),
}


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("case", list(BAD_BODIES))
@pytest.mark.requirement("ASVS-5.0-2.2.1")
def test_bad_json_bodies(
    client: FlaskClient, engine: Engine, route: str, case: str
) -> None:
    body, code = BAD_BODIES[case]
    response = client.post(route, data=body, content_type="application/json")
    assert_error(response, 400, code)
    assert count_rows(engine) == (0, 0)


@pytest.mark.parametrize("password", ["", "short", "7 chars"])
@pytest.mark.requirement("ASVS-5.0-6.2.1", "NIST-800-63B-4-3.1.1.2")
def test_register_refuses_short_passwords(auth: Auth, password: str) -> None:
    assert_error(auth.register(password=password), 400, "INVALID_PASSWORD")


@pytest.mark.requirement("ASVS-5.0-6.2.9", "ASVS-5.0-6.2.5", "NIST-800-63B-4-3.1.1.2")
def test_64_characters_of_any_script_are_accepted(auth: Auth) -> None:
    assert auth.register("a@example.com", "ж" * 64).status_code == 201
    assert auth.register("b@example.com", "x" * 256).status_code == 201


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        None,
    ],
)
def test_only_json_is_accepted(
    client: FlaskClient, route: str, content_type: str | None
) -> None:
    body = json.dumps({"email": "a@b.co", "password": PASSWORD})
    response = client.post(route, data=body, content_type=content_type)
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.requirement("ASVS-5.0-2.2.1")
def test_body_over_the_limit(client: FlaskClient, route: str) -> None:
    body = json.dumps({"email": "a@b.co", "password": "x" * 11_000})
    response = client.post(route, data=body, content_type="application/json")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_body_limit_without_content_length(client: FlaskClient) -> None:
    body = json.dumps({"email": "a@b.co", "password": "x" * 11_000}).encode()
    response = client.post(
        "/api/auth/register",
        input_stream=__import__("io").BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("route", ALL_ROUTES)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.requirement("ASVS-5.0-3.5.3")
def test_wrong_method(client: FlaskClient, route: str, method: str) -> None:
    response = client.open(route, method=method)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    "path", ["/api/auth/", "/api/auth/nope", "/api/auth/login/extra", "/api/auth/a/b/c"]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_path_under_the_prefix(
    client: FlaskClient, path: str, method: str
) -> None:
    """No rule of ours: the host's URL, answered by the host (Flask's page)."""
    response = client.open(path, method=method)
    assert response.status_code == 404
    assert not response.is_json


def test_host_apps_html_handlers_do_not_apply_to_our_routes(
    app: Flask, client: FlaskClient
) -> None:
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(400)
    def html(e: Exception) -> tuple[str, int]:
        return "<h1>host page</h1>", 418

    assert client.get("/api/auth/nope").get_data() == b"<h1>host page</h1>"
    assert_error(client.get("/api/auth/login"), 405, "METHOD_NOT_ALLOWED")
    assert_error(
        client.post("/api/auth/login", data="{", content_type="application/json"),
        400,
        "INVALID_JSON",
    )
    # ...while the host's own routes keep the host's handler.
    assert client.get("/elsewhere").status_code == 418


def test_email_is_normalized_and_unique(auth: Auth, engine: Engine) -> None:
    assert auth.register("  Person@Example.com ").status_code == 201
    assert_error(auth.register("person@EXAMPLE.COM"), 409, "EMAIL_TAKEN")
    assert auth.login(" PERSON@example.com").status_code == 200
    assert count_rows(engine)[0] == 1


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_registrations_of_one_email(
    app: Flask, engine: Engine, attempt: int
) -> None:
    n = 4
    barrier = threading.Barrier(n)
    responses: list[Any] = []

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        email = f"Race@Example.com{' ' * i}"
        responses.append(Auth(client).register(email))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (n - 1)
    for response in responses:
        if response.status_code == 409:
            assert response.get_json()["code"] == "EMAIL_TAKEN"
    assert count_rows(engine) == (1, 1)


@pytest.mark.parametrize(
    ("exception", "status", "code"),
    [
        (werkzeug_errors.Conflict(), 409, "CONFLICT"),
        (werkzeug_errors.Forbidden(), 403, "FORBIDDEN"),
        (werkzeug_errors.BadRequest(), 400, "BAD_REQUEST"),
        (werkzeug_errors.RequestTimeout(), 408, "REQUEST_TIMEOUT"),
        (werkzeug_errors.RequestEntityTooLarge(), 413, "PAYLOAD_TOO_LARGE"),
        (werkzeug_errors.MethodNotAllowed(["POST"]), 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_werkzeug_errors_keep_their_meaning(
    exception: Exception, status: int, code: str
) -> None:
    """Errors raised before our code runs are rendered in our shape with a
    code that says what they are (a 409 is not "EMAIL_TAKEN")."""
    from flask_tokenauth.errors import from_http_exception

    response = from_http_exception(exception).get_response()  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["code"] == code


# -- A body of several shapes: the members of the shape not taken are ignored
# (as they were before the views read their bodies through the API
# description's declarations, which first refused them).


@pytest.mark.parametrize("odd", [123456, [], {}, True, "\ud800"])
def test_reauthenticate_with_a_password_ignores_the_other_shapes(
    make_app: Any, odd: Any
) -> None:
    from .conftest import bearer
    from .openapi_helpers import FULL_CONFIG

    client = make_app(**FULL_CONFIG).test_client()
    auth = Auth(client)
    auth.register()
    token = auth.login().get_json()["accessToken"]
    for member in ("code", "credential"):
        response = client.post(
            "/api/auth/reauthenticate",
            json={"password": PASSWORD, member: odd},
            headers=bearer(token),
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["accessToken"]


def test_email_login_with_a_token_ignores_the_code_shape(make_app: Any) -> None:
    from .openapi_helpers import FULL_CONFIG

    client = make_app(**FULL_CONFIG).test_client()
    response = client.post(
        "/api/auth/email-login/verify",
        json={"token": "x" * 43, "email": 1, "code": 123456},
    )
    assert_error(response, 400, "LINK_INVALID")


def test_the_shape_taken_is_still_checked(make_app: Any) -> None:
    """The shape the view takes keeps its checks: each of its members
    required, of its type."""
    from .openapi_helpers import FULL_CONFIG

    client = make_app(**FULL_CONFIG).test_client()
    verify = "/api/auth/email-login/verify"
    assert_error(client.post(verify, json={"token": 5}), 400, "VALIDATION_ERROR")
    missing = client.post(verify, json={"code": "123456", "token": None})
    assert_error(missing, 400, "VALIDATION_ERROR")
    assert missing.get_json()["error"] == "'email' is required"
    typed = client.post(verify, json={"email": "a@example.com", "code": 123456})
    assert_error(typed, 400, "VALIDATION_ERROR")
    assert typed.get_json()["error"] == "'code' must be a string"


@pytest.mark.parametrize("odd", [5, "123456"])
def test_a_switched_off_factor_is_answered_before_its_type(
    make_app: Any, odd: Any
) -> None:
    """A body member of a factor the app turned off is answered as the
    view answers that factor (``404`` for a code without TOTP, ``Passkeys
    are not enabled``), whatever its type: the switch comes first, as it
    did before the views read their bodies through the declarations; and
    the description leaves the member out."""
    from flask_tokenauth.openapi import openapi_document

    from .conftest import bearer
    from .openapi_helpers import FULL_CONFIG

    no_totp = make_app(**FULL_CONFIG, TOKENAUTH_TOTP_ENABLED=False)
    client = no_totp.test_client()
    auth = Auth(client)
    auth.register()
    headers = bearer(auth.login().get_json()["accessToken"])
    for path in ("/api/auth/reauthenticate", "/api/auth/mfa/verify"):
        response = client.post(path, json={"code": odd}, headers=headers)
        assert_error(response, 404, "NOT_FOUND")
    no_passkeys = make_app(TOKENAUTH_TOTP_ENABLED=True)
    client = no_passkeys.test_client()
    auth = Auth(client)
    auth.register("other@example.com")
    token = auth.login("other@example.com").get_json()["accessToken"]
    response = client.post(
        "/api/auth/reauthenticate", json={"credential": odd}, headers=bearer(token)
    )
    assert_error(response, 400, "VALIDATION_ERROR")
    assert response.get_json()["error"] == "Passkeys are not enabled"
    for app, gone in ((no_totp, "code"), (no_passkeys, "credential")):
        with app.app_context():
            operation = openapi_document(app)["paths"]["/api/auth/reauthenticate"]
        schema = operation["post"]["requestBody"]["content"]["application/json"]
        assert gone not in schema["schema"]["properties"]
        assert all(gone not in s["required"] for s in schema["schema"]["oneOf"])
