"""Address verification with the host's own users
(:class:`SQLAlchemyUserStore` with ``email=``), for each place the store
records verification (our table, a boolean column, a datetime column), on
SQLite and PostgreSQL: ``required`` login, resend by address, the link,
the claim, the CLI."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine

from flask_tokenauth import is_email_verified, login_required

from .conftest import PASSWORD, bearer
from .test_host_email import RECORDS, Member, add, make_app, member_store, tables
from .test_userstore import assert_code
from .test_verify_email import RESEND, VERIFY
from .verify_email_app import Mailbox, claims, mailbox, session_column, verify_config

__all__ = ["mailbox", "tables"]  # fixtures, used by name

ANN = "ann@example.com"


def login(app: Flask, username: str = "ann") -> Any:
    client = app.test_client()
    return client, client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )


def host_app(engine: Engine, record: str, mode: str) -> Flask:
    app = make_app(engine, member_store(record), **verify_config(mode))

    @app.get("/verified")
    @login_required(verified=True)
    def verified() -> dict[str, Any]:
        return {"verified": is_email_verified()}

    return app


@pytest.mark.parametrize("record", [r for r in RECORDS if r != "naive datetime"])
def test_required_host_user_from_refused_login_to_verified_session(
    engine: Engine, tables: None, mailbox: Mailbox, record: str
) -> None:
    # Stored in another case: the store normalizes it, the mail goes out.
    add(engine, Member, username="ann", email="Ann@Example.com")
    app = host_app(engine, record, "required")

    _, refused = login(app)
    assert_code(refused, 403, "EMAIL_NOT_VERIFIED")
    _, wrong = login(app, "nobody")
    assert_code(wrong, 401, "INVALID_CREDENTIALS")

    answer = app.test_client().post(RESEND, json={"email": "ANN@example.com"})
    assert answer.status_code == 202
    (mail,) = mailbox.to(ANN)
    assert app.test_client().post(VERIFY, json={"token": mail.token}).status_code == 200

    client, response = login(app)
    assert response.status_code == 200
    assert response.get_json()["user"]["emailVerified"] is True
    access = response.get_json()["accessToken"]
    assert claims(access)["email_verified"] is True
    assert client.get("/verified", headers=bearer(access)).get_json() == {
        "verified": True
    }


@pytest.mark.parametrize("record", ["table", "bool"])
def test_optional_host_session_learns_it_at_its_next_refresh(
    engine: Engine, tables: None, mailbox: Mailbox, record: str
) -> None:
    add(engine, Member, username="ann", email=ANN)
    app = host_app(engine, record, "optional")
    client, response = login(app)
    access = response.get_json()["accessToken"]
    assert claims(access)["email_verified"] is False
    assert_code(
        client.get("/verified", headers=bearer(access)), 403, "EMAIL_NOT_VERIFIED"
    )
    assert client.post(RESEND, headers=bearer(access)).status_code == 202
    assert (
        app.test_client()
        .post(VERIFY, json={"token": mailbox.token_for(ANN)})
        .status_code
        == 200
    )
    assert session_column(engine) == [True]
    fresh = client.post("/api/auth/refresh").get_json()["accessToken"]
    assert claims(fresh)["email_verified"] is True


def test_a_host_users_link_dies_when_its_address_changes(
    engine: Engine, tables: None, mailbox: Mailbox
) -> None:
    user = add(engine, Member, username="ann", email=ANN)
    app = host_app(engine, "bool", "required")
    app.test_client().post(RESEND, json={"email": ANN})
    token = mailbox.token_for(ANN)
    with app.app_context():
        from flask_tokenauth._state import get_state

        state = get_state()
        with state.db.begin() as conn:
            state.user_store.set_email(user, "ann.new@example.com", conn)
        # set_email records the new address as verified (the flow proved it):
        # undo that, to see the old link verify nothing.
        with state.db.begin() as conn:
            conn.exec_driver_sql("UPDATE members SET confirmed = false")
    assert_code(
        app.test_client().post(VERIFY, json={"token": token}), 400, "LINK_INVALID"
    )
    _, response = login(app)
    assert_code(response, 403, "EMAIL_NOT_VERIFIED")


def test_cli_verify_a_host_user(engine: Engine, tables: None) -> None:
    add(engine, Member, username="ann", email=ANN)
    app = host_app(engine, "datetime", "required")
    result = app.test_cli_runner().invoke(args=["tokenauth", "users", "verify", ANN])
    assert result.exit_code == 0, result.output
    _, response = login(app)
    assert response.status_code == 200
