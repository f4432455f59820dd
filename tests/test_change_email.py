"""Changing the address (``/change-email``, its confirm and cancel links),
on SQLite and PostgreSQL, with the built-in users; attacks on the links."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any, cast

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, Table, select, update
from werkzeug.test import TestResponse

from flask_tokenauth import _linktokens as links
from flask_tokenauth import signals
from flask_tokenauth._state import get_state
from flask_tokenauth.models import EmailToken, User
from flask_tokenauth.testing import wait_for_mail

from .conftest import PASSWORD, bearer
from .smtp import html_of, link_in, text_of, token_in

_tokens = cast(Table, EmailToken.__table__)
_users = cast(Table, User.__table__)

OLD = "old@example.com"
NEW = "new@example.com"
PREFIX = "/api/auth"


class Mailbox:
    """The mails the flow sent, read from the real SMTP server process."""

    def __init__(self, server: Any, mail_config: dict[str, Any]) -> None:
        self.server = server
        self.mail_config = mail_config

    def config(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {**self.mail_config, **overrides}

    def wait_for(self, to: str, count: int = 1) -> list[EmailMessage]:
        messages: list[EmailMessage] = self.server.wait_for(to, count)
        return messages

    def delivered(self) -> list[EmailMessage]:
        """Every message delivered, once the outbox has handed all over."""
        wait_for_mail()
        messages: list[EmailMessage] = self.server.messages()
        return messages

    text = staticmethod(text_of)

    @staticmethod
    def subject(message: EmailMessage) -> str:
        return str(message["Subject"])

    def link(self, to: str) -> str:
        return link_in(self.wait_for(to)[-1])

    def token(self, to: str) -> str:
        """The token of the newest mail to ``to``."""
        return token_in(self.wait_for(to)[-1])

    def tokens(self, to: str, count: int) -> list[str]:
        return [token_in(message) for message in self.wait_for(to, count)]


@pytest.fixture
def mailbox(smtp_server: Any, mail_config: dict[str, Any]) -> Mailbox:
    return Mailbox(smtp_server, mail_config)


def flow_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TOKENAUTH_CHANGE_EMAIL_ENABLED": True,
        "TOKENAUTH_RATELIMIT_MAIL": "1000/minute",
        "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "1000/minute",
    }
    config.update(overrides)
    return config


@dataclass
class Account:
    client: FlaskClient
    access: str
    id: int

    def signed_in(self) -> bool:
        """Whether its access token is accepted (the user is loaded, too)."""
        response = self.client.get(f"{PREFIX}/sessions", headers=bearer(self.access))
        return response.status_code == 200

    def refreshes(self) -> bool:
        return self.client.post(f"{PREFIX}/refresh").status_code == 200


class Change:
    """Drives the flow for a test: one client per user."""

    def __init__(self, app: Flask, mailbox: Mailbox) -> None:
        self.app = app
        self.mailbox = mailbox

    def user(self, email: str = OLD) -> Account:
        """A registered user: their client (with the refresh cookie), access
        token and id."""
        client = self.app.test_client()
        response = client.post(
            f"{PREFIX}/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.json
        body = response.json
        assert body is not None
        return Account(client, body["accessToken"], body["user"]["id"])

    def ask(
        self, account: Account, new: str = NEW, password: str = PASSWORD
    ) -> TestResponse:
        return account.client.post(
            f"{PREFIX}/change-email",
            json={"newEmail": new, "password": password},
            headers=bearer(account.access),
        )

    def links(self, old: str = OLD, new: str = NEW) -> tuple[str, str]:
        """The confirm token mailed to ``new`` and the cancel token mailed
        to ``old`` by the last request."""
        return self.mailbox.token(new), self.mailbox.token(old)

    def confirm(self, token: Any, client: FlaskClient | None = None) -> TestResponse:
        return (client or self.app.test_client()).post(
            f"{PREFIX}/change-email/confirm", json={"token": token}
        )

    def cancel(self, token: Any, client: FlaskClient | None = None) -> TestResponse:
        return (client or self.app.test_client()).post(
            f"{PREFIX}/change-email/cancel", json={"token": token}
        )

    def login(self, email: str) -> TestResponse:
        return self.app.test_client().post(
            f"{PREFIX}/login", json={"email": email, "password": PASSWORD}
        )


@pytest.fixture
def change_app(make_app: Any, mailbox: Mailbox) -> Flask:
    return make_app(**mailbox.config(flow_config()))  # type: ignore[no-any-return]


@pytest.fixture
def flow(change_app: Flask, mailbox: Mailbox) -> Change:
    return Change(change_app, mailbox)


def address_of(engine: Engine, user_id: int) -> tuple[str, bool]:
    with engine.begin() as conn:
        row = conn.execute(
            select(_users.c.email, _users.c.email_verified_at).where(
                _users.c.id == user_id
            )
        ).one()
    return row.email, row.email_verified_at is not None


def live_tokens(engine: Engine, purpose: str) -> int:
    with engine.begin() as conn:
        return len(
            conn.execute(
                select(_tokens.c.id).where(
                    _tokens.c.purpose == purpose, _tokens.c.used_at.is_(None)
                )
            ).all()
        )


@contextmanager
def received(signal: Any) -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    signal.connect(receiver)
    try:
        yield calls
    finally:
        signal.disconnect(receiver)


# -- the happy paths ------------------------------------------------------------


def test_confirmed_change_moves_the_login_and_keeps_sessions(
    flow: Change, engine: Engine
) -> None:
    user = flow.user()
    with received(signals.email_change_requested) as requested:
        response = flow.ask(user)
        assert response.status_code == 202
        confirm_token, _ = flow.links()
    assert requested == [{"user_id": user.id, "old_email": OLD, "new_email": NEW}]
    # The link: the configured page, the token in the fragment.
    assert flow.mailbox.link(NEW).startswith(
        "http://app.test/change-email/confirm#token="
    )
    assert address_of(engine, user.id) == (OLD, False)  # nothing before the link

    with received(signals.email_changed) as changed:
        response = flow.confirm(confirm_token)
    assert response.status_code == 200, response.json
    assert response.json == {"message": "Email address changed", "email": NEW}
    assert changed == [{"user_id": user.id, "old_email": OLD, "new_email": NEW}]
    assert address_of(engine, user.id) == (NEW, True)  # the link proved it
    assert flow.login(NEW).status_code == 200
    assert flow.login(OLD).status_code == 401
    # The sessions are kept: the user asked, with the password.
    assert user.signed_in()
    assert user.refreshes()


def test_the_old_address_gets_the_notice_at_request_time(flow: Change) -> None:
    user = flow.user()
    flow.ask(user)
    (notice,) = flow.mailbox.wait_for(OLD)
    link = flow.mailbox.link(OLD)
    assert link.startswith("http://app.test/change-email/cancel#token=")
    assert f'href="{link}"' in html_of(notice)
    # Whoever holds the session learns nothing about the new address's
    # owner from the notice, and the notice does not tell the new address.
    assert NEW not in flow.mailbox.text(notice)


# -- the link itself ---------------------------------------------------------


def test_confirm_link_works_once(flow: Change, engine: Engine) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, _ = flow.links()
    assert flow.confirm(confirm_token).status_code == 200
    replay = flow.confirm(confirm_token)
    assert replay.status_code == 400
    assert replay.json == {
        "error": "This link is invalid or has already been used",
        "code": "LINK_INVALID",
    }


@pytest.mark.parametrize("which", ["confirm", "cancel"])
def test_expired_links_are_refused(flow: Change, engine: Engine, which: str) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    with engine.begin() as conn:
        conn.execute(
            update(_tokens).values(
                expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)
            )
        )
    if which == "confirm":
        response = flow.confirm(confirm_token)
    else:
        response = flow.cancel(cancel_token)
    assert response.status_code == 400
    assert response.json["code"] == "LINK_EXPIRED"  # type: ignore[index]
    assert address_of(engine, user.id) == (OLD, False)
    # A cancel that expired ends no session.
    assert user.signed_in()


def _tampered(token: str) -> list[Any]:
    token_id, _, secret = token.partition(".")
    flip = "A" if secret[0] != "A" else "B"
    return [
        ("1" if token[0] == "0" else "0") + token[1:],  # another id
        f"{token_id}.{flip}{secret[1:]}",  # another secret
        token_id,
        f"{token_id}.",
        token + "x",
        "",
        "not a token",
        "0" * 32 + "." + secret,
        token * 4,
    ]


@pytest.mark.parametrize("which", ["confirm", "cancel"])
def test_wrong_and_tampered_tokens_are_refused(
    flow: Change, engine: Engine, which: str
) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    send = flow.confirm if which == "confirm" else flow.cancel
    token = confirm_token if which == "confirm" else cancel_token
    for bad in _tampered(token):
        response = send(bad)
        assert response.status_code == 400, bad
        assert response.json["code"] == "LINK_INVALID", bad  # type: ignore[index]
    for not_a_string in (None, 12, ["x"], {"a": 1}):
        response = send(not_a_string)
        assert response.status_code == 400
        assert response.json["code"] == "VALIDATION_ERROR"  # type: ignore[index]
    # Nothing changed, and the genuine links still work.
    assert address_of(engine, user.id) == (OLD, False)
    assert user.signed_in()
    assert live_tokens(engine, links.CHANGE) == 1
    assert live_tokens(engine, links.CANCEL) == 1
    assert send(token).status_code == 200


def test_a_token_of_another_purpose_is_refused(
    flow: Change, engine: Engine, change_app: Flask
) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    state = get_state(change_app)
    with engine.begin() as conn:
        others = {
            purpose: links.issue(
                state.settings, conn, purpose, str(user.id), NEW, timedelta(hours=1)
            ).token
            for purpose in (links.VERIFY, links.RESET, links.LOGIN)
        }
    for token in (cancel_token, *others.values()):
        assert flow.confirm(token).json["code"] == "LINK_INVALID"  # type: ignore[index]
    for token in (confirm_token, *others.values()):
        assert flow.cancel(token).json["code"] == "LINK_INVALID"  # type: ignore[index]
    assert address_of(engine, user.id) == (OLD, False)
    assert user.signed_in()


def test_a_link_acts_on_its_own_user_only(flow: Change, engine: Engine) -> None:
    """Another user, signed in, sending the first user's confirm link
    changes the first user's address, never their own."""
    user = flow.user()
    other = flow.user("other@example.com")
    flow.ask(user)
    confirm_token, _ = flow.links()
    response = other.client.post(
        f"{PREFIX}/change-email/confirm",
        json={"token": confirm_token},
        headers=bearer(other.access),
    )
    assert response.status_code == 200
    assert address_of(engine, user.id) == (NEW, True)
    assert address_of(engine, other.id) == ("other@example.com", False)


