"""What the API description tests of the second factor share: an app with
every flow on, a signed-in caller whose every answer is checked against the
description (:func:`~tests.openapi_helpers.assert_conforms`), and a check
that a request body the tests send is one the description accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

from .conftest import Auth, bearer
from .openapi_helpers import FULL_CONFIG, _operation_of, assert_conforms

PREFIX = "/api/auth"


def document_of(app: Flask) -> dict[str, Any]:
    response = app.test_client().get(PREFIX + "/openapi.json")
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def request_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation = _operation_of(document, method, path)
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def body_is_described(
    document: dict[str, Any], method: str, path: str, body: Any
) -> bool:
    """Whether ``body`` is valid for the operation's ``requestBody``."""
    validator = Draft202012Validator(request_schema(document, method, path))
    return bool(validator.is_valid(body))


@dataclass
class Caller:
    """One browser (a test client) and its access token; every answer it
    gets is checked against the description."""

    client: FlaskClient
    document: dict[str, Any]
    token: str = ""

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        expect: int | None = None,
        code: str | None = None,
        token: bool = True,
    ) -> TestResponse:
        """``method path`` (under the prefix), its body described when it
        is a success; the answer conforms, and is ``expect`` / ``code``."""
        headers = bearer(self.token) if token and self.token else {}
        response = self.client.open(
            PREFIX + path, method=method, json=json, headers=headers
        )
        assert_conforms(self.document, response)
        if expect is not None:
            assert response.status_code == expect, response.get_data(as_text=True)
        if code is not None:
            assert response.get_json()["code"] == code, response.get_json()
        if json is not None and response.status_code < 300:
            # A body the view took is one the description accepts.
            assert body_is_described(self.document, method, PREFIX + path, json)
        if response.status_code == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        return response

    def keep_token(self, response: TestResponse) -> None:
        """Go on with the session's new access token."""
        self.token = str(response.get_json()["accessToken"])


def signed_in(
    app: Flask, document: dict[str, Any], email: str, register: bool = True
) -> Caller:
    """A user (registered unless told) who has logged in with a password."""
    caller = Caller(app.test_client(), document)
    auth = Auth(caller.client)
    if register:
        assert auth.register(email).status_code == 201
    response = auth.login(email)
    assert_conforms(document, response)
    assert response.status_code == 200, response.get_json()
    caller.keep_token(response)
    return caller


__all__ = ["FULL_CONFIG", "PREFIX", "Caller", "document_of", "signed_in"]
