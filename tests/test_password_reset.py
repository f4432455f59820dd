"""Password reset (``/forgot-password``, ``/reset-password``) and the
``users reset-link`` CLI, with the built-in users on SQLite and PostgreSQL:
the round trip, and each way a link must fail (spent, expired, tampered,
another purpose's, another user's, outlived by a password change, a
disabled user), sessions and access tokens ended by a reset, enumeration
through ``/forgot-password``, and two requests racing with one link."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, text, update
from werkzeug.test import TestResponse

from flask_tokenauth import TokenAuth, auth_bp, signals
from flask_tokenauth import _linktokens as linktokens
from flask_tokenauth._builtin_store import BuiltinUserStore
from flask_tokenauth._state import get_state
from flask_tokenauth.models import User
from flask_tokenauth.testing import wait_for_mail

from .conftest import PASSWORD, Auth, base_config, bearer
from .smtp import html_of, link_in, recipients, text_of, token_in

NEW_PASSWORD = "a brand new passphrase"
PREFIX = "/api/auth"
RESET_SUBJECT = "Reset your password"
NOTICE_SUBJECT = "Your password was changed"
#: Limits high enough for a test (the limits are tested on their own below).
LIMITS = {
    "TOKENAUTH_RATELIMIT_MAIL": "1000/minute",
    "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "1000/minute",
}


class Mailbox:
    """The real SMTP server's deliveries (see :mod:`tests.smtp`), read once
    this process's outbox is idle."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def to(self, address: str, subject: str | None = None) -> list[EmailMessage]:
        wait_for_mail()
        return [
            m for m in self.server.messages(address) if subject in (None, m["Subject"])
        ]

    def recipients(self) -> list[str]:
        wait_for_mail()
        return sorted(r for m in self.server.messages() for r in recipients(m))

    def clear(self) -> None:
        wait_for_mail()
        self.server.clear()

    def token(self, address: str) -> str:
        """The token of the newest reset link mailed to ``address``."""
        mails = self.to(address, RESET_SUBJECT)
        assert mails, f"no reset mail to {address}"
        return token_in(mails[-1])


@pytest.fixture
def mailbox(smtp_server: Any) -> Mailbox:
    return Mailbox(smtp_server)


@pytest.fixture
def flow_config(mail_config: dict[str, Any]) -> dict[str, Any]:
    """Mail through the real SMTP server, links to ``http://app.test``."""
    return {**mail_config, **LIMITS}


class DisablingStore(BuiltinUserStore):
    """Built-in users, some of them disabled (the built-in table has no
    such state; a host's ``is_active`` does)."""

    def __init__(self) -> None:
        super().__init__()
        self.disabled: set[str] = set()

    def is_active(self, user: Any) -> bool:
        return str(user.email) not in self.disabled


@pytest.fixture
def store() -> DisablingStore:
    return DisablingStore()


def flow_app(engine: Engine, store: Any = None, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(**config))
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)
    return app


@pytest.fixture
def app(engine: Engine, store: DisablingStore, flow_config: dict[str, Any]) -> Flask:
    return flow_app(engine, store, **flow_config)


def forgot(client: FlaskClient, email: str) -> TestResponse:
    return client.post(f"{PREFIX}/forgot-password", json={"email": email})


def reset(
    client: FlaskClient, token: Any, password: str = NEW_PASSWORD
) -> TestResponse:
    return client.post(
        f"{PREFIX}/reset-password", json={"token": token, "password": password}
    )


def mailed_token(client: FlaskClient, mailbox: Mailbox, email: str) -> str:
    response = forgot(client, email)
    assert response.status_code == 202, response.text
    return mailbox.token(email)