# -- what kills a pending confirm link -------------------------------------------


def test_a_newer_request_supersedes_the_confirm_link_not_the_cancel_link(
    flow: Change, engine: Engine
) -> None:
    """A request made with a stolen session and the password cannot kill
    the cancel link already in the owner's mailbox."""
    user = flow.user()
    flow.ask(user)
    first_confirm, first_cancel = flow.links()
    flow.ask(user, new="third@example.com")
    flow.mailbox.wait_for(OLD, count=2)
    assert flow.confirm(first_confirm).json["code"] == "LINK_INVALID"  # type: ignore[index]
    response = flow.cancel(first_cancel)
    assert response.status_code == 200
    # ... and the cancel killed the newer confirm link too.
    newer = flow.mailbox.token("third@example.com")
    assert flow.confirm(newer).json["code"] == "LINK_INVALID"  # type: ignore[index]
    assert address_of(engine, user.id) == (OLD, False)


def test_a_password_change_kills_the_confirm_link(flow: Change, engine: Engine) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, _ = flow.links()
    changed = user.client.post(
        f"{PREFIX}/password",
        json={"currentPassword": PASSWORD, "newPassword": "another long password"},
        headers=bearer(user.access),
    )
    assert changed.status_code == 200
    assert flow.confirm(confirm_token).json["code"] == "LINK_INVALID"  # type: ignore[index]
    assert address_of(engine, user.id) == (OLD, False)


