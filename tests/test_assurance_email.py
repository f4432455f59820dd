"""A sign-in by email is one factor (``amr`` ``["email"]``, ``aal`` 1), on
every token of its session, refreshes too; a user with a second factor
must complete it after an email sign-in as after a password."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from .assurance_helpers import add_views, claims_of, get, give_totp
from .conftest import Auth, bearer
from .test_email_login import CONFIG, Mailbox, ask, by_code


@pytest.fixture
def mailbox(smtp_server: Any) -> Mailbox:
    return Mailbox(smtp_server)


@pytest.fixture
def app(make_app: Any, mail_config: dict[str, Any]) -> Flask:
    return add_views(make_app(**mail_config, **CONFIG))


@pytest.fixture
def user(client: FlaskClient) -> int:
    """A registered user, and a client with no session of its own."""
    response = Auth(client).register()
    client.delete_cookie("refresh_token", path="/api/auth")
    return int(response.json["user"]["id"])


def sign_in(client: FlaskClient, mailbox: Mailbox) -> Any:
    assert ask(client).status_code == 202
    response = by_code(client, *mailbox.last())
    assert response.status_code == 200, response.json
    return response.json


def test_email_sign_in_amr_survives_refresh(
    client: FlaskClient, user: int, mailbox: Mailbox
) -> None:
    body = sign_in(client, mailbox)
    assert "mfaRequired" not in body
    first = claims_of(body["accessToken"])
    assert first["amr"] == ["email"] and first["aal"] == 1
    refreshed = claims_of(Auth(client).refresh().json["accessToken"])
    assert refreshed["amr"] == ["email"] and refreshed["aal"] == 1
    assert refreshed["auth_time"] == first["auth_time"]


def test_email_sign_in_of_a_user_with_a_factor_waits_for_it(
    client: FlaskClient, user: int, mailbox: Mailbox, engine: Engine
) -> None:
    give_totp(engine, str(user))
    body = sign_in(client, mailbox)
    assert body["mfaRequired"] is True
    token = body["accessToken"]
    assert claims_of(token)["mfa_state"] == "pending"
    assert get(client, "/api/me", token).json["code"] == "MFA_REQUIRED"
    upgraded = client.post("/api/factor-done", headers=bearer(token)).json
    claims = claims_of(upgraded["accessToken"])
    assert claims["amr"] == ["email", "otp", "mfa"] and claims["aal"] == 2