def test_a_mailed_link_sets_the_password(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, app: Flask
) -> None:
    user_id = auth.register("ada@example.com").json["user"]["id"]
    events: list[tuple[str, dict[str, Any]]] = []

    def record(name: str) -> Any:
        def receiver(sender: Any, **kwargs: Any) -> None:
            events.append((name, kwargs))

        return receiver

    receivers = {
        "requested": record("requested"),
        "reset": record("reset"),
    }
    with (
        signals.password_reset_requested.connected_to(receivers["requested"], app),
        signals.password_reset.connected_to(receivers["reset"], app),
    ):
        token = mailed_token(client, mailbox, "ada@example.com")
        mail = mailbox.to("ada@example.com", RESET_SUBJECT)[-1]
        assert link_in(mail).startswith("http://app.test/reset-password#token=")
        assert f'href="http://app.test/reset-password#token={token}"' in html_of(mail)
        response = reset(client, token)
        assert response.status_code == 200, response.text
        assert response.json == {
            "message": "Password reset: log in with the new password"
        }
    assert events == [
        ("requested", {"user_id": user_id, "email": "ada@example.com"}),
        ("reset", {"user_id": user_id}),
    ]
    assert auth.login("ada@example.com", PASSWORD).status_code == 401
    assert auth.login("ada@example.com", NEW_PASSWORD).status_code == 200
    notice = mailbox.to("ada@example.com", NOTICE_SUBJECT)
    assert len(notice) == 1
    assert "was reset on" in text_of(notice[0])
    assert token not in text_of(notice[0])


