"""The mail flows' answers are the ones the description documents: address
verification, password reset, address change and sign-in by email.

Each answer is driven through the test client, on an app with every flow
on, and checked against the document that app serves (:func:`conforms`):
its status is listed with its error code, its JSON body matches the
schema, the headers a client acts on are documented for that status, and
the body of every accepted request is one the request schema describes
(so the schema is not stricter than the view).  The links and codes come
from the mails, through a ``callable`` sender.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import Table, update
from werkzeug.test import TestResponse

from flask_tokenauth._mail import Message
from flask_tokenauth._state import get_state
from flask_tokenauth.models import EmailToken
from flask_tokenauth.openapi import openapi_document
from flask_tokenauth.testing import wait_for_mail

from .conftest import PASSWORD, bearer
from .openapi_helpers import FULL_CONFIG, _operation_of, assert_conforms

pytestmark = pytest.mark.sqlite

_tokens: Table = EmailToken.__table__  # type: ignore[assignment]

PREFIX = "/api/auth"
EMAIL = "mail@example.com"
OTHER = "other@example.com"
#: The headers a client acts on (and the refresh cookie, below).
WATCHED = ("WWW-Authenticate", "Retry-After")
#: Every mail route: the endpoint's path under the prefix, and its operation.
MAIL_OPERATIONS = {
    "/verify-email": "verifyEmail",
    "/verify-email/resend": "resendVerificationEmail",
    "/forgot-password": "forgotPassword",
    "/reset-password": "resetPassword",
    "/change-email": "changeEmail",
    "/change-email/confirm": "confirmEmailChange",
    "/change-email/cancel": "cancelEmailChange",
    "/email-login": "requestEmailLogin",
    "/email-login/verify": "verifyEmailLogin",
}


class Mailbox:
    """The mails the app handed to its sender."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def token(self, template: str, to: str) -> str:
        """The token of the newest ``template`` mail's link to ``to``."""
        found = re.search(
            r"token=([0-9a-f]{32}\.[A-Za-z0-9_-]+)", self._last(template, to)
        )
        assert found, self._last(template, to)
        return found.group(1)

    def code(self, to: str) -> str:
        found = re.search(r"^\s*(\d{6})\s*$", self._last("email_login", to), re.M)
        assert found
        return found.group(1)

    def _last(self, template: str, to: str) -> str:
        wait_for_mail()
        bodies = [
            m.body for m in self.sent if m.template == template and to in m.recipients
        ]
        assert bodies, f"no {template} mail to {to}: {[m.template for m in self.sent]}"
        return bodies[-1]


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def full_app(make_app: Any, mailbox: Mailbox) -> Flask:
    return make_app(  # type: ignore[no-any-return]
        **{
            **FULL_CONFIG,
            "TOKENAUTH_MAIL_BACKEND": "callable",
            "TOKENAUTH_MAIL_SENDER": mailbox.sent.append,
            # The limits have a test of their own; the others ask many times.
            "TOKENAUTH_RATELIMIT_MAIL": "1000/minute",
            "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "1000/minute",
        }
    )


@pytest.fixture
def client(full_app: Flask) -> FlaskClient:
    return full_app.test_client()


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get(f"{PREFIX}/openapi.json").get_json()  # type: ignore[no-any-return]


def conforms(
    document: dict[str, Any], response: TestResponse, code: str | None = None
) -> TestResponse:
    """:func:`assert_conforms`; the error ``code`` (if given) is the one
    answered and one the document lists for the status; the watched headers
    sent are documented; an accepted request's body is one the request
    schema describes."""
    assert_conforms(document, response)
    request = response.request
    operation = _operation_of(document, request.method, request.path)
    described = operation["responses"][str(response.status_code)]
    if code is not None:
        assert response.get_json()["code"] == code, response.get_json()
        listed = described["content"]["application/json"]["schema"]["allOf"][1]
        assert code in listed["properties"]["code"]["enum"]
    documented = set(described.get("headers", {}))
    for name in WATCHED:
        if name in response.headers:
            assert name in documented, f"{name} sent, undocumented: {documented}"
    if _sets_refresh_cookie(document, response):
        assert "Set-Cookie" in documented, "the refresh cookie is set, undocumented"
    if response.status_code < 300 and "flask_tokenauth.body" in request.environ:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        # The body as the view read it (kept in the environ, which the test
        # client's request shares with the app); absent if it was not read.
        body = request.environ.get("flask_tokenauth.body")
        Draft202012Validator(
            {**schema, "components": document["components"]},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        ).validate(body)
    return response


