"""TOTP and recovery codes with the host's own users: the existing-app
example (``SQLAlchemyUserStore`` over its ``User``, integer keys, login by
username, no addresses), on SQLite and PostgreSQL, through its one line of
TOTP glue (the issuer)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from .conftest import bearer
from .test_existing_app import add_user, app, example, host_url, login, make_app
from .test_totp import NOW_STEP, Clock, clock, code

__all__ = ["app", "clock", "example", "host_url", "make_app"]  # fixtures

pytestmark = pytest.mark.filterwarnings(
    "ignore:'get_engine' is deprecated:DeprecationWarning"
)

API = "/api/auth"


def post(client: FlaskClient, path: str, token: str, json: Any = None) -> Any:
    return client.post(API + path, json=json, headers=bearer(token))


@pytest.fixture
def alice(
    app: Flask, example: SimpleNamespace, clock: Clock
) -> tuple[FlaskClient, str]:
    """The host's user ``alice``, logged in (no factor yet)."""
    with app.app_context():
        add_user(example, "alice")
    client = app.test_client()
    response = login(client, "alice")
    assert response.status_code == 200, response.json
    return client, str(response.get_json()["accessToken"])


def test_host_users_enrol_and_sign_in_with_a_code(
    app: Flask, alice: tuple[FlaskClient, str], clock: Clock
) -> None:
    client, token = alice
    enrolled = post(client, "/mfa/totp/enroll", token)
    assert enrolled.status_code == 200
    parsed = pyotp.parse_uri(enrolled.json["otpauthUri"])
    assert parsed.issuer == "Notes" and parsed.name == "alice"
    secret = enrolled.json["secret"]
    confirmed = post(client, "/mfa/totp/confirm", token, {"code": code(secret)})
    assert confirmed.status_code == 200, confirmed.json
    codes = confirmed.json["recoveryCodes"]
    assert len(codes) == 10
    # A new login waits for the code: the app's own API refuses it.
    clock.step += 1
    other = app.test_client()
    pending = login(other, "alice").json["accessToken"]
    refused = other.get("/api/notes", headers=bearer(pending))
    assert refused.status_code == 401 and refused.json["code"] == "MFA_REQUIRED"
    upgraded = post(other, "/mfa/verify", pending, {"code": code(secret, clock.step)})
    assert upgraded.status_code == 200, upgraded.json
    notes = other.get("/api/notes", headers=bearer(upgraded.json["accessToken"]))
    assert notes.status_code == 200 and notes.json["user"] == "alice"
    # A recovery code, once; no mail (the store has no addresses), no error.
    third = app.test_client()
    pending = login(third, "alice").json["accessToken"]
    used = post(third, "/mfa/verify", pending, {"recoveryCode": codes[0]})
    assert used.status_code == 200, used.json
    again = post(third, "/mfa/verify", pending, {"recoveryCode": codes[0]})
    assert again.status_code == 400


def test_support_staff_reset_a_host_user_by_username(
    app: Flask, alice: tuple[FlaskClient, str]
) -> None:
    client, token = alice
    secret = post(client, "/mfa/totp/enroll", token).json["secret"]
    post(client, "/mfa/totp/confirm", token, {"code": code(secret, NOW_STEP)})
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["tokenauth", "mfa", "list", "alice"])
    assert "Recovery codes left: 10" in listed.output, listed.output
    reset = runner.invoke(args=["tokenauth", "mfa", "reset", "alice", "--yes"])
    assert reset.exit_code == 0, reset.output
    # Signed out everywhere; the password alone signs in again.
    assert client.get("/api/notes", headers=bearer(token)).status_code == 401
    fresh = login(app.test_client(), "alice").json["accessToken"]
    assert app.test_client().get("/api/notes", headers=bearer(fresh)).status_code == 200
