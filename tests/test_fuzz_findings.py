"""What schemathesis found (``make fuzz``), each fixed, kept fixed here
without a server: the description and the view agree on what a request may
be.  (The ``Allow`` of OPTIONS, the other finding, is in
tests/test_methods.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from .conftest import PASSWORD, bearer
from .openapi_helpers import FULL_CONFIG, _operation_of, assert_conforms

pytestmark = pytest.mark.sqlite

PREFIX = "/api/auth"
CREDENTIALS = {"email": "fuzz@example.com", "password": PASSWORD}


@pytest.fixture
def client(make_app: Any) -> FlaskClient:
    app: Flask = make_app(**FULL_CONFIG)
    return app.test_client()


def document_of(client: FlaskClient) -> dict[str, Any]:
    return client.get(f"{PREFIX}/openapi.json").get_json()  # type: ignore[no-any-return]


def test_resend_with_a_token_needs_no_body(client: FlaskClient) -> None:
    """``/verify-email/resend`` reads no body with an access token (it mails
    the caller's own address): the description's body is optional, and
    without a token a missing body is still refused, as documented."""
    document = document_of(client)
    path = f"{PREFIX}/verify-email/resend"
    assert _operation_of(document, "POST", path)["requestBody"]["required"] is False
    token = client.post(f"{PREFIX}/register", json=CREDENTIALS).get_json()[
        "accessToken"
    ]
    signed_in = client.post(path, headers=bearer(token))
    assert signed_in.status_code == 202
    assert_conforms(document, signed_in)
    anonymous = client.post(path)
    assert anonymous.status_code in (400, 415)
    assert_conforms(document, anonymous)
    by_address = client.post(path, json={"email": CREDENTIALS["email"]})
    assert by_address.status_code == 202
    assert_conforms(document, by_address)


@pytest.mark.parametrize("hint", ["not-an-id", "!", "x" * 200, "0" * 32])
def test_refresh_takes_any_session_hint(client: FlaskClient, hint: str) -> None:
    """``/refresh?session=`` is a hint the view ignores unless it is a
    session id: the description accepts any string (a pattern there made
    the fuzzer expect a refusal the view never gives)."""
    document = document_of(client)
    (parameter,) = _operation_of(document, "POST", f"{PREFIX}/refresh")["parameters"]
    assert parameter["name"] == "session"
    Draft202012Validator(parameter["schema"]).validate(hint)
    assert client.post(f"{PREFIX}/register", json=CREDENTIALS).status_code == 201
    response = client.post(f"{PREFIX}/refresh", query_string={"session": hint})
    assert response.status_code == 200, response.get_json()
    assert_conforms(document, response)
