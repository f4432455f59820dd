"""Bad input on every endpoint of the mail flows, behind a host's own HTML
error pages: always a 4xx JSON ``{"error", "code"}``, never a 500 or HTML,
and nothing written (no link made, no account)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth.testing import wait_for_mail

from .conftest import bearer

_HEX = "0" * 32
#: Bodies no endpoint of the flows accepts.
COMMON: list[Any] = [b'{"token": ', b"[]", b"[1]", b'"x"', b"null", b"{}"]
TOKENS: list[Any] = [
    {"token": 1},
    {"token": ["a"]},
    {"token": {"a": 1}},
    {"token": "a" * 100_000},
    {"token": _HEX + "." + "x" * 100},
    {"token": "g" * 32 + ".x"},
    {"token": "\x00"},
    {"token": "\ud800"},
    {"token": ""},
]
EMAILS: list[Any] = [
    {"email": 1},
    {"email": ["a@example.com"]},
    {"email": "a" * 100_000},
    {"email": "a\x00@example.com"},
    {"email": "a\ud800@example.com"},
    {"email": "not-an-address"},
]
CODES: list[Any] = [
    {"email": "a@example.com", "code": 1},
    {"email": "a@example.com", "code": "\uff11" * 6},
    {"email": "a@example.com", "code": "1" * 100_000},
    {"email": "a@example.com", "code": "\ud800"},
    {"code": "123456"},
]
#: Each route, with the bodies it refuses and whether it is sent signed in.
ROUTES: dict[str, tuple[list[Any], bool]] = {
    "/verify-email": (TOKENS, False),
    "/verify-email/resend": (EMAILS, False),
    "/forgot-password": (EMAILS, False),
    "/reset-password": (
        [*TOKENS, {"token": _HEX + ".x", "password": 1}, {"token": _HEX + ".x"}],
        False,
    ),
    "/change-email": (
        [
            {"newEmail": 1, "password": "x"},
            {"newEmail": "b@example.com", "password": ["x"]},
            {"newEmail": "b@example.com", "password": "\x00" * 10},
            {"newEmail": "not-an-address", "password": "x"},
            {"password": "x"},
        ],
        True,
    ),
    "/change-email/confirm": (TOKENS, False),
    "/change-email/cancel": (TOKENS, False),
    "/email-login": (EMAILS, False),
    "/email-login/verify": ([*TOKENS, *EMAILS, *CODES], False),
}


@pytest.fixture
def app(make_app: Any, mail_config: dict[str, Any]) -> Flask:
    app: Flask = make_app(
        **mail_config,
        TOKENAUTH_EMAIL_VERIFICATION="optional",
        TOKENAUTH_EMAIL_LOGIN_ENABLED=True,
        TOKENAUTH_RATELIMIT_MAIL="100000/minute",
        TOKENAUTH_RATELIMIT_MAIL_ADDRESS="100000/minute",
    )
    # A host's own pages, which must never answer for our routes.
    for code_or_class in (Exception, 400, 404, 405, 500):
        app.register_error_handler(code_or_class, lambda e: ("<h1>host</h1>", 500))
    return app


def email_tokens(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM tokenauth_email_tokens")
            ).scalar_one()
        )


@pytest.mark.parametrize("route", list(ROUTES))
def test_bad_bodies_are_json_4xx_and_write_nothing(
    app: Flask, engine: Engine, route: str
) -> None:
    client = app.test_client()
    registered = client.post(
        "/api/auth/register",
        json={"email": "ada@example.com", "password": "correct horse battery"},
    )
    assert registered.status_code == 201
    bodies, signed_in = ROUTES[route]
    access = registered.json["accessToken"]
    headers = bearer(access) if signed_in else {}
    wait_for_mail()
    before = email_tokens(engine)
    for body in [*COMMON, *bodies]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.post(
            "/api/auth" + route,
            data=data,
            content_type="application/json",
            headers=headers,
        )
        shown = data[:60]
        assert 400 <= response.status_code < 500, (shown, response.text[:200])
        assert response.mimetype == "application/json", (shown, response.text[:200])
        assert set(response.json) == {"error", "code"}, (shown, response.json)
    wait_for_mail()
    assert email_tokens(engine) == before