def test_an_address_changed_since_kills_the_confirm_link(
    flow: Change, engine: Engine
) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, _ = flow.links()
    with engine.begin() as conn:  # an admin changed it meanwhile
        conn.execute(
            update(_users)
            .where(_users.c.id == user.id)
            .values(email="admin-set@example.com")
        )
    assert flow.confirm(confirm_token).json["code"] == "LINK_INVALID"  # type: ignore[index]
    assert address_of(engine, user.id) == ("admin-set@example.com", False)


def test_confirming_kills_the_links_mailed_to_the_old_address(
    flow: Change, engine: Engine, change_app: Flask
) -> None:
    user = flow.user()
    settings = get_state(change_app).settings
    with engine.begin() as conn:
        for purpose in (links.VERIFY, links.RESET, links.LOGIN):
            links.issue(settings, conn, purpose, str(user.id), OLD, timedelta(hours=1))
    flow.ask(user)
    confirm_token, _ = flow.links()
    assert flow.confirm(confirm_token).status_code == 200
    for purpose in (links.VERIFY, links.RESET, links.LOGIN):
        assert live_tokens(engine, purpose) == 0, purpose
    assert live_tokens(engine, links.CANCEL) == 1  # the owner's recourse stays


# -- the new address belongs to another account -----------------------------------


