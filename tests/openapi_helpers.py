"""Apps whose every route is switched on, for the API description's tests."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

#: Every flow on: verification, reset, address change, sign-in by mail,
#: TOTP, passkeys (mail through the log sender: nothing is sent).
FULL_CONFIG: dict[str, Any] = {
    "TOKENAUTH_EMAIL_VERIFICATION": "optional",
    "TOKENAUTH_PASSWORD_RESET_ENABLED": True,
    "TOKENAUTH_CHANGE_EMAIL_ENABLED": True,
    "TOKENAUTH_EMAIL_LOGIN_ENABLED": True,
    "TOKENAUTH_MAIL_BACKEND": "log",
    "TOKENAUTH_LINK_BASE_URL": "http://localhost:5000",
    "TOKENAUTH_PASSKEYS_ENABLED": True,
    "TOKENAUTH_WEBAUTHN_RP_ID": "localhost",
    "TOKENAUTH_WEBAUTHN_ORIGINS": "http://localhost:5000",
}


def _operation_of(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    for template, item in document["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]  # type: ignore[no-any-return]
    raise AssertionError(f"{method} {path} is not in the description")


def assert_conforms(document: dict[str, Any], response: TestResponse) -> None:
    """``response`` (of the test client) is one the description documents:
    its status is listed for its operation, and a JSON body matches the
    status's schema (``$ref``s resolved in ``document``)."""
    request = response.request
    operation = _operation_of(document, request.method, request.path)
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{request.method} {request.path} answered {status}, not documented:"
        f" {response.get_data(as_text=True)[:200]}"
    )
    content = operation["responses"][status].get("content")
    if content is None:
        assert not response.get_data(), f"{status} has a body, documented without"
        return
    if "application/json" not in content:
        return
    assert response.mimetype.endswith("json"), response.mimetype
    schema = {
        **content["application/json"]["schema"],
        "components": document["components"],
    }
    Draft202012Validator(schema).validate(response.get_json())
