"""Enumeration-safe registration (``TOKENAUTH_REGISTER_ENUMERATION_SAFE``):
``/register`` answers a taken address exactly as a new one, creates the
new account or mails the owner after the response; off, the tutorial's
``409`` stays."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select

from flask_tokenauth import TokenAuth, auth_bp, signals
from flask_tokenauth._state import get_state
from flask_tokenauth.models import User
from flask_tokenauth.testing import wait_for_mail

from .conftest import PASSWORD, Auth, base_config
from .smtp import token_in
from .test_password_reset import Mailbox, flow_config, mailbox

__all__ = ["flow_config", "mailbox"]

OTHER_PASSWORD = "someone else's passphrase"
TAKEN_SUBJECT = "You already have an account"
VERIFY_SUBJECT = "Verify your email address"


def make(engine: Engine, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(**config))
    TokenAuth(engine=engine).init_app(app)
    app.register_blueprint(auth_bp)
    return app


@pytest.fixture
def safe(flow_config: dict[str, Any]) -> dict[str, Any]:
    return {**flow_config, "TOKENAUTH_REGISTER_ENUMERATION_SAFE": True}


@pytest.fixture
def safe_app(engine: Engine, safe: dict[str, Any]) -> Flask:
    return make(engine, **safe)


def users(app: Flask) -> int:
    with get_state(app).db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(User)).scalar_one())


def test_off_by_default_a_taken_address_is_409(
    engine: Engine, flow_config: dict[str, Any]
) -> None:
    auth = Auth(make(engine, **flow_config).test_client())
    assert auth.register().status_code == 201
    taken = auth.register()
    assert taken.status_code == 409
    assert taken.json["code"] == "EMAIL_TAKEN"


def test_a_taken_address_is_answered_as_a_new_one(
    safe_app: Flask, mailbox: Mailbox
) -> None:
    owner = Auth(safe_app.test_client())
    assert owner.register("owner@example.com").status_code == 202
    mailbox.clear()
    taken = Auth(safe_app.test_client()).register("owner@example.com", OTHER_PASSWORD)
    new = Auth(safe_app.test_client()).register("new@example.com", OTHER_PASSWORD)
    for response in (taken, new):
        assert response.status_code == 202
        assert response.json == {
            "message": "Registration received: check your mailbox, then log in"
        }
        assert "Set-Cookie" not in response.headers
    assert taken.data == new.data
    assert sorted(taken.headers.items()) == sorted(new.headers.items())
    wait_for_mail()
    # After the answers: the new account exists; the owner's is untouched
    # and its owner was told.
    assert users(safe_app) == 2
    assert owner.login("new@example.com", OTHER_PASSWORD).status_code == 200
    assert owner.login("owner@example.com", OTHER_PASSWORD).status_code == 401
    assert owner.login("owner@example.com", PASSWORD).status_code == 200
    told = mailbox.to("owner@example.com")
    assert [m["Subject"] for m in told] == [TAKEN_SUBJECT]
    assert mailbox.to("new@example.com", TAKEN_SUBJECT) == []


def test_signals_say_what_happened(safe_app: Flask, mailbox: Mailbox) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    with (
        signals.user_registered.connected_to(
            lambda sender, **kw: seen.append(("registered", kw)), safe_app
        ),
        signals.registration_taken.connected_to(
            lambda sender, **kw: seen.append(("taken", kw)), safe_app
        ),
    ):
        auth = Auth(safe_app.test_client())
        auth.register("ada@example.com")
        wait_for_mail()
        auth.register("ada@example.com", OTHER_PASSWORD)
        wait_for_mail()
    user_id = seen[0][1]["user_id"]
    assert seen == [
        ("registered", {"user_id": user_id, "email": "ada@example.com"}),
        ("taken", {"user_id": user_id, "email": "ada@example.com"}),
    ]


@pytest.mark.parametrize(
    ("password", "code"),
    [("short", "INVALID_PASSWORD"), ("password123", "PASSWORD_TOO_COMMON")],
)
def test_the_password_policy_still_answers_at_once(
    safe_app: Flask, password: str, code: str
) -> None:
    """It looks at the password and the typed address only: it tells
    nothing about accounts, for a taken address as for a new one."""
    auth = Auth(safe_app.test_client())
    auth.register("ada@example.com")
    wait_for_mail()
    for email in ("ada@example.com", "new@example.com"):
        response = auth.register(email, password)
        assert response.status_code == 400
        assert response.json["code"] == code


def test_the_owner_is_mailed_within_the_address_limit(
    engine: Engine, mailbox: Mailbox, safe: dict[str, Any]
) -> None:
    app = make(engine, **{**safe, "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "2/hour"})
    client = app.test_client()
    Auth(client).register("ada@example.com")
    limited: list[dict[str, Any]] = []
    with signals.mail_limited.connected_to(
        lambda sender, **kw: limited.append(kw), app
    ):
        statuses = {
            Auth(app.test_client())
            .register("ada@example.com", OTHER_PASSWORD)
            .status_code
            for _ in range(3)
        }
    assert statuses == {202}
    # The first registration counted too: one mail to the owner, then none.
    assert len(mailbox.to("ada@example.com", TAKEN_SUBJECT)) == 1
    assert [x["purpose"] for x in limited] == ["register", "register"]


def test_a_registration_counts_against_the_clients_mail_limit(
    engine: Engine, mailbox: Mailbox, safe: dict[str, Any]
) -> None:
    app = make(engine, **{**safe, "TOKENAUTH_RATELIMIT_MAIL": "2/minute"})
    auth = Auth(app.test_client())
    statuses = [auth.register(f"u{n}@example.com").status_code for n in range(3)]
    assert statuses == [202, 202, 429]


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_with_verification_the_new_account_gets_its_link(
    engine: Engine, mailbox: Mailbox, safe: dict[str, Any], mode: str
) -> None:
    app = make(engine, **safe, TOKENAUTH_EMAIL_VERIFICATION=mode)
    owner = Auth(app.test_client())
    assert owner.register("owner@example.com").status_code == 202
    mailbox.clear()
    taken = Auth(app.test_client()).register("owner@example.com", OTHER_PASSWORD)
    new = Auth(app.test_client()).register("new@example.com", OTHER_PASSWORD)
    assert taken.status_code == new.status_code == 202
    assert taken.data == new.data
    assert sorted(taken.headers.items()) == sorted(new.headers.items())
    assert [m["Subject"] for m in mailbox.to("owner@example.com")] == [TAKEN_SUBJECT]
    link = mailbox.to("new@example.com")
    assert [m["Subject"] for m in link] == [VERIFY_SUBJECT]
    login = owner.login("new@example.com", OTHER_PASSWORD)
    assert login.status_code == (403 if mode == "required" else 200)
    verified = app.test_client().post(
        "/api/auth/verify-email", json={"token": token_in(link[0])}
    )
    assert verified.status_code == 200, verified.text
    assert owner.login("new@example.com", OTHER_PASSWORD).status_code == 200