def test_the_token_is_never_in_a_log_or_a_signal(
    client: FlaskClient,
    auth: Auth,
    mailbox: Mailbox,
    app: Flask,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth.register("ada@example.com")
    seen: list[Any] = []

    def anything(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    with (
        signals.password_reset_requested.connected_to(anything, app),
        signals.password_reset.connected_to(anything, app),
        signals.mail_sent.connected_to(anything, app),
    ):
        token = mailed_token(client, mailbox, "ada@example.com")
        caplog.clear()  # the skeleton's log sender prints bodies (mail helper)
        reset(client, token)
        wait_for_mail()
    secret = token.split(".")[1]
    assert secret not in caplog.text
    assert secret not in repr(seen)


def test_completing_a_reset_verifies_the_address(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, engine: Engine
) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    with engine.connect() as conn:
        query = text("SELECT email_verified_at FROM tokenauth_users")
        assert conn.execute(query).scalar_one() is None
        assert reset(client, token).status_code == 200
        assert conn.execute(query).scalar_one() is not None


def test_a_link_works_once(client: FlaskClient, auth: Auth, mailbox: Mailbox) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    assert reset(client, token).status_code == 200
    again = reset(client, token, "yet another passphrase")
    assert again.status_code == 400
    assert again.json["code"] == "LINK_INVALID"
    assert auth.login("ada@example.com", NEW_PASSWORD).status_code == 200


def test_a_reset_ends_every_other_reset_link(
    client: FlaskClient, auth: Auth, mailbox: Mailbox
) -> None:
    auth.register("ada@example.com")
    first = mailed_token(client, mailbox, "ada@example.com")
    second = mailed_token(client, mailbox, "ada@example.com")
    assert first != second
    assert reset(client, second).status_code == 200
    assert reset(client, first, "yet another passphrase").json["code"] == (
        "LINK_INVALID"
    )


def test_an_expired_link_is_refused(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, engine: Engine
) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(update(linktokens._tokens).values(expires_at=past))
    response = reset(client, token)
    assert response.status_code == 400
    assert response.json["code"] == "LINK_EXPIRED"
    assert auth.login("ada@example.com", PASSWORD).status_code == 200


def test_the_lifetime_is_the_setting(
    engine: Engine,
    store: DisablingStore,
    mailbox: Mailbox,
    flow_config: dict[str, Any],
) -> None:
    app = flow_app(engine, store, **flow_config, TOKENAUTH_RESET_PASSWORD_EXPIRES="5m")
    client = app.test_client()
    Auth(client).register("ada@example.com")
    before = datetime.now(timezone.utc)
    mailed_token(client, mailbox, "ada@example.com")
    with engine.connect() as conn:
        expires = conn.execute(select(linktokens._tokens.c.expires_at)).scalar_one()
    expires = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
    assert timedelta(minutes=5) <= expires - before < timedelta(minutes=5, seconds=30)
    assert "for 5 minutes" in text_of(mailbox.to("ada@example.com")[-1])


def tampered(token: str) -> list[Any]:
    token_id, secret = token.split(".")
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    return [
        f"{token_id}.{flipped}",  # wrong secret
        f"{'0' * 32}.{secret}",  # unknown id
        f"{token_id}.",  # no secret
        token_id,
        token + "x",
        token[:-1],
        "",
        "not a token",
        "." * 200,
        f"{token_id.upper()}.{secret}x",
    ]


def test_wrong_and_tampered_tokens_are_refused(
    client: FlaskClient, auth: Auth, mailbox: Mailbox
) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    for bad in tampered(token):
        response = reset(client, bad)
        assert response.status_code == 400, bad
        assert response.json["code"] == "LINK_INVALID", bad
    # None of them spent it.
    assert reset(client, token).status_code == 200


@pytest.mark.parametrize("token", [None, 12, ["x"], {"t": 1}])
def test_a_token_that_is_no_string_is_a_validation_error(
    client: FlaskClient, token: Any
) -> None:
    response = client.post(
        f"{PREFIX}/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "purpose", [linktokens.VERIFY, linktokens.CHANGE, linktokens.LOGIN]
)
def test_a_token_of_another_purpose_is_refused(
    client: FlaskClient, auth: Auth, app: Flask, purpose: str
) -> None:
    sub = str(auth.register("ada@example.com").json["user"]["id"])
    state = get_state(app)
    with state.db.begin() as conn:
        issued = linktokens.issue(
            state.settings, conn, purpose, sub, "ada@example.com", timedelta(hours=1)
        )
    response = reset(client, issued.token)
    assert response.json["code"] == "LINK_INVALID"
    assert auth.login("ada@example.com", PASSWORD).status_code == 200


def test_a_token_sets_only_its_own_users_password(
    client: FlaskClient, auth: Auth, mailbox: Mailbox
) -> None:
    auth.register("ada@example.com")
    auth.register("bob@example.com")
    token = mailed_token(client, mailbox, "bob@example.com")
    assert reset(client, token).status_code == 200
    assert auth.login("ada@example.com", PASSWORD).status_code == 200
    assert auth.login("bob@example.com", NEW_PASSWORD).status_code == 200


def test_a_password_changed_since_the_mail_kills_the_link(
    client: FlaskClient, auth: Auth, mailbox: Mailbox
) -> None:
    access = auth.register("ada@example.com").json["accessToken"]
    token = mailed_token(client, mailbox, "ada@example.com")
    changed = client.post(
        f"{PREFIX}/password",
        headers=bearer(access),
        json={"currentPassword": PASSWORD, "newPassword": "changed by the user"},
    )
    assert changed.status_code == 200, changed.text
    assert reset(client, token).json["code"] == "LINK_INVALID"
    assert auth.login("ada@example.com", "changed by the user").status_code == 200


class UnboundStore(BuiltinUserStore):
    """Built-in users in a store that binds nothing to the password hash
    (a custom store's default: ``identity_attribute = None``)."""

    identity_attribute = None


def test_a_password_changed_kills_the_link_of_a_store_that_binds_nothing(
    engine: Engine, flow_config: dict[str, Any], mailbox: Mailbox
) -> None:
    """No fingerprint to compare: ``/password`` spends the links itself."""
    client = flow_app(engine, UnboundStore(), **flow_config).test_client()
    access = Auth(client).register("ada@example.com").json["accessToken"]
    token = mailed_token(client, mailbox, "ada@example.com")
    changed = client.post(
        f"{PREFIX}/password",
        headers=bearer(access),
        json={"currentPassword": PASSWORD, "newPassword": "changed by the user"},
    )
    assert changed.status_code == 200, changed.text
    assert reset(client, token).json["code"] == "LINK_INVALID"
    assert (
        Auth(client).login("ada@example.com", "changed by the user").status_code == 200
    )


def test_a_password_changed_outside_the_library_kills_the_link(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, app: Flask
) -> None:
    """The host's own admin tool, a script: whatever wrote the hash."""
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    state = get_state(app)
    with app.app_context():
        user = state.user_store.find_by_email("ada@example.com")
        state.user_store.set_password(user, "set by an admin tool")
    assert reset(client, token).json["code"] == "LINK_INVALID"


def test_an_address_changed_since_the_mail_kills_the_link(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, app: Flask
) -> None:
    """A link in a mailbox that is no longer the account's (changed by the
    host's own tool, or by a confirmation racing the mail) resets nothing:
    whoever reads the old mailbox does not get the account."""
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    state = get_state(app)
    with app.app_context():
        user = state.user_store.find_by_email("ada@example.com")
        state.user_store.set_email(user, "ada@new.example")
    assert reset(client, token).json["code"] == "LINK_INVALID"
    assert auth.login("ada@new.example", PASSWORD).status_code == 200


class AliasStore(BuiltinUserStore):
    """Built-in users found by an alias too (a host's ``find_by_email``
    may match more than the address the account has)."""

    def find_by_email(self, email: str) -> Any:
        found = super().find_by_email(email)
        if found is None and email == "alias@example.com":
            return super().find_by_email("ada@example.com")
        return found


def test_the_link_goes_to_the_accounts_address_not_the_one_typed(
    engine: Engine, flow_config: dict[str, Any], mailbox: Mailbox
) -> None:
    client = flow_app(engine, AliasStore(), **flow_config).test_client()
    Auth(client).register("ada@example.com")
    assert forgot(client, "alias@example.com").status_code == 202
    assert mailbox.to("alias@example.com") == []
    assert reset(client, mailbox.token("ada@example.com")).status_code == 200


def test_a_disabled_users_link_is_refused(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, store: DisablingStore
) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    store.disabled.add("ada@example.com")
    assert reset(client, token).json["code"] == "LINK_INVALID"
    store.disabled.clear()
    assert auth.login("ada@example.com", PASSWORD).status_code == 200


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "INVALID_PASSWORD"),
        ("password123", "PASSWORD_TOO_COMMON"),
        ("my ada@example.com pass", "PASSWORD_HAS_CONTEXT_WORD"),
        ("x" * 300, "INVALID_PASSWORD"),
    ],
)
def test_the_new_password_is_checked_as_at_registration(
    client: FlaskClient, auth: Auth, mailbox: Mailbox, password: str, code: str
) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    response = reset(client, token, password)
    assert response.status_code == 400
    assert response.json["code"] == code
    # Refused, the link is not spent.
    assert reset(client, token).status_code == 200


