"""Passkeys over HTTP, on SQLite and PostgreSQL: registration, the list,
rename and removal, the password-less sign-in and the second factor, each
security claim tried as an attack (a challenge replayed, expired, of
another session or browser; a cloned authenticator; a phishing origin or
another relying party; another user's passkey; user verification skipped).

The client side is :class:`tests.passkey_authenticator.Authenticator`: real
keys and signatures, the JSON a browser sends; the headless-Chromium tests
run the same ceremonies with Chrome's virtual authenticator
(``tests/test_passkeys_browser.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, Table, func, select, update
from werkzeug.test import TestResponse

from flask_tokenauth import signals
from flask_tokenauth.models import Passkey, Session, WebAuthnChallenge

from .conftest import ACCESS_SECRET, PASSWORD, Auth, bearer
from .passkey_authenticator import Authenticator, b64url, unb64url
from .test_host_email import Member, add, member_store, tables
from .test_host_email import make_app as make_host_app

__all__ = ["tables"]  # a fixture, used by name

_passkeys: Table = Passkey.__table__  # type: ignore[assignment]
_challenges: Table = WebAuthnChallenge.__table__  # type: ignore[assignment]
_sessions: Table = Session.__table__  # type: ignore[assignment]

RP_ID = "example.com"
ORIGIN = "https://app.example.com"
CONFIG: dict[str, Any] = {
    "TOKENAUTH_PASSKEYS_ENABLED": True,
    "TOKENAUTH_WEBAUTHN_RP_ID": RP_ID,
    "TOKENAUTH_WEBAUTHN_ORIGINS": f"{ORIGIN}, https://example.com",
    "TOKENAUTH_RATELIMIT_ENABLED": False,
}
P = "/api/auth/passkeys"
EMAIL = "user@example.com"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(
        token, ACCESS_SECRET, algorithms=["HS256"], options={"verify_aud": False}
    )


def assert_code(response: TestResponse, status: int, code: str) -> None:
    assert (response.status_code, response.get_json()) == (
        status,
        {"error": response.get_json()["error"], "code": code},
    ), response.get_data(as_text=True)


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app(**CONFIG)  # type: ignore[no-any-return]


@contextmanager
def recorded(signal: Any) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    signal.connect(receive)
    try:
        yield seen
    finally:
        signal.disconnect(receive)


class Passkeys:
    """Drives the passkey endpoints for one browser (a test client)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register_options(self, token: str) -> TestResponse:
        return self.client.post(f"{P}/register/options", headers=bearer(token))

    def register(
        self, device: Authenticator, token: str, name: str | None = None, **create: Any
    ) -> TestResponse:
        options = self.register_options(token)
        assert options.status_code == 200, options.get_data(as_text=True)
        credential = device.create(options.get_json(), **create)
        body: dict[str, Any] = {"credential": credential}
        if name is not None:
            body["name"] = name
        return self.client.post(f"{P}/register", json=body, headers=bearer(token))

    def login_options(self) -> dict[str, Any]:
        response = self.client.post(f"{P}/login/options")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def login(self, device: Authenticator, **get: Any) -> TestResponse:
        credential = device.get(self.login_options(), **get)
        return self.client.post(f"{P}/login", json={"credential": credential})

    def verify(self, device: Authenticator, token: str, **get: Any) -> TestResponse:
        options = self.client.post(f"{P}/verify/options", headers=bearer(token))
        assert options.status_code == 200, options.get_data(as_text=True)
        credential = device.get(options.get_json(), **get)
        return self.client.post(
            f"{P}/verify", json={"credential": credential}, headers=bearer(token)
        )

    def list(self, token: str) -> list[dict[str, Any]]:
        response = self.client.get(P, headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["passkeys"]  # type: ignore[no-any-return]


@pytest.fixture
def passkeys(client: FlaskClient) -> Passkeys:
    return Passkeys(client)


@pytest.fixture
def token(auth: Auth) -> str:
    """A registered user's access token (password only, no factor yet)."""
    response = auth.register(EMAIL)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["accessToken"]  # type: ignore[no-any-return]


@pytest.fixture
def device() -> Authenticator:
    return Authenticator(ORIGIN)


def proved(passkeys: Passkeys, device: Authenticator, token: str) -> str:
    """The session's token once it proved its passkey (``aal`` 2): what
    adding another factor asks of a user who has one."""
    response = passkeys.verify(device, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["accessToken"]  # type: ignore[no-any-return]


def registered(passkeys: Passkeys, device: Authenticator, token: str) -> dict[str, Any]:
    response = passkeys.register(device, token)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["passkey"]  # type: ignore[no-any-return]


# -- Switched off ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/register/options"),
        ("POST", "/register"),
        ("GET", ""),
        ("PATCH", "/abc"),
        ("DELETE", "/abc"),
        ("POST", "/login/options"),
        ("POST", "/login"),
        ("POST", "/verify/options"),
        ("POST", "/verify"),
    ],
)
def test_off_every_endpoint_is_not_found(make_app: Any, method: str, path: str) -> None:
    client = make_app().test_client()
    response = client.open(P + path, method=method, json={})
    assert_code(response, 404, "NOT_FOUND")


