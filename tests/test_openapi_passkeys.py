"""The API description of passkeys: every answer of the passkey routes
(registration, the list, rename and removal, the password-less sign-in, the
second factor and the re-authentication by passkey; success and the usual
refusals) is one the description documents, the credentials a browser sends
are bodies it accepts, and the WebAuthn options are described member by
member.  The authenticator is :class:`tests.passkey_authenticator.Authenticator`
(real keys and signatures)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft202012Validator

from .openapi_factor_helpers import FULL_CONFIG, Caller, document_of, signed_in
from .passkey_authenticator import Authenticator

pytestmark = pytest.mark.sqlite

EMAIL = "keys@example.com"
ORIGIN = FULL_CONFIG["TOKENAUTH_WEBAUTHN_ORIGINS"]


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app(**FULL_CONFIG)  # type: ignore[no-any-return]


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    return document_of(app)


def register_passkey(user: Caller, device: Authenticator, name: str) -> str:
    """A passkey added by ``user`` on ``device``: its id."""
    options = user.call("POST", "/passkeys/register/options", expect=200).get_json()
    body = {"credential": device.create(options), "name": name}
    created = user.call("POST", "/passkeys/register", body, 201)
    return str(created.get_json()["passkey"]["id"])


def test_registration_and_management_answers_conform(app: Flask, document: Any) -> None:
    user = signed_in(app, document, EMAIL)
    device = Authenticator(ORIGIN)
    user.call("POST", "/passkeys/verify/options", expect=404, code="PASSKEY_NOT_FOUND")
    assert user.call("GET", "/passkeys", expect=200).get_json() == {"passkeys": []}

    options = user.call("POST", "/passkeys/register/options", expect=200).get_json()
    credential = device.create(options)
    user.call("POST", "/passkeys/register", {}, 400, "VALIDATION_ERROR")
    user.call("POST", "/passkeys/register", {"credential": []}, 400, "VALIDATION_ERROR")
    user.call("POST", "/passkeys/register", {"credential": {}}, 401, "PASSKEY_INVALID")
    blank = {"credential": credential, "name": " \t "}
    user.call("POST", "/passkeys/register", blank, 400, "VALIDATION_ERROR")
    elsewhere = {"credential": device.create(options, origin="https://evil.example")}
    user.call("POST", "/passkeys/register", elsewhere, 400, "PASSKEY_REJECTED")
    # That attempt spent the challenge.
    spent = {"credential": credential}
    user.call("POST", "/passkeys/register", spent, 400, "PASSKEY_CHALLENGE_INVALID")
    passkey_id = register_passkey(user, Authenticator(ORIGIN), "Laptop")

    listed = user.call("GET", "/passkeys", expect=200).get_json()["passkeys"]
    assert [p["id"] for p in listed] == [passkey_id]
    one = f"/passkeys/{passkey_id}"
    user.call("PATCH", one, {"name": "  "}, 400, "VALIDATION_ERROR")
    user.call("PATCH", one, {}, 400, "VALIDATION_ERROR")
    renamed = user.call("PATCH", one, {"name": " Phone "}, 200).get_json()
    assert renamed["passkey"]["name"] == "Phone"
    user.call("PATCH", "/passkeys/nope", {"name": "Phone"}, 404, "PASSKEY_NOT_FOUND")
    user.call("DELETE", "/passkeys/nope", expect=404, code="PASSKEY_NOT_FOUND")
    # The session proved no factor: it may neither remove one nor add one.
    user.call("DELETE", one, expect=401, code="MFA_REQUIRED")
    user.call("POST", "/passkeys/register/options", expect=401, code="MFA_REQUIRED")


def test_second_factor_and_step_up_answers_conform(app: Flask, document: Any) -> None:
    device = Authenticator(ORIGIN)
    passkey_id = register_passkey(signed_in(app, document, EMAIL), device, "Key")
    pending = signed_in(app, document, EMAIL, register=False)
    for method, path in (("GET", "/passkeys"), ("POST", "/passkeys/register/options")):
        pending.call(method, path, expect=401, code="MFA_REQUIRED")
    pending.call("PATCH", f"/passkeys/{passkey_id}", {"name": "x"}, 401, "MFA_REQUIRED")

    options = pending.call("POST", "/passkeys/verify/options", expect=200).get_json()
    assert [c["id"] for c in options["allowCredentials"]] == [passkey_id]
    assertion = {"credential": device.get(options)}
    pending.call("POST", "/passkeys/verify", {"credential": {}}, 401, "PASSKEY_INVALID")
    upgraded = pending.call("POST", "/passkeys/verify", assertion, 200)
    assert "refresh_token=" in upgraded.headers["Set-Cookie"]
    pending.keep_token(upgraded)
    replayed = "PASSKEY_CHALLENGE_INVALID"
    pending.call("POST", "/passkeys/verify", assertion, 400, replayed)

    options = pending.call("POST", "/passkeys/verify/options", expect=200).get_json()
    step_up = {"credential": device.get(options)}
    pending.keep_token(pending.call("POST", "/reauthenticate", step_up, 200))
    pending.call("POST", "/reauthenticate", step_up, 400, replayed)
    pending.call("DELETE", f"/passkeys/{passkey_id}", expect=200)


def test_password_less_sign_in_answers_conform(app: Flask, document: Any) -> None:
    device = Authenticator(ORIGIN)
    register_passkey(signed_in(app, document, EMAIL), device, "Key")
    browser = Caller(app.test_client(), document)
    stranger = Caller(app.test_client(), document)

    options = browser.call("POST", "/passkeys/login/options", expect=200)
    assert "refresh_token_passkey=" in options.headers["Set-Cookie"]
    # Another browser, without the sign-in cookie the challenge is bound to.
    theirs = {"credential": device.get(options.get_json())}
    stranger.call("POST", "/passkeys/login", theirs, 400, "PASSKEY_CHALLENGE_INVALID")
    stranger.call("POST", "/passkeys/login", {}, 400, "VALIDATION_ERROR")

    phished = device.get(options.get_json(), origin="https://evil.example")
    browser.call(
        "POST", "/passkeys/login", {"credential": phished}, 401, "PASSKEY_INVALID"
    )
    options = browser.call("POST", "/passkeys/login/options", expect=200)
    body = {"credential": device.get(options.get_json())}
    session = browser.call("POST", "/passkeys/login", body, 200)
    assert "refresh_token=" in session.headers["Set-Cookie"]
    assert not session.get_json().get("mfaRequired")


def test_webauthn_options_are_described_member_by_member(
    app: Flask, document: Any
) -> None:
    """The options' schemas are WebAuthn's, not ``{}``: an answer without
    one of its members would not match them."""
    user = signed_in(app, document, EMAIL)
    schemas = document["components"]["schemas"]
    creation = user.call("POST", "/passkeys/register/options", expect=200).get_json()
    request = Caller(app.test_client(), document)
    sign_in = request.call("POST", "/passkeys/login/options", expect=200).get_json()
    for name, options, members in (
        (
            "PublicKeyCredentialCreationOptionsJSON",
            creation,
            ("challenge", "rp", "user", "pubKeyCredParams"),
        ),
        ("PublicKeyCredentialRequestOptionsJSON", sign_in, ("challenge",)),
    ):
        validator = Draft202012Validator(
            {**schemas[name], "components": document["components"]}
        )
        assert validator.is_valid(options)
        for member in members:
            assert not validator.is_valid({**options, member: None}), member
        assert not validator.is_valid({**options, "challenge": "not base64url!"})
    assert creation["authenticatorSelection"]["residentKey"] == "required"
