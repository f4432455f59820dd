"""What ``/change-email`` refuses, and its limits: every refusal is a 4xx
JSON error that mails nothing and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from flask_tokenauth import _linktokens as links
from flask_tokenauth import signals

from . import test_change_email as base
from .conftest import PASSWORD, bearer
from .smtp import recipients
from .test_change_email import (
    NEW,
    OLD,
    PREFIX,
    Change,
    Mailbox,
    address_of,
    flow_config,
    live_tokens,
    received,
)

mailbox = base.mailbox
change_app = base.change_app
flow = base.flow


def assert_nothing_sent(flow: Change, engine: Engine) -> None:
    assert flow.mailbox.delivered() == []
    assert live_tokens(engine, links.CHANGE) == 0
    assert live_tokens(engine, links.CANCEL) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"newEmail": NEW, "password": "wrong password here"}, 403, "WRONG_PASSWORD"),
        ({"newEmail": NEW}, 400, "VALIDATION_ERROR"),
        ({"newEmail": NEW, "password": ""}, 400, "INVALID_PASSWORD"),
        ({"newEmail": NEW, "password": "x\x00y"}, 403, "WRONG_PASSWORD"),
        ({"password": PASSWORD}, 400, "VALIDATION_ERROR"),
        ({"newEmail": 7, "password": PASSWORD}, 400, "VALIDATION_ERROR"),
        ({"newEmail": "not an address", "password": PASSWORD}, 400, "INVALID_EMAIL"),
        # The current address, as typed differently.
        (
            {"newEmail": " Old@Example.COM ", "password": PASSWORD},
            400,
            "VALIDATION_ERROR",
        ),
    ],
)
def test_refused_requests_mail_nothing(
    flow: Change, engine: Engine, body: dict[str, Any], status: int, code: str
) -> None:
    user = flow.user()
    response = user.client.post(
        f"{PREFIX}/change-email", json=body, headers=bearer(user.access)
    )
    assert response.status_code == status, response.json
    assert response.json["code"] == code  # type: ignore[index]
    assert_nothing_sent(flow, engine)
    assert address_of(engine, user.id) == (OLD, False)


def test_a_request_needs_an_access_token(flow: Change, engine: Engine) -> None:
    flow.user()
    response = flow.app.test_client().post(
        f"{PREFIX}/change-email", json={"newEmail": NEW, "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.json["code"] == "TOKEN_MISSING"  # type: ignore[index]
    assert_nothing_sent(flow, engine)


def test_wrong_passwords_spend_the_login_budget(
    make_app: Any, mailbox: Mailbox
) -> None:
    """The same per-account budget as ``/login`` and ``/password``."""
    app = make_app(
        **mailbox.config(flow_config(TOKENAUTH_RATELIMIT_LOGIN_FAILURES="2/minute"))
    )
    flow = Change(app, mailbox)
    user = flow.user()
    codes = [
        flow.ask(user, password="not the password").json["code"]  # type: ignore[index]
        for _ in range(3)
    ]
    assert codes == ["WRONG_PASSWORD", "WRONG_PASSWORD", "RATE_LIMITED"]
    # ... which /login shares: the right password is refused there too.
    login = user.client.post(
        f"{PREFIX}/login", json={"email": OLD, "password": PASSWORD}
    )
    assert login.status_code == 429


@pytest.mark.parametrize("path", ["", "/confirm", "/cancel"])
def test_switched_off_the_endpoints_do_not_exist(
    make_app: Any, mailbox: Mailbox, path: str
) -> None:
    app = make_app(**mailbox.config(flow_config(TOKENAUTH_CHANGE_EMAIL_ENABLED=False)))
    response = app.test_client().post(f"{PREFIX}/change-email{path}", json={})
    assert response.status_code == 404
    assert response.json["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["", "/confirm", "/cancel"])
def test_only_post(flow: Change, path: str) -> None:
    # As /password: the access token is checked first.
    user = flow.user()
    response = user.client.get(
        f"{PREFIX}/change-email{path}", headers=bearer(user.access)
    )
    assert response.status_code == 405
    assert response.json["code"] == "METHOD_NOT_ALLOWED"  # type: ignore[index]


def test_the_per_address_limit_answers_as_usual_and_mails_nothing(
    make_app: Any, mailbox: Mailbox
) -> None:
    app = make_app(
        **mailbox.config(flow_config(TOKENAUTH_RATELIMIT_MAIL_ADDRESS="1/day"))
    )
    flow = Change(app, mailbox)
    user = flow.user()
    first = flow.ask(user)
    flow.mailbox.wait_for(NEW)
    with received(signals.mail_limited) as limited:
        second = flow.ask(user)
        # Another new address, but the old one's limit is spent: a confirm
        # link never goes without the notice that can cancel it.
        third = flow.ask(user, new="third@example.com")
    assert first.status_code == 202
    assert base._comparable(second) == base._comparable(first)
    assert base._comparable(third) == base._comparable(first)
    assert [recipients(m) for m in flow.mailbox.delivered()] == [[NEW], [OLD]]
    assert [(c["email"], c["purpose"]) for c in limited] == [
        (NEW, links.CHANGE),
        (OLD, links.CANCEL),
    ]


def test_the_per_client_limit(make_app: Any, mailbox: Mailbox) -> None:
    app = make_app(**mailbox.config(flow_config(TOKENAUTH_RATELIMIT_MAIL="2/minute")))
    flow = Change(app, mailbox)
    user = flow.user()
    assert flow.ask(user).status_code == 202
    assert flow.confirm("not a token").status_code == 400
    refused = flow.ask(user, new="third@example.com")
    assert refused.status_code == 429
    assert refused.json["code"] == "RATE_LIMITED"  # type: ignore[index]
    assert "Retry-After" in refused.headers


@pytest.mark.parametrize("mode", ["refuse-rcpt", "refuse-data"])
def test_a_refusing_mail_server_is_not_the_clients_business(
    flow: Change, engine: Engine, smtp_server: Any, mode: str
) -> None:
    user = flow.user()
    smtp_server.set_mode(mode)
    with received(signals.mail_failed) as failed:
        response = flow.ask(user)
        assert flow.mailbox.delivered() == []
    assert response.status_code == 202
    assert sorted(call["template"] for call in failed) == [
        "change_email_confirm",
        "change_email_notice",
    ]
    # Nothing half-done: the address is unchanged; the links made before
    # the mail was tried simply expire unused, and a new request works.
    assert address_of(engine, user.id) == (OLD, False)
    smtp_server.set_mode("accept")
    assert flow.ask(user).status_code == 202
    assert flow.confirm(flow.mailbox.token(NEW)).status_code == 200