# -- Registration ------------------------------------------------------------------


@pytest.mark.requirement("NIST-800-63B-4-3.1.7.2", "WebAuthn-L3-7.1")
def test_creation_options_ask_for_a_discoverable_credential(
    passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    response = passkeys.register_options(token)
    assert response.status_code == 200
    options = response.get_json()
    assert options["rp"] == {"id": RP_ID, "name": RP_ID}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["requireResidentKey"] is True
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert options["timeout"] <= 5 * 60 * 1000
    assert options["excludeCredentials"] == []
    assert len(unb64url(options["challenge"])) == 32
    # The user handle is derived from the sub, not the address; the address
    # is the account's name, as the authenticator's account picker shows.
    sub = claims(token)["sub"]
    handle = unb64url(options["user"]["id"])
    assert EMAIL.encode() not in handle and sub.encode() not in handle
    assert len(handle) == 32
    assert options["user"]["name"] == EMAIL

    # A second passkey: the first one is excluded, the handle is the same.
    first = registered(passkeys, device, token)
    again = passkeys.register_options(proved(passkeys, device, token)).get_json()
    assert [c["id"] for c in again["excludeCredentials"]] == [first["id"]]
    assert again["user"]["id"] == options["user"]["id"]
    assert again["challenge"] != options["challenge"]


def test_register_list_rename_remove(
    passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    with recorded(signals.passkey_registered) as seen:
        response = passkeys.register(device, token, name="  My phone ")
    assert response.status_code == 201, response.get_data(as_text=True)
    passkey = response.get_json()["passkey"]
    assert passkey["name"] == "My phone"
    assert passkey["lastUsedAt"] is None and passkey["backedUp"] is False
    assert seen == [{"user_id": int(claims(token)["sub"]), "passkey_id": passkey["id"]}]
    with engine.connect() as conn:
        row = conn.execute(select(_passkeys)).one()
    assert row.transports == "internal"
    assert row.aaguid == "00000000-0000-0000-0000-000000000000"
    assert row.sign_count == 0

    assert passkeys.list(token) == [passkey]
    assert set(passkey) == {"id", "name", "createdAt", "lastUsedAt", "backedUp"}

    # No name: numbered.
    other = Authenticator(ORIGIN)
    token = proved(passkeys, device, token)
    second = passkeys.register(other, token).get_json()["passkey"]
    assert second["name"] == "Passkey 2"

    with recorded(signals.passkey_renamed) as renamed:
        response = passkeys.client.patch(
            f"{P}/{passkey['id']}", json={"name": "Work laptop"}, headers=bearer(token)
        )
    assert response.status_code == 200
    assert response.get_json()["passkey"]["name"] == "Work laptop"
    assert renamed == [
        {"user_id": int(claims(token)["sub"]), "passkey_id": passkey["id"]}
    ]

    with recorded(signals.passkey_removed) as removed:
        response = passkeys.client.delete(f"{P}/{passkey['id']}", headers=bearer(token))
    assert response.status_code == 200
    assert removed == [
        {"user_id": int(claims(token)["sub"]), "passkey_id": passkey["id"]}
    ]
    assert [p["id"] for p in passkeys.list(token)] == [second["id"]]
    assert_code(
        passkeys.client.delete(f"{P}/{passkey['id']}", headers=bearer(token)),
        404,
        "PASSKEY_NOT_FOUND",
    )


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there", 7])
def test_bad_names_are_refused(
    passkeys: Passkeys, token: str, device: Authenticator, name: Any
) -> None:
    passkey = registered(passkeys, device, token)
    response = passkeys.client.patch(
        f"{P}/{passkey['id']}", json={"name": name}, headers=bearer(token)
    )
    assert_code(response, 400, "VALIDATION_ERROR")
    assert passkeys.list(token)[0]["name"] == passkey["name"]


def test_another_users_passkey_cannot_be_seen_renamed_or_removed(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    passkey = registered(passkeys, device, token)
    other = Auth(app.test_client())
    other_token = other.register("other@example.com").get_json()["accessToken"]
    client = other.client
    assert Passkeys(client).list(other_token) == []
    for method, body in (("PATCH", {"name": "mine"}), ("DELETE", None)):
        response = client.open(
            f"{P}/{passkey['id']}",
            method=method,
            json=body,
            headers=bearer(other_token),
        )
        assert_code(response, 404, "PASSKEY_NOT_FOUND")
    assert passkeys.list(token) == [passkey]


@pytest.mark.parametrize(
    ("create", "why"),
    [
        ({"origin": "https://app.example.com.evil.test"}, "a phishing origin"),
        ({"origin": "http://app.example.com"}, "plain http"),
        ({"rp_id": "evil.test"}, "another relying party"),
    ],
)
@pytest.mark.requirement("WebAuthn-L3-7.1", "NIST-800-63B-4-3.2.5.2")
def test_registration_elsewhere_is_refused(
    passkeys: Passkeys,
    token: str,
    device: Authenticator,
    create: dict[str, Any],
    why: str,
) -> None:
    response = passkeys.register(device, token, **create)
    assert_code(response, 400, "PASSKEY_REJECTED")
    assert passkeys.list(token) == []


@pytest.mark.parametrize(
    "credential",
    [None, "x", [], {}, {"response": {}}, {"response": {"clientDataJSON": "!!"}}],
)
def test_malformed_credentials_are_4xx(
    passkeys: Passkeys, token: str, credential: Any
) -> None:
    for path, headers in (("/register", bearer(token)), ("/login", {})):
        response = passkeys.client.post(
            P + path, json={"credential": credential}, headers=headers
        )
        assert response.status_code in (400, 401), response.get_data(as_text=True)
        assert response.get_json()["code"] in (
            "VALIDATION_ERROR",
            "PASSKEY_INVALID",
            "PASSKEY_CHALLENGE_INVALID",
        )


@pytest.mark.requirement("WebAuthn-L3-7.1", "NIST-800-63B-4-3.1.7.2")
def test_a_registration_answer_is_spent_with_its_challenge(
    passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    options = passkeys.register_options(token).get_json()
    credential = device.create(options)
    first = passkeys.client.post(
        f"{P}/register", json={"credential": credential}, headers=bearer(token)
    )
    assert first.status_code == 201
    token = proved(passkeys, device, token)
    again = passkeys.client.post(
        f"{P}/register", json={"credential": credential}, headers=bearer(token)
    )
    assert_code(again, 400, "PASSKEY_CHALLENGE_INVALID")


@pytest.mark.requirement("WebAuthn-L3-7.1")
def test_a_registration_challenge_is_bound_to_its_session(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, auth: Auth
) -> None:
    options = passkeys.register_options(token).get_json()
    # The same user, another session (another device's login).
    elsewhere = Auth(app.test_client()).login(EMAIL).get_json()["accessToken"]
    response = passkeys.client.post(
        f"{P}/register",
        json={"credential": device.create(options)},
        headers=bearer(elsewhere),
    )
    assert_code(response, 400, "PASSKEY_CHALLENGE_INVALID")
    assert passkeys.list(token) == []


def test_the_same_credential_cannot_be_registered_twice(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    """Its id names one credential: not a second time for this user, nor for
    another (who would then own a credential someone else holds)."""
    options = passkeys.register_options(token).get_json()
    credential = device.create(options)
    assert (
        passkeys.client.post(
            f"{P}/register", json={"credential": credential}, headers=bearer(token)
        ).status_code
        == 201
    )
    other = Auth(app.test_client())
    other_token = other.register("other@example.com").get_json()["accessToken"]
    options = Passkeys(other.client).register_options(other_token).get_json()
    replayed = {**credential}
    # The same attestation, re-signed for the new challenge by the browser.
    replayed["response"] = {
        **credential["response"],
        "clientDataJSON": b64url(device._client_data("webauthn.create", options, None)),
    }
    response = other.client.post(
        f"{P}/register", json={"credential": replayed}, headers=bearer(other_token)
    )
    assert_code(response, 400, "PASSKEY_REJECTED")
    assert Passkeys(other.client).list(other_token) == []


# -- Signing in without a password ---------------------------------------------------


@pytest.mark.parametrize(("synced", "amr"), [(False, "hwk"), (True, "swk")])
@pytest.mark.requirement("NIST-800-63B-4-2.2.2")
def test_sign_in_with_a_passkey_only(
    app: Flask, passkeys: Passkeys, token: str, synced: bool, amr: str
) -> None:
    device = Authenticator(ORIGIN, synced=synced, counts=not synced)
    passkey = registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    with recorded(signals.login_succeeded) as seen:
        response = browser.login(device)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["user"]["email"] == EMAIL
    access = claims(body["accessToken"])
    assert access["sub"] == claims(token)["sub"]
    assert access["amr"] == [amr, "user"]
    assert access["aal"] == 2
    assert seen and seen[0]["method"] == "passkey"
    assert seen[0]["session_id"] == access["sid"]
    assert browser.client.get_cookie("refresh_token", path="/api/auth")
    # The session keeps its level through a refresh.
    refreshed = browser.client.post("/api/auth/refresh")
    assert refreshed.status_code == 200
    assert claims(refreshed.get_json()["accessToken"])["aal"] == 2
    # Last use and the backup state are recorded.
    (listed,) = passkeys.list(token)
    assert listed["lastUsedAt"] is not None and listed["backedUp"] is synced
    assert listed["id"] == passkey["id"]


def test_request_options_of_a_sign_in_name_no_user(
    passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    options = passkeys.login_options()
    assert options["rpId"] == RP_ID
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == []
    assert options["timeout"] <= 5 * 60 * 1000


@pytest.mark.requirement("WebAuthn-L3-7.2")
def test_sign_in_requires_user_verification(
    app: Flask, passkeys: Passkeys, token: str
) -> None:
    device = Authenticator(ORIGIN, verifies_user=False)
    registered(passkeys, device, token)
    with recorded(signals.mfa_failed) as seen:
        response = Passkeys(app.test_client()).login(device)
    assert_code(response, 401, "PASSKEY_INVALID")
    assert seen[0]["reason"] == "assertion"


@pytest.mark.requirement(
    "WebAuthn-L3-7.2",
    "NIST-800-63B-4-3.1.7.2",
    "NIST-800-63B-4-3.2.7",
)
def test_a_sign_in_answer_is_spent_with_its_challenge(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    credential = device.get(browser.login_options())
    first = browser.client.post(f"{P}/login", json={"credential": credential})
    assert first.status_code == 200
    # Replayed, even with a fresh sign-in cookie of the same browser.
    browser.login_options()
    again = browser.client.post(f"{P}/login", json={"credential": credential})
    assert_code(again, 400, "PASSKEY_CHALLENGE_INVALID")


@pytest.mark.requirement("WebAuthn-L3-7.2")
def test_a_sign_in_challenge_is_bound_to_the_browser_that_asked(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    asking = Passkeys(app.test_client())
    credential = device.get(asking.login_options())
    # Another browser (another cookie, or none) presents it.
    thief = Passkeys(app.test_client())
    for _ in range(2):
        response = thief.client.post(f"{P}/login", json={"credential": credential})
        assert_code(response, 400, "PASSKEY_CHALLENGE_INVALID")
        thief.login_options()
    # Refused there, it was not spent: the browser that asked signs in.
    assert (
        asking.client.post(f"{P}/login", json={"credential": credential}).status_code
        == 200
    )


def test_two_tabs_of_one_browser_each_get_a_working_challenge(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    first, second = browser.login_options(), browser.login_options()
    for options in (second, first):
        credential = device.get(options)
        response = browser.client.post(f"{P}/login", json={"credential": credential})
        assert response.status_code == 200, response.get_data(as_text=True)
        browser.login_options()  # the next tab's page load


def test_an_expired_challenge_is_refused(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    credential = device.get(browser.login_options())
    with engine.begin() as conn:
        conn.execute(
            update(_challenges).values(
                expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)
            )
        )
    response = browser.client.post(f"{P}/login", json={"credential": credential})
    assert_code(response, 400, "PASSKEY_CHALLENGE_INVALID")
    # Expired rows go when the next challenge is issued.
    browser.login_options()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(_challenges)).scalar() == 1


@pytest.mark.parametrize(
    ("get", "why"),
    [
        ({"origin": "https://app.example.com.evil.test"}, "a phishing origin"),
        ({"origin": "https://evil.test"}, "another site"),
    ],
)
@pytest.mark.requirement("WebAuthn-L3-7.2", "NIST-800-63B-4-3.2.5.2")
def test_an_assertion_made_elsewhere_is_refused(
    app: Flask,
    passkeys: Passkeys,
    token: str,
    device: Authenticator,
    get: dict[str, Any],
    why: str,
) -> None:
    registered(passkeys, device, token)
    response = Passkeys(app.test_client()).login(device, **get)
    assert_code(response, 401, "PASSKEY_INVALID")


@pytest.mark.requirement("WebAuthn-L3-7.2", "NIST-800-63B-4-3.2.5.2")
def test_an_assertion_for_another_relying_party_is_refused(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    (credential,) = device.credentials.values()
    credential.rp_id = "evil.test"  # signs for another RP id's hash
    browser = Passkeys(app.test_client())
    options = browser.login_options()
    answer = device.get({**options, "rpId": "evil.test"})
    response = browser.client.post(f"{P}/login", json={"credential": answer})
    assert_code(response, 401, "PASSKEY_INVALID")


@pytest.mark.requirement("WebAuthn-L3-7.2")
def test_a_cloned_authenticator_is_refused(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    passkey = registered(passkeys, device, token)
    clone = device.clone()  # keys extracted while the counter was at 0
    assert Passkeys(app.test_client()).login(device).status_code == 200  # count 1
    assert Passkeys(app.test_client()).login(device).status_code == 200  # count 2
    # The clone counts from where it was copied: 1, not past 2.
    with recorded(signals.mfa_failed) as seen:
        response = Passkeys(app.test_client()).login(clone)
    assert_code(response, 401, "PASSKEY_INVALID")
    assert seen == [
        {
            "user_id": int(claims(token)["sub"]),
            "method": "passkey",
            "reason": "sign-count",
            "passkey_id": passkey["id"],
        }
    ]
    with engine.connect() as conn:
        assert conn.execute(select(_passkeys.c.sign_count)).scalar() == 2
    # The same counter twice (an assertion replayed with a new challenge is
    # impossible without the key; a clone that caught up is the case).
    clone.credentials[next(iter(clone.credentials))].sign_count = 1
    assert_code(Passkeys(app.test_client()).login(clone), 401, "PASSKEY_INVALID")
    # The genuine one goes on.
    assert Passkeys(app.test_client()).login(device).status_code == 200


def test_authenticators_without_a_counter_sign_in_again_and_again(
    app: Flask, passkeys: Passkeys, token: str
) -> None:
    device = Authenticator(ORIGIN, counts=False, synced=True)
    registered(passkeys, device, token)
    for _ in range(3):
        assert Passkeys(app.test_client()).login(device).status_code == 200


def test_a_counter_at_zero_after_counting_is_refused(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    assert Passkeys(app.test_client()).login(device).status_code == 200
    clone = device.clone()
    clone.counts = False
    next(iter(clone.credentials.values())).sign_count = 0
    assert_code(Passkeys(app.test_client()).login(clone), 401, "PASSKEY_INVALID")


def test_a_passkey_of_a_removed_user_signs_nobody_in(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    registered(passkeys, device, token)
    passkey_id = passkeys.list(token)[0]["id"]
    token = proved(passkeys, device, token)
    removed = passkeys.client.delete(f"{P}/{passkey_id}", headers=bearer(token))
    assert removed.status_code == 200, removed.get_data(as_text=True)
    assert_code(Passkeys(app.test_client()).login(device), 401, "PASSKEY_INVALID")


def test_concurrent_answers_to_one_challenge_sign_in_once(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    credential = device.get(browser.login_options())
    cookie = browser.client.get_cookie("refresh_token_passkey", path="/api/auth")
    assert cookie is not None
    n = 6
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def attempt() -> None:
        client = app.test_client()
        client.set_cookie("refresh_token_passkey", cookie.value, path="/api/auth")
        barrier.wait()
        statuses.append(
            client.post(f"{P}/login", json={"credential": credential}).status_code
        )

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200] + [400] * (n - 1)
    with engine.connect() as conn:
        live = conn.execute(
            select(func.count()).select_from(_sessions).where(_sessions.c.aal == 2)
        ).scalar()
    assert live == 1


# -- As a second factor ----------------------------------------------------------------


def test_a_passkey_as_the_second_factor_after_a_password(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    browser = Auth(app.test_client())
    pending = browser.login(EMAIL).get_json()["accessToken"]
    assert claims(pending)["aal"] == 1
    assert_code(
        browser.client.get("/api/auth/sessions", headers=bearer(pending)),
        401,
        "MFA_REQUIRED",
    )
    options = browser.client.post(f"{P}/verify/options", headers=bearer(pending))
    assert options.status_code == 200
    allowed = options.get_json()["allowCredentials"]
    assert [c["id"] for c in allowed] == [passkeys.list(token)[0]["id"]]
    assert options.get_json()["userVerification"] == "preferred"
    with recorded(signals.mfa_verified) as seen:
        response = Passkeys(browser.client).verify(device, pending)
    assert response.status_code == 200, response.get_data(as_text=True)
    upgraded = claims(response.get_json()["accessToken"])
    assert upgraded["sid"] == claims(pending)["sid"]
    assert upgraded["aal"] == 2
    assert {"pwd", "hwk", "mfa"} <= set(upgraded["amr"])
    assert seen[0]["method"] == "passkey"
    ok = browser.client.get(
        "/api/auth/sessions", headers=bearer(response.get_json()["accessToken"])
    )
    assert ok.status_code == 200


def test_another_users_passkey_is_no_second_factor(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    # Mallory has a password and a passkey of her own, and Ann's device.
    mallory = Auth(app.test_client())
    mallory_token = mallory.register("mallory@example.com").get_json()["accessToken"]
    registered(Passkeys(mallory.client), Authenticator(ORIGIN), mallory_token)
    victim = Auth(app.test_client())
    pending = victim.login(EMAIL).get_json()["accessToken"]
    # Mallory's pending session, answered with Ann's passkey: refused.
    mine = mallory.login("mallory@example.com").get_json()["accessToken"]
    options = mallory.client.post(
        f"{P}/verify/options", headers=bearer(mine)
    ).get_json()
    (ann_credential,) = device.credentials.values()
    answer = device.get(options, credential=ann_credential)
    response = mallory.client.post(
        f"{P}/verify", json={"credential": answer}, headers=bearer(mine)
    )
    assert_code(response, 401, "PASSKEY_INVALID")
    assert pending  # Ann's own pending session is untouched


def test_verify_challenges_are_bound_to_their_session(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    one, two = Auth(app.test_client()), Auth(app.test_client())
    first = one.login(EMAIL).get_json()["accessToken"]
    second = two.login(EMAIL).get_json()["accessToken"]
    options = one.client.post(f"{P}/verify/options", headers=bearer(first)).get_json()
    answer = device.get(options)
    response = two.client.post(
        f"{P}/verify", json={"credential": answer}, headers=bearer(second)
    )
    assert_code(response, 400, "PASSKEY_CHALLENGE_INVALID")


def test_no_passkey_no_verify_options(passkeys: Passkeys, token: str) -> None:
    response = passkeys.client.post(f"{P}/verify/options", headers=bearer(token))
    assert_code(response, 404, "PASSKEY_NOT_FOUND")


def test_a_pending_session_cannot_register_or_manage_passkeys(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    browser = Auth(app.test_client())
    pending = browser.login(EMAIL).get_json()["accessToken"]
    for method, path in (("POST", "/register/options"), ("GET", "")):
        response = browser.client.open(P + path, method=method, headers=bearer(pending))
        assert_code(response, 401, "MFA_REQUIRED")


# -- Fresh authentication ------------------------------------------------------


def test_removal_and_a_second_registration_want_a_fresh_authentication(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    passkey = registered(passkeys, device, token)
    # A passkey sign-in (aal 2), then its authentication grows old.
    browser = Passkeys(app.test_client())
    access = browser.login(device).get_json()["accessToken"]
    sid = claims(access)["sid"]
    with engine.begin() as conn:
        conn.execute(
            update(_sessions)
            .where(_sessions.c.id == sid)
            .values(auth_time=datetime.now(timezone.utc) - timedelta(minutes=11))
        )
    stale = browser.client.post("/api/auth/refresh").get_json()["accessToken"]
    response = browser.client.delete(f"{P}/{passkey['id']}", headers=bearer(stale))
    assert_code(response, 401, "REAUTHENTICATION_REQUIRED")
    assert 'max_age="600"' in response.headers["WWW-Authenticate"]
    response = browser.register_options(stale)
    assert_code(response, 401, "REAUTHENTICATION_REQUIRED")
    # Renaming is not sensitive.
    renamed = browser.client.patch(
        f"{P}/{passkey['id']}", json={"name": "Renamed"}, headers=bearer(stale)
    )
    assert renamed.status_code == 200
    assert passkeys.list(token)[0]["name"] == "Renamed"
    # A step-up with the passkey itself: the verify options of this session,
    # answered to /reauthenticate.
    options = browser.client.post(f"{P}/verify/options", headers=bearer(stale))
    assert options.status_code == 200
    answer = device.get(options.get_json())
    with recorded(signals.reauthenticated) as seen:
        renewed = browser.client.post(
            "/api/auth/reauthenticate",
            json={"credential": answer},
            headers=bearer(stale),
        )
    assert renewed.status_code == 200, renewed.get_data(as_text=True)
    assert seen[0]["method"] == "hwk"
    fresh = renewed.get_json()["accessToken"]
    assert claims(fresh)["sid"] == sid
    response = browser.client.delete(f"{P}/{passkey['id']}", headers=bearer(fresh))
    assert response.status_code == 200
    # The answer was spent with its challenge.
    again = browser.client.post(
        "/api/auth/reauthenticate", json={"credential": answer}, headers=bearer(fresh)
    )
    assert_code(again, 400, "PASSKEY_CHALLENGE_INVALID")


def test_a_first_passkey_needs_no_step_up_a_second_one_does(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    sid = claims(token)["sid"]
    with engine.begin() as conn:
        conn.execute(
            update(_sessions)
            .where(_sessions.c.id == sid)
            .values(auth_time=datetime.now(timezone.utc) - timedelta(hours=1))
        )
    stale = passkeys.client.post("/api/auth/refresh").get_json()["accessToken"]
    # No factor yet: the password session may add its first passkey.
    assert passkeys.register(device, stale).status_code == 201
    # Now it has one: adding another wants it proved (the password session
    # is aal 1), and recently.
    assert_code(passkeys.register_options(stale), 401, "MFA_REQUIRED")
    verified = passkeys.verify(device, stale)
    assert verified.status_code == 200, verified.get_data(as_text=True)
    assert (
        passkeys.register_options(verified.get_json()["accessToken"]).status_code == 200
    )


# -- The host's own users ---------------------------------------------------------


def test_host_users_have_passkeys_too(engine: Engine, tables: None) -> None:
    add(engine, Member, username="ann", email="ann@example.com")
    app = make_host_app(engine, member_store(), **CONFIG)
    client = app.test_client()
    login = client.post(
        "/api/auth/login", json={"username": "ann", "password": PASSWORD}
    )
    assert login.status_code == 200, login.get_data(as_text=True)
    token = login.get_json()["accessToken"]
    device = Authenticator(ORIGIN)
    options = Passkeys(client).register_options(token).get_json()
    assert options["user"]["name"] == "ann"
    assert registered(Passkeys(client), device, token)

    response = Passkeys(app.test_client()).login(device)
    assert response.status_code == 200, response.get_data(as_text=True)
    access = claims(response.get_json()["accessToken"])
    assert access["sub"] == claims(token)["sub"]
    assert access["amr"] == ["hwk", "user"]
    # A password login now waits for the passkey.
    pending = app.test_client().post(
        "/api/auth/login", json={"username": "ann", "password": PASSWORD}
    )
    assert claims(pending.get_json()["accessToken"])["aal"] == 1


def test_under_required_mfa_a_passkey_is_an_enrolment(make_app: Any) -> None:
    app = make_app(**CONFIG, TOKENAUTH_MFA="required")
    auth = Auth(app.test_client())
    token = auth.register(EMAIL).get_json()["accessToken"]
    assert_code(
        auth.client.get("/api/auth/sessions", headers=bearer(token)),
        403,
        "MFA_ENROLLMENT_REQUIRED",
    )
    device = Authenticator(ORIGIN)
    registered(Passkeys(auth.client), device, token)
    response = Passkeys(app.test_client()).login(device)
    assert response.status_code == 200
    access = response.get_json()["accessToken"]
    assert (
        auth.client.get("/api/auth/sessions", headers=bearer(access)).status_code == 200
    )


def test_under_required_mfa_the_enrolling_session_goes_on_by_its_new_passkey(
    make_app: Any,
) -> None:
    """The session that had to enrol registers a passkey, then proves it
    (as ``/mfa/totp/confirm`` upgrades one): ``aal`` 2, the other views open."""
    app = make_app(**CONFIG, TOKENAUTH_MFA="required")
    auth = Auth(app.test_client())
    token = auth.register(EMAIL).get_json()["accessToken"]
    device = Authenticator(ORIGIN)
    passkeys = Passkeys(auth.client)
    registered(passkeys, device, token)
    upgraded = proved(passkeys, device, token)
    assert (
        claims(upgraded)["aal"] == 2 and claims(upgraded)["sid"] == claims(token)["sid"]
    )
    assert "mfa_state" not in claims(upgraded)
    sessions = auth.client.get("/api/auth/sessions", headers=bearer(upgraded))
    assert sessions.status_code == 200


@pytest.mark.parametrize("transports", [5, "usb", [1, None, "internal"], {"a": 1}])
def test_odd_transports_are_ignored_not_a_500(
    passkeys: Passkeys, token: str, device: Authenticator, transports: Any
) -> None:
    options = passkeys.register_options(token).get_json()
    credential = device.create(options)
    credential["response"]["transports"] = transports
    response = passkeys.client.post(
        f"{P}/register", json={"credential": credential}, headers=bearer(token)
    )
    assert response.status_code == 201, response.get_data(as_text=True)


def test_an_answer_with_another_user_handle_is_refused(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    answer = device.get(browser.login_options())
    answer["response"]["userHandle"] = b64url(b"someone else")
    with recorded(signals.mfa_failed) as seen:
        response = browser.client.post(f"{P}/login", json={"credential": answer})
    assert_code(response, 401, "PASSKEY_INVALID")
    assert seen[0]["reason"] == "user-handle"


def test_a_tampered_signature_is_refused(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator, engine: Engine
) -> None:
    registered(passkeys, device, token)
    browser = Passkeys(app.test_client())
    answer = device.get(browser.login_options())
    data = bytearray(unb64url(answer["response"]["authenticatorData"]))
    data[-1] ^= 0x40  # another counter than the one signed
    answer["response"]["authenticatorData"] = b64url(bytes(data))
    response = browser.client.post(f"{P}/login", json={"credential": answer})
    assert_code(response, 401, "PASSKEY_INVALID")
    with engine.connect() as conn:
        assert conn.execute(select(_passkeys.c.sign_count)).scalar() == 0


def test_refusals_stay_json_behind_the_hosts_html_error_pages(make_app: Any) -> None:
    app = make_app(**CONFIG)

    @app.errorhandler(400)
    @app.errorhandler(401)
    @app.errorhandler(404)
    def html(error: Exception) -> tuple[str, int]:
        return "<h1>oops</h1>", 418

    auth = Auth(app.test_client())
    token = auth.register(EMAIL).get_json()["accessToken"]
    device = Authenticator(ORIGIN)
    registered(Passkeys(auth.client), device, token)
    browser = Passkeys(app.test_client())
    answer = device.get(browser.login_options(), origin="https://evil.test")
    assert_code(
        browser.client.post(f"{P}/login", json={"credential": answer}),
        401,
        "PASSKEY_INVALID",
    )
    assert_code(
        browser.client.post(f"{P}/login", json={"credential": answer}),
        400,
        "PASSKEY_CHALLENGE_INVALID",
    )
    assert_code(
        auth.client.delete(f"{P}/nope", headers=bearer(token)),
        404,
        "PASSKEY_NOT_FOUND",
    )


def test_required_verification_applies_to_a_passkey_sign_in(make_app: Any) -> None:
    """As at ``/login``: an unverified address signs in only while
    verification is optional (a passkey registered then, the policy
    tightened since)."""
    mail = {"TOKENAUTH_MAIL_BACKEND": "log", "TOKENAUTH_LINK_BASE_URL": ORIGIN}
    optional = make_app(**CONFIG, **mail, TOKENAUTH_EMAIL_VERIFICATION="optional")
    auth = Auth(optional.test_client())
    token = auth.register(EMAIL).get_json()["accessToken"]
    device = Authenticator(ORIGIN)
    registered(Passkeys(auth.client), device, token)

    required = make_app(**CONFIG, **mail, TOKENAUTH_EMAIL_VERIFICATION="required")
    with recorded(signals.login_unverified) as seen:
        response = Passkeys(required.test_client()).login(device)
    assert_code(response, 403, "EMAIL_NOT_VERIFIED")
    assert seen == [{"user_id": int(claims(token)["sub"])}]


def test_a_password_session_cannot_add_a_passkey_once_the_user_has_one(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    """A session of the password alone (started before the user's first
    passkey, kept fresh by ``/reauthenticate`` with the password) must not
    add its own passkey: that would sign in without the user's."""
    thief = Passkeys(app.test_client())
    stolen = Auth(thief.client).login(EMAIL).get_json()["accessToken"]
    registered(passkeys, device, token)  # the user's, from their own session
    renewed = thief.client.post(
        "/api/auth/reauthenticate", json={"password": PASSWORD}, headers=bearer(stolen)
    )
    assert renewed.status_code == 200, renewed.get_data(as_text=True)
    fresh = renewed.get_json()["accessToken"]
    assert_code(thief.register_options(fresh), 401, "MFA_REQUIRED")
    assert passkeys.list(token) and len(passkeys.list(token)) == 1


def test_a_password_session_cannot_remove_the_users_passkey(
    app: Flask, passkeys: Passkeys, token: str, device: Authenticator
) -> None:
    """A session of the password alone (started before the user's first
    passkey, fresh by the password) must not strip the passkey that now
    guards every password login."""
    thief = Passkeys(app.test_client())
    stolen = Auth(thief.client).login(EMAIL).get_json()["accessToken"]
    passkey = registered(passkeys, device, token)
    renewed = thief.client.post(
        "/api/auth/reauthenticate", json={"password": PASSWORD}, headers=bearer(stolen)
    )
    fresh = renewed.get_json()["accessToken"]
    response = thief.client.delete(f"{P}/{passkey['id']}", headers=bearer(fresh))
    assert_code(response, 401, "MFA_REQUIRED")
    assert len(passkeys.list(token)) == 1
