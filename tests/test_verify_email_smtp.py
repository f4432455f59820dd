"""Address verification end to end through a real SMTP server process
(``tests/smtp.py``): the mail as delivered, the link read from it, a
mail server that refuses or never answers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import signals
from flask_tokenauth.testing import wait_for_mail

from .conftest import Auth, bearer
from .smtp import html_of, link_in, text_of, token_in
from .test_userstore import assert_code
from .test_verify_email import RESEND, VERIFY, recorder
from .verify_email_app import claims, verify_config

ADA = "ada@example.com"


def smtp_app(
    make_app: Any, mail_config: dict[str, Any], mode: str, **config: Any
) -> Flask:
    return make_app(  # type: ignore[no-any-return]
        **verify_config(
            mode, TOKENAUTH_MAIL_BACKEND="smtp", **{**mail_config, **config}
        )
    )


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_from_registration_to_a_verified_login_through_the_mailbox(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any, mode: str
) -> None:
    app = smtp_app(make_app, mail_config, mode)
    auth = Auth(app.test_client())
    assert auth.register(ADA).status_code == 201

    (message,) = smtp_server.wait_for(ADA)
    assert message["Subject"] == "Verify your email address"
    assert message["From"] == "Example App <no-reply@app.test>"
    link = link_in(message)
    assert link.startswith("http://app.test/verify-email#token=")
    assert "for 24 hours" in text_of(message)
    assert f'href="{link}"' in html_of(message)
    if mode == "required":
        assert_code(auth.login(ADA), 403, "EMAIL_NOT_VERIFIED")

    response = app.test_client().post(VERIFY, json={"token": token_in(message)})
    assert response.status_code == 200
    login = auth.login(ADA)
    assert login.status_code == 200
    assert claims(login.get_json()["accessToken"])["email_verified"] is True


def test_resend_by_address_mails_only_the_account_that_needs_it(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    app = smtp_app(make_app, mail_config, "required")
    Auth(app.test_client()).register(ADA)
    Auth(app.test_client()).register("done@example.com")
    done = smtp_server.wait_for("done@example.com")[0]
    app.test_client().post(VERIFY, json={"token": token_in(done)})
    smtp_server.wait_for(ADA)
    smtp_server.clear()

    for email in ("nobody@example.com", "done@example.com", ADA):
        response = app.test_client().post(RESEND, json={"email": email})
        assert response.status_code == 202
    wait_for_mail(app)
    (message,) = smtp_server.wait_for(ADA)
    assert [m["To"] for m in smtp_server.messages()] == [ADA]
    assert (
        app.test_client().post(VERIFY, json={"token": token_in(message)}).status_code
        == 200
    )


@pytest.mark.parametrize("server_mode", ["refuse-rcpt", "hang"])
def test_a_mail_server_that_refuses_or_hangs_costs_the_client_nothing(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any, server_mode: str
) -> None:
    app = smtp_app(make_app, mail_config, "optional", TOKENAUTH_MAIL_TIMEOUT="1s")
    failed: list[Any] = []
    receiver = recorder(failed)
    signals.mail_failed.connect(receiver, app)
    smtp_server.set_mode(server_mode)

    auth = Auth(app.test_client())
    registered = auth.register(ADA)
    assert registered.status_code == 201  # answered before the delivery
    access = registered.get_json()["accessToken"]
    wait_for_mail(app)
    assert [(kw["template"], kw["to"]) for kw in failed] == [("verify_email", ADA)]
    assert smtp_server.messages() == []

    # The server back: the user asks again and the link works.
    smtp_server.set_mode("accept")
    assert app.test_client().post(RESEND, headers=bearer(access)).status_code == 202
    (message,) = smtp_server.wait_for(ADA)
    assert (
        app.test_client().post(VERIFY, json={"token": token_in(message)}).status_code
        == 200
    )