@pytest.mark.parametrize("revocation", ["database", "redis"])
def test_a_reset_ends_every_session_and_access_token(
    engine: Engine,
    store: DisablingStore,
    flow_config: dict[str, Any],
    mailbox: Mailbox,
    request: pytest.FixtureRequest,
    revocation: str,
) -> None:
    """On each revocation store: every refresh cookie and every access
    token issued before the reset is refused."""
    extra = request.getfixturevalue("redis_config") if revocation == "redis" else {}
    app = flow_app(
        engine, store, **flow_config, TOKENAUTH_REVOCATION=revocation, **extra
    )
    client = app.test_client()
    auth = Auth(client)
    auth.register("ada@example.com")
    devices = []
    for _ in range(2):
        device = Auth(app.test_client())
        login = device.login("ada@example.com")
        devices.append((device, login.json["accessToken"]))
    token = mailed_token(client, mailbox, "ada@example.com")
    assert reset(client, token).status_code == 200
    for device, access in devices:
        refreshed = device.refresh()
        assert refreshed.status_code == 401
        assert refreshed.json["code"] == "REFRESH_TOKEN_REVOKED"
        protected = device.client.get(f"{PREFIX}/sessions", headers=bearer(access))
        assert protected.status_code == 401
        assert protected.json["code"] == "TOKEN_REVOKED"
    fresh = Auth(app.test_client()).login("ada@example.com", NEW_PASSWORD)
    assert fresh.status_code == 200
    listed = client.get(f"{PREFIX}/sessions", headers=bearer(fresh.json["accessToken"]))
    assert listed.status_code == 200
    assert len(listed.json["sessions"]) == 1


# -- /forgot-password tells nothing about accounts ---------------------------


def forgot_answers(
    app: Flask, store: DisablingStore, mailbox: Mailbox
) -> dict[str, TestResponse]:
    """``/forgot-password``'s answer for an account's address, an unknown
    one, an unverified account's, a disabled account's and one over its
    per-address limit, each from a client of its own."""
    client = app.test_client()
    for email in ("verified", "unverified", "disabled", "limited"):
        assert Auth(client).register(f"{email}@example.com").status_code == 201
    with get_state(app).db.begin() as conn:
        conn.execute(
            update(User.__table__)
            .where(User.__table__.c.email == "verified@example.com")
            .values(email_verified_at=datetime.now(timezone.utc))
        )
    store.disabled.add("disabled@example.com")
    for _ in range(3):  # the per-address limit below
        forgot(app.test_client(), "limited@example.com")
    mailbox.clear()
    return {
        name: forgot(app.test_client(), f"{name}@example.com")
        for name in ("verified", "unknown", "unverified", "disabled", "limited")
    }