def _sets_refresh_cookie(document: dict[str, Any], response: TestResponse) -> bool:
    """Whether the response sets or clears the refresh cookie (the device
    cookie of a right password is the core operations' to describe)."""
    name = document["components"]["securitySchemes"]["refreshCookie"]["name"]
    return any(
        value.startswith(f"{name}=") for value in response.headers.getlist("Set-Cookie")
    )


def post(
    client: FlaskClient, path: str, body: Any = None, **kwargs: Any
) -> TestResponse:
    return client.post(f"{PREFIX}{path}", json=body, **kwargs)


def register(client: FlaskClient, email: str = EMAIL) -> str:
    """A new account (its verification mailed); its access token."""
    response = post(client, "/register", {"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["accessToken"]  # type: ignore[no-any-return]


def expire_links(app: Flask) -> None:
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    with get_state(app).db.begin() as conn:
        conn.execute(update(_tokens).values(expires_at=past))


# -- the description ------------------------------------------------------------


def test_every_mail_route_is_described_while_its_flow_is_on(
    full_app: Flask, make_app: Any
) -> None:
    with full_app.app_context():
        paths = openapi_document(full_app)["paths"]
    for path, operation_id in MAIL_OPERATIONS.items():
        assert list(paths[PREFIX + path]) == ["post"]
        assert paths[PREFIX + path]["post"]["operationId"] == operation_id
    off = make_app()  # every mail flow is off by default: 404, not described
    with off.app_context():
        paths = openapi_document(off)["paths"]
    for path in MAIL_OPERATIONS:
        assert PREFIX + path not in paths
        assert post(off.test_client(), path, {}).status_code == 404


@pytest.mark.parametrize(
    ("setting", "value", "paths"),
    [
        (
            "TOKENAUTH_EMAIL_VERIFICATION",
            "off",
            ["/verify-email", "/verify-email/resend"],
        ),
        (
            "TOKENAUTH_PASSWORD_RESET_ENABLED",
            False,
            ["/forgot-password", "/reset-password"],
        ),
        (
            "TOKENAUTH_CHANGE_EMAIL_ENABLED",
            False,
            ["/change-email", "/change-email/confirm", "/change-email/cancel"],
        ),
        (
            "TOKENAUTH_EMAIL_LOGIN_ENABLED",
            False,
            ["/email-login", "/email-login/verify"],
        ),
    ],
)
def test_each_switch_takes_its_own_routes_out(
    make_app: Any, setting: str, value: Any, paths: list[str]
) -> None:
    app = make_app(**{**FULL_CONFIG, setting: value})
    with app.app_context():
        described = openapi_document(app)["paths"]
    for path in MAIL_OPERATIONS:
        assert (PREFIX + path in described) is (path not in paths), path


@pytest.mark.parametrize("path", sorted(MAIL_OPERATIONS))
def test_each_required_member_is_the_one_the_view_requires(
    client: FlaskClient, document: dict[str, Any], path: str
) -> None:
    """The view reads its body through the declaration: every member the
    schema requires, left out of an otherwise full body, is the one the
    view names in its ``VALIDATION_ERROR``, and a mistyped one too."""
    operation = document["paths"][PREFIX + path]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    headers = bearer(register(client)) if path == "/change-email" else {}
    full = {name: "x" for name in schema["properties"]}
    required = schema.get("required", [])
    for name in required:
        missing = {k: v for k, v in full.items() if k != name}
        response = post(client, path, missing, headers=headers)
        conforms(document, response, "VALIDATION_ERROR")
        assert response.get_json()["error"] == f"'{name}' is required"
    for name in schema["properties"]:
        body = {**full, name: 7}
        if "oneOf" in schema:  # the view reads the shape the member is in
            shapes = [group["required"] for group in schema["oneOf"]]
            group = next(shape for shape in shapes if name in shape)
            body = {member: 7 if member == name else "x" for member in group}
        response = post(client, path, body, headers=headers)
        conforms(document, response, "VALIDATION_ERROR")
        assert response.get_json()["error"] == f"'{name}' must be a string"
    if not required:  # the shapes of oneOf: one of them is needed
        assert [group["required"] for group in schema["oneOf"]] == [
            ["token"],
            ["email", "code"],
        ]
        conforms(document, post(client, path, {}), "VALIDATION_ERROR")


def test_a_store_without_addresses_answers_404_as_documented(
    full_app: Flask,
    client: FlaskClient,
    document: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``when=`` sees the settings only: the store's lack of addresses is
    told by the documented ``NOT_FOUND``."""
    monkeypatch.setattr(get_state(full_app).user_store, "has_email", False)
    for path in MAIL_OPERATIONS:
        conforms(document, post(client, path, {}), "NOT_FOUND")


def test_the_mail_limit_is_a_documented_429(make_app: Any) -> None:
    app = make_app(**{**FULL_CONFIG, "TOKENAUTH_RATELIMIT_MAIL": "1/minute"})
    client = app.test_client()
    document = client.get(f"{PREFIX}/openapi.json").get_json()
    conforms(document, post(client, "/forgot-password", {"email": EMAIL}))
    response = conforms(
        document, post(client, "/forgot-password", {"email": EMAIL}), "RATE_LIMITED"
    )
    assert int(response.headers["Retry-After"]) >= 1
    for path in MAIL_OPERATIONS:
        conforms(document, post(client, path, {}), "RATE_LIMITED")


# -- verification -----------------------------------------------------------------


def test_verify_email(
    full_app: Flask, client: FlaskClient, document: dict[str, Any], mailbox: Mailbox
) -> None:
    register(client)
    token = mailbox.token("verify_email", EMAIL)
    response = conforms(document, post(client, "/verify-email", {"token": token}))
    assert response.get_json()["email"] == EMAIL
    conforms(document, post(client, "/verify-email", {"token": token}), "LINK_INVALID")
    conforms(document, post(client, "/verify-email", {"token": "x"}), "LINK_INVALID")
    register(client, OTHER)
    expire_links(full_app)
    late = mailbox.token("verify_email", OTHER)
    conforms(document, post(client, "/verify-email", {"token": late}), "LINK_EXPIRED")
    conforms(
        document,
        client.post(f"{PREFIX}/verify-email", data="{"),
        "UNSUPPORTED_MEDIA_TYPE",
    )


def test_resend_verification(
    client: FlaskClient, document: dict[str, Any], mailbox: Mailbox
) -> None:
    access = register(client)
    first = mailbox.token("verify_email", EMAIL)
    conforms(document, post(client, "/verify-email/resend", {"email": EMAIL}))
    assert mailbox.token("verify_email", EMAIL) != first
    # With a token the body is not read: it may be left out.
    response = client.post(f"{PREFIX}/verify-email/resend", headers=bearer(access))
    assert_conforms(document, response)
    assert response.status_code == 202
    conforms(
        document,
        post(client, "/verify-email/resend", {"email": "nope"}),
        "INVALID_EMAIL",
    )
    bad = post(
        client, "/verify-email/resend", {"email": EMAIL}, headers=bearer("x.y.z")
    )
    conforms(document, bad, "TOKEN_INVALID")
    assert "WWW-Authenticate" in bad.headers


# -- password reset ---------------------------------------------------------------


def test_forgot_and_reset_password(
    full_app: Flask, client: FlaskClient, document: dict[str, Any], mailbox: Mailbox
) -> None:
    register(client)
    conforms(document, post(client, "/forgot-password", {"email": EMAIL}))
    conforms(
        document, post(client, "/forgot-password", {"email": "@"}), "INVALID_EMAIL"
    )
    token = mailbox.token("reset_password", EMAIL)
    for password, code in [
        ("short", "INVALID_PASSWORD"),
        ("password123", "PASSWORD_TOO_COMMON"),
        ("mail mail mail mail", "PASSWORD_HAS_CONTEXT_WORD"),
    ]:
        body = {"token": token, "password": password}
        conforms(document, post(client, "/reset-password", body), code)
    body = {"token": token, "password": "a brand new passphrase"}
    conforms(document, post(client, "/reset-password", body))
    conforms(document, post(client, "/reset-password", body), "LINK_INVALID")
    post(client, "/forgot-password", {"email": EMAIL})
    late = mailbox.token("reset_password", EMAIL)
    expire_links(full_app)
    body = {"token": late, "password": "another new passphrase"}
    conforms(document, post(client, "/reset-password", body), "LINK_EXPIRED")


# -- address change ---------------------------------------------------------------


def test_change_email_confirm_and_cancel(
    client: FlaskClient, document: dict[str, Any], mailbox: Mailbox
) -> None:
    access = register(client)
    auth = bearer(access)
    body = {"password": PASSWORD, "newEmail": OTHER}
    conforms(document, post(client, "/change-email", body, headers=auth))
    wrong = {**body, "password": "not the password"}
    conforms(
        document, post(client, "/change-email", wrong, headers=auth), "WRONG_PASSWORD"
    )
    empty = {**body, "password": ""}
    conforms(
        document, post(client, "/change-email", empty, headers=auth), "INVALID_PASSWORD"
    )
    same = {**body, "newEmail": EMAIL}
    conforms(
        document, post(client, "/change-email", same, headers=auth), "VALIDATION_ERROR"
    )
    bad = {**body, "newEmail": "not an address"}
    conforms(
        document, post(client, "/change-email", bad, headers=auth), "INVALID_EMAIL"
    )
    conforms(document, post(client, "/change-email", body), "TOKEN_MISSING")

    confirm = mailbox.token("change_email_confirm", OTHER)
    cancel = mailbox.token("change_email_notice", EMAIL)
    response = conforms(
        document, post(client, "/change-email/confirm", {"token": confirm})
    )
    assert response.get_json()["email"] == OTHER
    conforms(
        document,
        post(client, "/change-email/confirm", {"token": confirm}),
        "LINK_INVALID",
    )
    response = conforms(
        document, post(client, "/change-email/cancel", {"token": cancel})
    )
    assert response.get_json()["restored"] is True
    assert "Set-Cookie" in response.headers  # the refresh cookie, cleared
    conforms(
        document,
        post(client, "/change-email/cancel", {"token": cancel}),
        "LINK_INVALID",
    )


def test_change_email_to_an_address_taken_meanwhile(
    full_app: Flask, client: FlaskClient, document: dict[str, Any], mailbox: Mailbox
) -> None:
    auth = bearer(register(client))
    body = {"password": PASSWORD, "newEmail": OTHER}
    conforms(document, post(client, "/change-email", body, headers=auth))
    confirm = mailbox.token("change_email_confirm", OTHER)
    register(full_app.test_client(), OTHER)
    conforms(
        document,
        post(client, "/change-email/confirm", {"token": confirm}),
        "EMAIL_TAKEN",
    )
    expire_links(full_app)
    cancel = mailbox.token("change_email_notice", EMAIL)
    conforms(
        document,
        post(client, "/change-email/cancel", {"token": cancel}),
        "LINK_EXPIRED",
    )


# -- sign-in by email -------------------------------------------------------------


def test_email_login_by_link_and_by_code(
    full_app: Flask, client: FlaskClient, document: dict[str, Any], mailbox: Mailbox
) -> None:
    register(client)
    conforms(document, post(client, "/email-login", {"email": EMAIL}))
    conforms(document, post(client, "/email-login", {"email": "x@"}), "INVALID_EMAIL")
    token = mailbox.token("email_login", EMAIL)
    response = conforms(document, post(client, "/email-login/verify", {"token": token}))
    assert response.get_json()["user"]["email"] == EMAIL
    assert "Set-Cookie" in response.headers
    again = post(client, "/email-login/verify", {"token": token})
    conforms(document, again, "LINK_INVALID")

    post(client, "/email-login", {"email": EMAIL})
    code = mailbox.code(EMAIL)
    wrong = "000000" if code != "000000" else "111111"
    body = {"email": EMAIL, "code": wrong}
    conforms(document, post(client, "/email-login/verify", body), "CODE_INVALID")
    body = {"email": EMAIL, "code": f"{code[:3]} {code[3:]}"}
    response = conforms(document, post(client, "/email-login/verify", body))
    assert response.get_json()["accessToken"]

    post(client, "/email-login", {"email": EMAIL})
    late = mailbox.token("email_login", EMAIL)
    expire_links(full_app)
    conforms(
        document, post(client, "/email-login/verify", {"token": late}), "LINK_EXPIRED"
    )
