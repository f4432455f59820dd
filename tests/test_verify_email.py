"""Address verification (``TOKENAUTH_EMAIL_VERIFICATION``): the link mailed
at registration, ``POST /verify-email`` and the attacks on its token, and
``required`` mode at ``/register`` and ``/login`` (the resend endpoint:
``test_verify_email_resend.py``).  Built-in users, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import _linktokens, signals
from flask_tokenauth._state import get_state

from .conftest import Auth, bearer
from .test_userstore import assert_code
from .verify_email_app import (
    BASE_URL,
    Mailbox,
    claims,
    expire_links,
    mailbox,
    session_column,
    verify_config,
)

__all__ = ["mailbox"]  # the fixture, used by name

ADA = "ada@example.com"
VERIFY = "/api/auth/verify-email"
RESEND = "/api/auth/verify-email/resend"


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app(**verify_config())  # type: ignore[no-any-return]


def recorder(into: list[Any]) -> Any:
    """A signal receiver that records its keyword arguments (keep a
    reference: blinker holds receivers weakly)."""

    def receive(sender: Any, **kwargs: Any) -> None:
        into.append(kwargs)

    return receive


def verified_in_store(engine: Engine, email: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                text("SELECT email_verified_at FROM tokenauth_users WHERE email = :e"),
                {"e": email},
            ).scalar_one()
            is not None
        )


# -- off: nothing changes ------------------------------------------------------


def test_off_by_default_no_claim_no_mail_and_no_endpoints(
    make_app: Any, engine: Engine, mailbox: Mailbox
) -> None:
    app = make_app()
    auth = Auth(app.test_client())
    registered = auth.register(ADA)
    assert registered.status_code == 201
    assert set(registered.get_json()["user"]) == {"id", "email"}
    # The tutorial's token: exactly the claims it had before the feature,
    # and how the session was authenticated (issue 18: every token).
    for token in (
        registered.get_json()["accessToken"],
        auth.refresh().get_json()["accessToken"],
    ):
        assert set(claims(token)) == {
            "sub",
            "iat",
            "exp",
            "iss",
            "aud",
            "jti",
            "sid",
            "idf",
            "amr",
            "aal",
            "auth_time",
        }
    assert session_column(engine) == [None]
    assert mailbox.settle() == []
    client = app.test_client()
    assert_code(client.post(VERIFY, json={"token": "x"}), 404, "NOT_FOUND")
    assert_code(client.post(RESEND, json={"email": ADA}), 404, "NOT_FOUND")


# -- optional: the link, the claim ---------------------------------------------


def test_register_mails_a_link_and_verifying_it_sets_the_claim(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    auth = Auth(app.test_client())
    registered = auth.register(ADA)
    assert registered.status_code == 201
    body = registered.get_json()
    assert body["user"] == {
        "id": body["user"]["id"],
        "email": ADA,
        "emailVerified": False,
    }
    assert claims(body["accessToken"])["email_verified"] is False

    (mail,) = mailbox.to(ADA)
    assert mail.template == "verify_email"
    # The token travels in the fragment: never in a Referer or access log.
    assert mail.context["link"].startswith(f"{BASE_URL}/verify-email#token=")
    assert mail.context["valid_for"] == "24 hours"
    # Only a keyed hash of it is stored.
    with engine.connect() as conn:
        stored = " ".join(
            str(v)
            for v in conn.execute(text("SELECT * FROM tokenauth_email_tokens")).one()
        )
    assert mail.token.split(".")[1] not in stored

    verified = app.test_client().post(VERIFY, json={"token": mail.token})
    assert verified.status_code == 200, verified.get_data(as_text=True)
    assert verified.get_json() == {"message": "Email address verified", "email": ADA}
    assert verified_in_store(engine, ADA)
    # The live session learnt it: its next refresh says so, no login needed.
    assert session_column(engine) == [True]
    assert claims(auth.refresh().get_json()["accessToken"])["email_verified"] is True
    login = auth.login(ADA)
    assert login.get_json()["user"]["emailVerified"] is True
    assert claims(login.get_json()["accessToken"])["email_verified"] is True


def test_signals_of_the_flow(app: Flask, mailbox: Mailbox) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(name: str) -> Any:
        def receiver(sender: Any, **kwargs: Any) -> None:
            seen.append((name, kwargs))

        return receiver

    sent, verified = record("sent"), record("verified")
    signals.verification_sent.connect(sent, app)
    signals.email_verified.connect(verified, app)
    try:
        user_id = Auth(app.test_client()).register(ADA).get_json()["user"]["id"]
        app.test_client().post(VERIFY, json={"token": mailbox.token_for(ADA)})
    finally:
        signals.verification_sent.disconnect(sent, app)
        signals.email_verified.disconnect(verified, app)
    assert seen == [
        ("sent", {"user_id": user_id, "email": ADA}),
        ("verified", {"user_id": user_id, "email": ADA}),
    ]


# -- the token: every way it must fail ---------------------------------------


def _tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda token, app: "0" * 32 + "." + token.split(".")[1], id="wrong-id"
        ),
        pytest.param(lambda token, app: _tampered(token), id="tampered"),
        pytest.param(lambda token, app: token.split(".")[0], id="no-secret"),
        pytest.param(lambda token, app: "garbage", id="garbage"),
        pytest.param(lambda token, app: "f" * 500, id="huge"),
        pytest.param(lambda token, app: _other_purpose(app), id="reset-token"),
    ],
)
def test_a_token_that_is_not_a_live_verify_token_is_link_invalid(
    app: Flask, engine: Engine, mailbox: Mailbox, make_token: Any
) -> None:
    Auth(app.test_client()).register(ADA)
    token = make_token(mailbox.token_for(ADA), app)
    assert_code(
        app.test_client().post(VERIFY, json={"token": token}), 400, "LINK_INVALID"
    )
    assert not verified_in_store(engine, ADA)
    # The genuine link still works: a failed attempt spent nothing.
    assert (
        app.test_client()
        .post(VERIFY, json={"token": mailbox.token_for(ADA)})
        .status_code
        == 200
    )


def _other_purpose(app: Flask) -> str:
    """A live password-reset token of the same user and address."""
    with app.app_context():
        state = get_state()
        sub = state.user_store.sub_of(state.user_store.find_by_email(ADA))
        with state.db.begin() as conn:
            issued = _linktokens.issue(
                state.settings,
                conn,
                _linktokens.RESET,
                sub,
                ADA,
                state.settings.reset_password_expires,
            )
    return issued.token


@pytest.mark.parametrize("body", [{}, {"token": 5}, {"token": None}])
def test_a_body_without_a_string_token_is_a_validation_error(
    app: Flask, body: dict[str, Any]
) -> None:
    assert_code(app.test_client().post(VERIFY, json=body), 400, "VALIDATION_ERROR")


def test_not_json_is_refused_and_only_post_is_taken(app: Flask) -> None:
    client = app.test_client()
    assert_code(client.post(VERIFY, data="token=x"), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_code(client.get(VERIFY), 405, "METHOD_NOT_ALLOWED")


def test_replay_after_completion_is_link_invalid(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    Auth(app.test_client()).register(ADA)
    token = mailbox.token_for(ADA)
    assert app.test_client().post(VERIFY, json={"token": token}).status_code == 200
    assert_code(
        app.test_client().post(VERIFY, json={"token": token}), 400, "LINK_INVALID"
    )


def test_an_expired_link_is_link_expired_and_verifies_nothing(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    Auth(app.test_client()).register(ADA)
    expire_links(engine)
    response = app.test_client().post(VERIFY, json={"token": mailbox.token_for(ADA)})
    assert_code(response, 400, "LINK_EXPIRED")
    assert not verified_in_store(engine, ADA)


def test_the_token_of_another_user_verifies_that_user_only(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    ada, bob = Auth(app.test_client()), Auth(app.test_client())
    ada.register(ADA)
    bob.register("bob@example.com")
    # Ada, signed in, posts Bob's link: it proves Bob's address, not hers.
    response = ada.client.post(
        VERIFY, json={"token": mailbox.token_for("bob@example.com")}
    )
    assert response.get_json()["email"] == "bob@example.com"
    assert not verified_in_store(engine, ADA)
    assert claims(ada.refresh().get_json()["accessToken"])["email_verified"] is False
    assert claims(bob.refresh().get_json()["accessToken"])["email_verified"] is True


def test_a_link_dies_when_the_address_changes(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    Auth(app.test_client()).register(ADA)
    with engine.begin() as conn:
        conn.execute(text("UPDATE tokenauth_users SET email = 'new@example.com'"))
    response = app.test_client().post(VERIFY, json={"token": mailbox.token_for(ADA)})
    assert_code(response, 400, "LINK_INVALID")
    assert not verified_in_store(engine, "new@example.com")


def test_a_new_link_supersedes_the_older_one(app: Flask, mailbox: Mailbox) -> None:
    auth = Auth(app.test_client())
    access = auth.register(ADA).get_json()["accessToken"]
    first = mailbox.token_for(ADA)
    assert app.test_client().post(RESEND, headers=bearer(access)).status_code == 202
    second = mailbox.token_for(ADA)
    assert second != first
    assert_code(
        app.test_client().post(VERIFY, json={"token": first}), 400, "LINK_INVALID"
    )
    assert app.test_client().post(VERIFY, json={"token": second}).status_code == 200


@pytest.mark.postgresql
def test_concurrent_spends_of_one_link_exactly_one_wins(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    Auth(app.test_client()).register(ADA)
    token = mailbox.token_for(ADA)
    n = 8
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    verified: list[Any] = []
    receiver = recorder(verified)
    signals.email_verified.connect(receiver, app)

    def worker() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(VERIFY, json={"token": token}).status_code)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200] + [400] * (n - 1)
    assert len(verified) == 1


# -- required ----------------------------------------------------------------


@pytest.fixture
def required(make_app: Any) -> Flask:
    return make_app(**verify_config("required"))  # type: ignore[no-any-return]


def test_required_register_answers_the_user_and_no_session(
    required: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    auth = Auth(required.test_client())
    response = auth.register(ADA)
    assert response.status_code == 201
    body = response.get_json()
    assert "accessToken" not in body
    assert body["user"] == {
        "id": body["user"]["id"],
        "email": ADA,
        "emailVerified": False,
    }
    assert auth.refresh_cookie() is None
    assert "refresh_token=" not in response.headers.get("Set-Cookie", "")
    assert session_column(engine) == []
    assert [mail.to for mail in mailbox.settle()] == [ADA]


def test_required_login_is_refused_only_after_the_right_password(
    required: Flask, mailbox: Mailbox
) -> None:
    auth = Auth(required.test_client())
    user_id = auth.register(ADA).get_json()["user"]["id"]
    refused: list[Any] = []
    receiver = recorder(refused)
    signals.login_unverified.connect(receiver, required)

    assert_code(auth.login(ADA), 403, "EMAIL_NOT_VERIFIED")
    assert refused == [{"user_id": user_id}]
    assert auth.refresh_cookie() is None
    # A wrong password and an unknown address: the answer of any wrong login.
    wrong = auth.login(ADA, "not the password at all")
    unknown = auth.login("nobody@example.com")
    assert_code(wrong, 401, "INVALID_CREDENTIALS")
    assert wrong.get_data() == unknown.get_data()
    assert wrong.headers == unknown.headers

    assert (
        required.test_client()
        .post(VERIFY, json={"token": mailbox.token_for(ADA)})
        .status_code
        == 200
    )
    login = auth.login(ADA)
    assert login.status_code == 200
    assert claims(login.get_json()["accessToken"])["email_verified"] is True