def test_forgot_password_answers_every_address_alike(
    engine: Engine,
    store: DisablingStore,
    mailbox: Mailbox,
    flow_config: dict[str, Any],
) -> None:
    app = flow_app(
        engine,
        store,
        **{**flow_config, "TOKENAUTH_RATELIMIT_MAIL_ADDRESS": "3/hour"},
    )
    limited: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    with (
        signals.mail_limited.connected_to(lambda sender, **kw: limited.append(kw), app),
        signals.password_reset_unknown.connected_to(
            lambda sender, **kw: unknown.append(kw), app
        ),
    ):
        answers = forgot_answers(app, store, mailbox)
        wait_for_mail()
    first = answers["verified"]
    assert first.status_code == 202
    assert first.json == {
        "message": "If an account has this address, a link to reset its password"
        " is on its way"
    }
    for name, response in answers.items():
        assert response.status_code == first.status_code, name
        assert response.data == first.data, name
        assert sorted(response.headers.items()) == sorted(first.headers.items()), name
    # And what happened after the answers: a link for the two active
    # accounts, nothing for the others, each said by a signal.
    mailed = mailbox.recipients()
    assert mailed == ["unverified@example.com", "verified@example.com"]
    assert sorted(u["email"] for u in unknown) == [
        "disabled@example.com",
        "unknown@example.com",
    ]
    assert [(x["email"], x["purpose"]) for x in limited] == [
        ("limited@example.com", "reset")
    ]


def test_forgot_password_takes_its_address_as_register_does(
    client: FlaskClient,
) -> None:
    for body, code in [
        ({"email": "not an address"}, "INVALID_EMAIL"),
        ({"email": ""}, "INVALID_EMAIL"),
        ({}, "VALIDATION_ERROR"),
        ({"email": 5}, "VALIDATION_ERROR"),
    ]:
        response = client.post(f"{PREFIX}/forgot-password", json=body)
        assert response.status_code == 400, body
        assert response.json["code"] == code, body
        register = client.post(
            f"{PREFIX}/register", json={**body, "password": PASSWORD}
        )
        assert register.json["code"] == code, body


def test_an_addresss_spelling_is_one_address(
    client: FlaskClient, auth: Auth, mailbox: Mailbox
) -> None:
    auth.register("ada@example.com")
    assert forgot(client, "  Ada@EXAMPLE.com ").status_code == 202
    assert len(mailbox.to("ada@example.com", RESET_SUBJECT)) == 1


def test_the_per_client_mail_limit_counts_forgot_password(
    engine: Engine,
    store: DisablingStore,
    mailbox: Mailbox,
    flow_config: dict[str, Any],
) -> None:
    app = flow_app(
        engine, store, **{**flow_config, "TOKENAUTH_RATELIMIT_MAIL": "2/minute"}
    )
    client = app.test_client()
    statuses = [forgot(client, f"u{n}@example.com").status_code for n in range(3)]
    assert statuses == [202, 202, 429]


@pytest.mark.parametrize(
    "config",
    [
        {
            "TOKENAUTH_PASSWORD_RESET_ENABLED": False,
            "TOKENAUTH_MAIL_BACKEND": "log",
            "TOKENAUTH_LINK_BASE_URL": "http://app.test",
        },
        {},  # no mail set up: the flow is off by default
    ],
)
def test_the_flow_switched_off_is_not_found(
    engine: Engine, config: dict[str, Any]
) -> None:
    app = flow_app(engine, **config)
    client = app.test_client()
    for path in ("forgot-password", "reset-password"):
        response = client.post(f"{PREFIX}/{path}", json={"email": "a@example.com"})
        assert response.status_code == 404
        assert response.json["code"] == "NOT_FOUND"


# -- Races -------------------------------------------------------------------


