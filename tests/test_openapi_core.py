"""The core operations' answers are the ones the description documents:
register, login, refresh, logout, the sessions, the password change, and
the public documents (the browser client, the keys, the description).

Each answer is driven through the test client and checked against the
document the same app serves (:func:`conforms`): its status is listed, its
JSON body matches the schema, its content type is the documented one, and
the headers a client acts on (``Set-Cookie``, ``WWW-Authenticate``,
``Retry-After``, ``ETag``) are documented for that status.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from .assurance_helpers import claims_of, give_totp
from .conftest import PASSWORD, bearer
from .openapi_helpers import FULL_CONFIG, _operation_of, assert_conforms

pytestmark = pytest.mark.sqlite

PREFIX = "/api/auth"
EMAIL = "core@example.com"
CREDENTIALS = {"email": EMAIL, "password": PASSWORD}
#: The headers a client acts on, and the components that document them.
WATCHED = ("Set-Cookie", "WWW-Authenticate", "Retry-After", "ETag")


def document_of(client: FlaskClient) -> dict[str, Any]:
    return client.get(f"{PREFIX}/openapi.json").get_json()  # type: ignore[no-any-return]


def conforms(document: dict[str, Any], response: TestResponse) -> TestResponse:
    """:func:`assert_conforms`, and the response's content type and watched
    headers are the documented ones."""
    assert_conforms(document, response)
    request = response.request
    described = _operation_of(document, request.method, request.path)["responses"][
        str(response.status_code)
    ]
    content = described.get("content")
    if content is not None and response.get_data():
        assert response.mimetype in content, (response.mimetype, list(content))
    documented = set(described.get("headers", {}))
    for name in WATCHED:
        if name in response.headers:
            assert name in documented, f"{name} sent, undocumented: {documented}"
    return response


def codes(document: dict[str, Any], method: str, path: str, status: int) -> list[str]:
    """The error codes the document lists for one status of an operation."""
    reply = _operation_of(document, method, path)["responses"][str(status)]
    schema = reply["content"]["application/json"]["schema"]
    return schema["allOf"][1]["properties"]["code"]["enum"]  # type: ignore[no-any-return]


@pytest.fixture
def full_app(make_app: Any) -> Flask:
    return make_app(**FULL_CONFIG)  # type: ignore[no-any-return]


@pytest.fixture
def client(full_app: Flask) -> FlaskClient:
    return full_app.test_client()


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return document_of(client)


def signed_in(client: FlaskClient) -> str:
    """Register the test user (which starts a session) and log in: the
    login's access token; two sessions."""
    assert client.post(f"{PREFIX}/register", json=CREDENTIALS).status_code == 201
    response = client.post(f"{PREFIX}/login", json=CREDENTIALS)
    assert response.status_code == 200
    return response.get_json()["accessToken"]  # type: ignore[no-any-return]


# -- register -------------------------------------------------------------------


def test_register_answers(client: FlaskClient, document: dict[str, Any]) -> None:
    post = document["paths"][f"{PREFIX}/register"]["post"]
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Session"
    }
    assert "202" not in post["responses"]
    created = conforms(document, client.post(f"{PREFIX}/register", json=CREDENTIALS))
    assert created.status_code == 201 and "Set-Cookie" in created.headers
    taken = conforms(document, client.post(f"{PREFIX}/register", json=CREDENTIALS))
    assert taken.get_json()["code"] == "EMAIL_TAKEN"
    for body, code in [
        ({"email": "not an address", "password": PASSWORD}, "INVALID_EMAIL"),
        ({"email": "a@example.com", "password": "short"}, "INVALID_PASSWORD"),
        ({"email": "a@example.com", "password": "password123"}, "PASSWORD_TOO_COMMON"),
        ({"email": "a@example.com"}, "VALIDATION_ERROR"),
        ({"email": ["a@example.com"], "password": PASSWORD}, "VALIDATION_ERROR"),
    ]:
        refused = conforms(document, client.post(f"{PREFIX}/register", json=body))
        assert refused.get_json()["code"] == code, body
    form = client.post(f"{PREFIX}/register", data={"email": EMAIL})
    assert conforms(document, form).get_json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    broken = client.post(
        f"{PREFIX}/register", data="{", content_type="application/json"
    )
    assert conforms(document, broken).get_json()["code"] == "INVALID_JSON"