def _comparable(response: TestResponse) -> tuple[int, Any, list[tuple[str, str]]]:
    # The device cookie is signed with a timestamp: its name and attributes
    # are compared, not its value.
    headers = sorted(
        (name, value.split("=", 1)[0] if name == "Set-Cookie" else value)
        for name, value in response.headers.items()
        if name != "Date"
    )
    return response.status_code, response.get_data(), headers


def test_a_taken_address_gets_the_same_answer_and_its_owner_a_mail(
    flow: Change, engine: Engine
) -> None:
    user = flow.user()
    flow.user("taken@example.com")
    with received(signals.email_change_taken) as taken:
        to_taken = flow.ask(user, new="taken@example.com")
        flow.mailbox.wait_for("taken@example.com")
    to_free = flow.ask(user, new="free@example.com")
    assert _comparable(to_taken) == _comparable(to_free)
    assert to_taken.status_code == 202
    assert taken == [
        {"user_id": user.id, "old_email": OLD, "new_email": "taken@example.com"}
    ]
    # The owner of the taken address is told, with no link to follow; the
    # requester's old address gets the same notice as for a free address.
    (owner_mail,) = flow.mailbox.wait_for("taken@example.com")
    assert "token=" not in flow.mailbox.text(owner_mail)
    assert "/change-email" not in str(owner_mail)
    first, second = flow.mailbox.wait_for(OLD, count=2)
    assert flow.mailbox.subject(first) == flow.mailbox.subject(second)
    # One confirm link: the free address's.
    assert live_tokens(engine, links.CHANGE) == 1
    assert flow.confirm(flow.mailbox.token("free@example.com")).status_code == 200


def test_an_address_taken_before_the_confirmation_is_refused(
    flow: Change, engine: Engine
) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, _ = flow.links()
    flow.user(NEW)  # someone registers the address meanwhile
    response = flow.confirm(confirm_token)
    assert response.status_code == 409
    assert response.json == {"error": "Email already in use", "code": "EMAIL_TAKEN"}
    assert address_of(engine, user.id) == (OLD, False)
    assert live_tokens(engine, links.CHANGE) == 1  # rolled back: not spent


@pytest.mark.postgresql
def test_two_users_confirming_the_same_address_at_once(
    flow: Change, engine: Engine
) -> None:
    """Both pass the "is it free" lookup; the unique index decides: one
    wins, the other is ``409 EMAIL_TAKEN`` with nothing changed, no 500."""
    first = flow.user("first@example.com")
    second = flow.user("second@example.com")
    flow.ask(first)
    flow.mailbox.wait_for(NEW)
    flow.ask(second)
    tokens = flow.mailbox.tokens(NEW, count=2)
    barrier = threading.Barrier(2)
    responses: list[TestResponse] = []

    def confirm(token: str) -> None:
        client = flow.app.test_client()
        barrier.wait()
        responses.append(flow.confirm(token, client=client))

    threads = [threading.Thread(target=confirm, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.status_code for r in responses) == [200, 409]
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.json["code"] == "EMAIL_TAKEN"  # type: ignore[index]
    addresses = {address_of(engine, first.id)[0], address_of(engine, second.id)[0]}
    assert NEW in addresses
    assert addresses - {NEW} <= {"first@example.com", "second@example.com"}
    assert live_tokens(engine, links.CHANGE) == 1  # the loser's, not spent


def test_the_sessions_learn_that_the_new_address_is_verified(
    make_app: Any, mailbox: Mailbox, engine: Engine
) -> None:
    """With verification on, the kept sessions' next access tokens say
    ``email_verified: true`` (the confirm link proved the new address)."""
    app = make_app(
        **mailbox.config(flow_config(TOKENAUTH_EMAIL_VERIFICATION="optional"))
    )
    flow = Change(app, mailbox)
    user = flow.user()

    def verified_claim() -> Any:
        response = user.client.post(f"{PREFIX}/refresh")
        assert response.status_code == 200
        token = response.json["accessToken"]  # type: ignore[index]
        return jwt.decode(token, options={"verify_signature": False})["email_verified"]

    assert verified_claim() is False
    flow.ask(user)
    assert flow.confirm(flow.mailbox.token(NEW)).status_code == 200
    assert verified_claim() is True