@pytest.mark.postgresql
def test_concurrent_resets_with_one_link_one_wins(
    app: Flask, auth: Auth, client: FlaskClient, mailbox: Mailbox
) -> None:
    auth.register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    n = 6
    barrier = threading.Barrier(n)
    results: dict[str, int] = {}

    def attempt(index: int) -> None:
        password = f"racing passphrase number {index}"
        own = app.test_client()
        barrier.wait()
        results[password] = reset(own, token, password).status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [password for password, status in results.items() if status == 200]
    assert len(results) == n
    assert len(winners) == 1, results
    assert sorted(results.values()) == [200] + [400] * (n - 1)
    # The stored hash is the winner's (asked of the store: six logins would
    # spend the wrong-password limits).
    with app.app_context():
        store = get_state(app).user_store
        user = store.find_by_email("ada@example.com")
        for password in results:
            assert store.verify_password(user, password) == (password in winners)


# -- flask tokenauth users reset-link ----------------------------------------


def test_the_cli_prints_a_working_link(
    app: Flask, auth: Auth, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    auth.register("ada@example.com")
    result = app.test_cli_runner().invoke(
        args=["tokenauth", "users", "reset-link", " Ada@Example.com"]
    )
    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert link.startswith("http://app.test/reset-password#token=")
    assert "Valid once" in result.stderr
    token = link.split("#token=")[1]
    assert token.split(".")[1] not in caplog.text
    assert reset(client, token).status_code == 200
    assert auth.login("ada@example.com", NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("nobody@example.com", "No user with the address nobody@example.com"),
        ("disabled@example.com", "is disabled"),
        ("not an address", "Invalid email address"),
    ],
)
def test_the_cli_refuses_what_has_no_link(
    app: Flask, auth: Auth, store: DisablingStore, email: str, message: str
) -> None:
    auth.register("disabled@example.com")
    store.disabled.add("disabled@example.com")
    result = app.test_cli_runner().invoke(
        args=["tokenauth", "users", "reset-link", email]
    )
    assert result.exit_code != 0
    assert message in result.output


# -- A mail server that refuses or never answers ------------------------------


@pytest.mark.parametrize("mode", ["refuse-rcpt", "refuse-data", "hang"])
def test_a_failing_mail_server_changes_no_answer(
    engine: Engine,
    store: DisablingStore,
    flow_config: dict[str, Any],
    smtp_server: Any,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    """``/forgot-password`` answers as always, the link that could not be
    mailed is stored and simply expires unused (it cannot be spent by anyone
    without it), ``/reset-password`` completes although its notice is lost;
    each lost mail is logged and signalled, without its link."""
    # A short timeout for the silent server (one on loopback answers at once).
    app = flow_app(engine, store, **flow_config, TOKENAUTH_MAIL_TIMEOUT="2")
    client = app.test_client()
    Auth(client).register("ada@example.com")
    token = mailed_token(client, mailbox, "ada@example.com")
    smtp_server.set_mode(mode)
    failed: list[dict[str, Any]] = []
    with signals.mail_failed.connected_to(lambda _, **kw: failed.append(kw), app):
        asked = forgot(client, "ada@example.com")
        assert asked.status_code == 202
        assert forgot(client, "nobody@example.com").data == asked.data
        # The lookups and their tokens are made after the answers: done
        # before the reset, which must then spend the lost link too.
        wait_for_mail(app)
        done = reset(client, token)
        assert done.status_code == 200, done.text
        wait_for_mail(app)
    assert sorted(f["template"] for f in failed) == [
        "password_changed_notice",
        "reset_password",
    ]
    assert all(f["to"] == "ada@example.com" for f in failed)
    assert token.split(".")[1] not in caplog.text
    with engine.connect() as conn:
        spent = conn.execute(
            select(linktokens._tokens.c.used_at).order_by(
                linktokens._tokens.c.created_at
            )
        ).scalars()
        # The mailed link spent by the reset, the lost one with it (the
        # reset ends every reset link of the user).
        assert all(used is not None for used in spent)
    smtp_server.set_mode("accept")
    assert auth_login(app, NEW_PASSWORD) == 200


def auth_login(app: Flask, password: str) -> int:
    return Auth(app.test_client()).login("ada@example.com", password).status_code