def test_register_schema_follows_the_password_settings(make_app: Any) -> None:
    app = make_app(TOKENAUTH_PASSWORD_MIN_LENGTH=12, TOKENAUTH_PASSWORD_MAX_LENGTH=80)
    document = document_of(app.test_client())
    body = document["paths"][f"{PREFIX}/register"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["email", "password"]
    assert schema["properties"]["email"]["format"] == "email"
    password = schema["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (12, 80)
    login = document["paths"][f"{PREFIX}/login"]["post"]["requestBody"]
    login_password = login["content"]["application/json"]["schema"]["properties"][
        "password"
    ]
    assert (login_password["minLength"], login_password["maxLength"]) == (1, 80)


def test_register_without_a_session_under_required_verification(
    make_app: Any,
) -> None:
    client = make_app(**{**FULL_CONFIG, "TOKENAUTH_EMAIL_VERIFICATION": "required"})
    client = client.test_client()
    document = document_of(client)
    created = conforms(document, client.post(f"{PREFIX}/register", json=CREDENTIALS))
    assert created.status_code == 201
    assert "accessToken" not in created.get_json()
    assert client.get_cookie("refresh_token", path=PREFIX) is None
    # The Session schema (an access token) would not take this answer.
    schema = document["paths"][f"{PREFIX}/register"]["post"]["responses"]["201"]
    assert "message" in schema["content"]["application/json"]["schema"]["required"]
    unverified = conforms(document, client.post(f"{PREFIX}/login", json=CREDENTIALS))
    assert unverified.status_code == 403
    assert unverified.get_json()["code"] == "EMAIL_NOT_VERIFIED"


def test_enumeration_safe_register_is_202(make_app: Any) -> None:
    app = make_app(**{**FULL_CONFIG, "TOKENAUTH_REGISTER_ENUMERATION_SAFE": True})
    client = app.test_client()
    document = document_of(client)
    responses = document["paths"][f"{PREFIX}/register"]["post"]["responses"]
    assert "201" not in responses
    for _ in range(2):  # a new login, then a taken one: the same answer
        answer = conforms(document, client.post(f"{PREFIX}/register", json=CREDENTIALS))
        assert answer.status_code == 202 and "Set-Cookie" not in answer.headers


def test_register_limited_and_switched_off(make_app: Any) -> None:
    app = make_app(**FULL_CONFIG, TOKENAUTH_RATELIMIT_REGISTER="1/minute")
    client = app.test_client()
    document = document_of(client)
    client.post(f"{PREFIX}/register", json=CREDENTIALS)
    limited = conforms(document, client.post(f"{PREFIX}/register", json=CREDENTIALS))
    assert limited.status_code == 429 and "Retry-After" in limited.headers

    off = make_app(
        TOKENAUTH_REGISTER_ENABLED=False, TOKENAUTH_PASSWORD_CHANGE_ENABLED=False
    )
    paths = document_of(off.test_client())["paths"]
    assert f"{PREFIX}/register" not in paths and f"{PREFIX}/password" not in paths
    assert f"{PREFIX}/login" in paths


# -- login ----------------------------------------------------------------------


def test_login_answers(client: FlaskClient, document: dict[str, Any]) -> None:
    client.post(f"{PREFIX}/register", json=CREDENTIALS)
    ok = conforms(document, client.post(f"{PREFIX}/login", json=CREDENTIALS))
    assert ok.status_code == 200 and "Set-Cookie" in ok.headers
    wrong = {**CREDENTIALS, "password": "not the password"}
    refused = conforms(document, client.post(f"{PREFIX}/login", json=wrong))
    assert refused.get_json()["code"] == "INVALID_CREDENTIALS"
    assert "WWW-Authenticate" in refused.headers
    empty = {**CREDENTIALS, "password": ""}
    malformed = conforms(document, client.post(f"{PREFIX}/login", json=empty))
    assert malformed.get_json()["code"] == "INVALID_PASSWORD"
    assert codes(document, "POST", f"{PREFIX}/login", 403) == [
        "EMAIL_NOT_VERIFIED",
    ]


def test_login_with_a_second_factor_waits_for_it(make_app: Any, engine: Engine) -> None:
    client = make_app(**FULL_CONFIG).test_client()
    document = document_of(client)
    registered = client.post(f"{PREFIX}/register", json=CREDENTIALS).get_json()
    give_totp(engine, str(registered["user"]["id"]))
    pending = conforms(document, client.post(f"{PREFIX}/login", json=CREDENTIALS))
    assert pending.get_json()["mfaRequired"] is True
    token = pending.get_json()["accessToken"]
    # The pending session's token reaches no session view.
    waiting = client.get(f"{PREFIX}/sessions", headers=bearer(token))
    assert conforms(document, waiting).get_json()["code"] == "MFA_REQUIRED"


def test_login_when_a_factor_must_be_enrolled(make_app: Any) -> None:
    client = make_app(**FULL_CONFIG, TOKENAUTH_MFA="required").test_client()
    document = document_of(client)
    client.post(f"{PREFIX}/register", json=CREDENTIALS)
    answer = conforms(document, client.post(f"{PREFIX}/login", json=CREDENTIALS))
    assert answer.get_json()["mfaEnrollmentRequired"] is True
    token = answer.get_json()["accessToken"]
    refused = client.post(f"{PREFIX}/logout-others", headers=bearer(token))
    assert conforms(document, refused).get_json()["code"] == "MFA_ENROLLMENT_REQUIRED"


# -- refresh and logout ---------------------------------------------------------


def test_refresh_answers(client: FlaskClient, document: dict[str, Any]) -> None:
    missing = conforms(document, client.post(f"{PREFIX}/refresh"))
    assert missing.get_json()["code"] == "REFRESH_TOKEN_MISSING"
    assert "WWW-Authenticate" in missing.headers
    signed_in(client)
    spent = client.get_cookie("refresh_token", path=PREFIX)
    assert spent is not None
    ok = conforms(document, client.post(f"{PREFIX}/refresh"))
    assert ok.status_code == 200 and "Set-Cookie" in ok.headers
    hinted = client.post(f"{PREFIX}/refresh?session={'0' * 32}")
    assert conforms(document, hinted).status_code == 200
    cross = client.post(f"{PREFIX}/refresh", headers={"Origin": "https://evil.test"})
    assert conforms(document, cross).get_json()["code"] == "CROSS_SITE_REQUEST"
    client.set_cookie("refresh_token", spent.value, path=PREFIX)
    reused = conforms(document, client.post(f"{PREFIX}/refresh"))
    assert reused.get_json()["code"] == "REFRESH_TOKEN_REUSED"
    assert "Set-Cookie" in reused.headers  # the cookie is cleared
    client.set_cookie("refresh_token", "forged", path=PREFIX)
    invalid = conforms(document, client.post(f"{PREFIX}/refresh"))
    assert invalid.get_json()["code"] == "REFRESH_TOKEN_INVALID"
    assert set(codes(document, "POST", f"{PREFIX}/refresh", 401)) == {
        "REFRESH_TOKEN_MISSING",
        "REFRESH_TOKEN_INVALID",
        "REFRESH_TOKEN_EXPIRED",
        "REFRESH_TOKEN_REVOKED",
        "REFRESH_TOKEN_REUSED",
        "REFRESH_TOKEN_AMBIGUOUS",
    }


def test_logout_answers(client: FlaskClient, document: dict[str, Any]) -> None:
    post = document["paths"][f"{PREFIX}/logout"]["post"]
    assert post["security"] == [{"refreshCookie": []}, {}]
    signed_in(client)
    cross = client.post(f"{PREFIX}/logout", headers={"Origin": "null"})
    assert conforms(document, cross).get_json()["code"] == "CROSS_SITE_REQUEST"
    out = conforms(document, client.post(f"{PREFIX}/logout"))
    assert out.status_code == 200 and "Set-Cookie" in out.headers
    # Without a cookie: the same 200.
    assert conforms(document, client.post(f"{PREFIX}/logout")).status_code == 200


# -- sessions and the password ---------------------------------------------------


def test_session_answers(client: FlaskClient, document: dict[str, Any]) -> None:
    missing = conforms(document, client.get(f"{PREFIX}/sessions"))
    assert missing.get_json()["code"] == "TOKEN_MISSING"
    token = signed_in(client)
    listed = conforms(document, client.get(f"{PREFIX}/sessions", headers=bearer(token)))
    sessions = listed.get_json()["sessions"]
    assert len(sessions) == 2
    other = next(s["id"] for s in sessions if not s["current"])
    for session_id in (other, "not-a-session-id"):
        revoked = client.delete(
            f"{PREFIX}/sessions/{session_id}", headers=bearer(token)
        )
        conforms(document, revoked)
    assert revoked.get_json()["code"] == "SESSION_NOT_FOUND"
    others = client.post(f"{PREFIX}/logout-others", headers=bearer(token))
    assert conforms(document, others).get_json()["revoked"] == 0
    everything = client.post(f"{PREFIX}/logout-all", headers=bearer(token))
    assert conforms(document, everything).get_json()["revoked"] == 1
    assert "Set-Cookie" in everything.headers
    gone = client.get(f"{PREFIX}/sessions", headers=bearer(token))
    assert conforms(document, gone).get_json()["code"] == "TOKEN_REVOKED"


def test_sessions_link_to_their_revocation(document: dict[str, Any]) -> None:
    """The stateful fuzzer's chain: register → login → refresh/logout, and a
    listed session's id → its revocation."""
    paths = document["paths"]
    register = paths[f"{PREFIX}/register"]["post"]["responses"]["201"]
    assert register["links"]["login"]["requestBody"] == "$request.body"
    login = paths[f"{PREFIX}/login"]["post"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in login.values()} == {"refresh", "logout"}
    listed = paths[f"{PREFIX}/sessions"]["get"]["responses"]["200"]["links"]
    link = listed["revokeSession"]
    assert link["parameters"] == {"session_id": "$response.body#/sessions/0/id"}
    assert "/api/auth/sessions/{session_id}" in paths


def test_password_change_answers(client: FlaskClient, document: dict[str, Any]) -> None:
    token = signed_in(client)
    url = f"{PREFIX}/password"
    headers = bearer(token)
    for body, code in [
        (
            {"currentPassword": "wrong password!", "newPassword": "a new passphrase"},
            "WRONG_PASSWORD",
        ),
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "INVALID_PASSWORD"),
        (
            {"currentPassword": "", "newPassword": "a new passphrase"},
            "INVALID_PASSWORD",
        ),
        (
            {"currentPassword": PASSWORD, "newPassword": f"my {EMAIL} pass"},
            "PASSWORD_HAS_CONTEXT_WORD",
        ),
        ({"currentPassword": PASSWORD}, "VALIDATION_ERROR"),
    ]:
        refused = conforms(document, client.post(url, json=body, headers=headers))
        assert refused.get_json()["code"] == code, body
    body = {"currentPassword": PASSWORD, "newPassword": "a new passphrase"}
    changed = conforms(document, client.post(url, json=body, headers=headers))
    assert changed.status_code == 200 and "Set-Cookie" in changed.headers
    assert claims_of(changed.get_json()["accessToken"])["sub"]


# -- the public documents -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/client.js", "text/javascript"),
        ("/client.d.ts", "application/typescript"),
        ("/.well-known/jwks.json", "application/jwk-set+json"),
        ("/openapi.json", "application/json"),
    ],
)
def test_public_documents(
    client: FlaskClient, document: dict[str, Any], path: str, content_type: str
) -> None:
    url = PREFIX + path
    item = document["paths"][url]
    assert set(item) == {"get", "head"}
    assert list(item["get"]["responses"]["200"]["content"]) == [content_type]
    first = conforms(document, client.get(url))
    assert first.status_code == 200 and first.mimetype == content_type
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert conforms(document, again).status_code == 304
    head = conforms(document, client.head(url))
    assert head.status_code == 200 and head.headers["ETag"] == etag
    assert client.post(url).status_code == 405  # not described: not served


def test_jwks_of_an_asymmetric_key_conforms(make_app: Any) -> None:
    """The keys of an app that signs with ES256: each a documented key."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    client = make_app(TOKENAUTH_SIGNING_KEY=private).test_client()
    document = document_of(client)
    keys = conforms(document, client.get(f"{PREFIX}/.well-known/jwks.json"))
    assert [k["kty"] for k in keys.get_json()["keys"]] == ["EC"]
