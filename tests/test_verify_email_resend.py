"""``POST /verify-email/resend``: with an access token (the caller's own
address), and by address without one, where the answer is the same whatever
the address (unknown, waiting, verified, deleted, over its limit) and the
lookup happens after the response.  Built-in users, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import signals

from .conftest import Auth, bearer
from .test_userstore import assert_code
from .test_verify_email import ADA, RESEND, VERIFY, app, recorder
from .verify_email_app import Mailbox, mailbox, verify_config

__all__ = ["app", "mailbox"]  # fixtures, used by name


def test_resend_with_a_token_mails_the_callers_own_address(
    app: Flask, mailbox: Mailbox
) -> None:
    access = Auth(app.test_client()).register(ADA).get_json()["accessToken"]
    Auth(app.test_client()).register("bob@example.com")
    # The body's address is ignored: a session mails its own address only.
    response = app.test_client().post(
        RESEND, headers=bearer(access), json={"email": "bob@example.com"}
    )
    assert response.status_code == 202
    assert [mail.to for mail in mailbox.settle()] == [ADA, "bob@example.com", ADA]

    app.test_client().post(VERIFY, json={"token": mailbox.token_for(ADA)})
    again = app.test_client().post(RESEND, headers=bearer(access))
    assert again.status_code == 202
    assert again.get_data() == response.get_data()
    assert len(mailbox.to(ADA)) == 2  # verified: no mail


def test_resend_with_a_bad_token_is_a_401(app: Flask) -> None:
    response = app.test_client().post(RESEND, headers=bearer("not.a.token"))
    assert_code(response, 401, "TOKEN_INVALID")


def _resend(app: Flask, email: str) -> Any:
    return app.test_client().post(RESEND, json={"email": email})


def test_resend_by_address_answers_the_same_for_any_address(
    make_app: Any, engine: Engine, mailbox: Mailbox
) -> None:
    app = make_app(
        **verify_config("required", TOKENAUTH_RATELIMIT_MAIL_ADDRESS="1/day")
    )
    for email in (ADA, "verified@example.com", "limited@example.com"):
        Auth(app.test_client()).register(email)
    app.test_client().post(
        VERIFY, json={"token": mailbox.token_for("verified@example.com")}
    )
    _resend(app, "limited@example.com")  # spends its limit
    limited: list[Any] = []
    receiver = recorder(limited)
    signals.mail_limited.connect(receiver, app)
    before = len(mailbox.settle())

    answers = {
        email: _resend(app, email)
        for email in (
            ADA,  # unverified: a mail
            "nobody@example.com",  # unknown
            "verified@example.com",  # verified already
            "limited@example.com",  # over its limit
        )
    }
    first = answers[ADA]
    assert first.status_code == 202
    for email, response in answers.items():
        assert (response.status_code, response.get_data()) == (202, first.get_data()), (
            email
        )
        assert response.headers == first.headers, email
    assert [mail.to for mail in mailbox.settle()[before:]] == [ADA]
    assert [kw["email"] for kw in limited] == ["limited@example.com"]


def test_resend_by_address_is_malformed_the_same_way_for_any_address(
    app: Flask,
) -> None:
    assert_code(_resend(app, "not an address"), 400, "INVALID_EMAIL")
    assert_code(app.test_client().post(RESEND, json={}), 400, "VALIDATION_ERROR")


def test_resend_counts_against_the_per_client_mail_limit(
    make_app: Any, mailbox: Mailbox
) -> None:
    app = make_app(**verify_config(TOKENAUTH_RATELIMIT_MAIL="2/minute"))
    assert _resend(app, "a@example.com").status_code == 202
    assert _resend(app, "b@example.com").status_code == 202
    assert_code(_resend(app, "c@example.com"), 429, "RATE_LIMITED")


def test_a_disabled_account_gets_no_link(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    # The built-in users have no disabled state; a deleted user gets none.
    Auth(app.test_client()).register(ADA)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tokenauth_users"))
    assert _resend(app, ADA).status_code == 202
    assert len(mailbox.to(ADA)) == 1  # the registration's only
    assert_code(
        app.test_client().post(VERIFY, json={"token": mailbox.token_for(ADA)}),
        400,
        "LINK_INVALID",
    )
