"""The existing-app example's mail flows: its own users (username login,
werkzeug hashes, an ``email`` column of its own), mailed through Flask-Mail
to the real SMTP server process, on SQLite and PostgreSQL.

Its three more lines of glue (Flask-Mail, its import, where the links
point) are counted in ``test_existing_app``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import flask_mail
import pytest
from flask import Flask

from flask_tokenauth.testing import wait_for_mail

from .conftest import bearer
from .smtp import token_in
from .test_existing_app import (  # noqa: F401 (fixtures)
    PASSWORD,
    add_user,
    example,
    host_url,
    html_login,
    login,
    make_app,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:'get_engine' is deprecated:DeprecationWarning"
)

NEW_PASSWORD = "a fresh werkzeug passphrase"


@pytest.fixture
def mail_app(
    make_app: Callable[..., Flask],  # noqa: F811
    host_url: str,  # noqa: F811
    example: SimpleNamespace,  # noqa: F811
    mail_config: dict[str, Any],
) -> Iterator[Flask]:
    """The example with a mail server (``FLASK_MAIL_*`` as the config keys
    they become); its rows deleted after the test.  Flask-Mail keeps the
    mail of a ``TESTING`` app to itself unless told otherwise."""
    app = make_app(host_url, MAIL_SUPPRESS_SEND=False, **mail_config)
    yield app
    with app.app_context():
        from sqlalchemy import text

        from flask_tokenauth.models import metadata

        names = ["note", "user"] + [t.name for t in reversed(metadata.sorted_tables)]
        with example.db.engine.begin() as conn:
            for name in names:
                conn.execute(text(f'DELETE FROM "{name}"'))


@pytest.fixture
def dispatched() -> Iterator[list[Any]]:
    """The messages Flask-Mail sent (its ``email_dispatched`` signal)."""
    sent: list[Any] = []

    def record(app: Any, message: Any) -> None:
        sent.append(message)

    flask_mail.email_dispatched.connect(record)
    yield sent
    flask_mail.email_dispatched.disconnect(record)


def test_a_forgotten_password_is_reset_through_flask_mail(
    mail_app: Flask,
    example: SimpleNamespace,  # noqa: F811
    smtp_server: Any,
    dispatched: list[Any],
) -> None:
    with mail_app.app_context():
        add_user(example, "alice", email="alice@example.com")
    client = mail_app.test_client()
    asked = client.post(
        "/api/auth/forgot-password", json={"email": " Alice@Example.com"}
    )
    assert asked.status_code == 202, asked.get_json()
    (message,) = smtp_server.wait_for("alice@example.com")
    wait_for_mail(mail_app)
    assert [m.recipients for m in dispatched] == [["alice@example.com"]]
    reset = client.post(
        "/api/auth/reset-password",
        json={"token": token_in(message), "password": NEW_PASSWORD},
    )
    assert reset.status_code == 200, reset.get_json()
    assert login(client, "alice").status_code == 401
    assert login(client, "alice", NEW_PASSWORD).status_code == 200
    # Written in the app's own scheme: its login page takes it too.
    page = mail_app.test_client()
    assert html_login(page, "alice", NEW_PASSWORD).status_code == 302


def test_the_address_is_changed_through_a_link_to_the_new_one(
    mail_app: Flask,
    example: SimpleNamespace,  # noqa: F811
    smtp_server: Any,
) -> None:
    with mail_app.app_context():
        user = add_user(example, "alice", email="alice@example.com")
        user_id = user.id
    client = mail_app.test_client()
    token = login(client, "alice").get_json()["accessToken"]
    asked = client.post(
        "/api/auth/change-email",
        json={"newEmail": "alice@new.example", "password": PASSWORD},
        headers=bearer(token),
    )
    assert asked.status_code == 202, asked.get_json()
    (message,) = smtp_server.wait_for("alice@new.example")
    confirmed = client.post(
        "/api/auth/change-email/confirm", json={"token": token_in(message)}
    )
    assert confirmed.status_code == 200, confirmed.get_json()
    with mail_app.app_context():
        example.db.session.remove()
        changed = example.db.session.get(example.User, user_id)
        assert changed.email == "alice@new.example"
        store = example.user_store
        assert store.is_email_verified(changed)


def test_without_a_mail_server_the_example_has_no_mail_flows(
    make_app: Callable[..., Flask],  # noqa: F811
    host_url: str,  # noqa: F811
) -> None:
    """The glue changes nothing until the app is given a mail server."""
    app = make_app(host_url)
    response = app.test_client().post(
        "/api/auth/forgot-password", json={"email": "alice@example.com"}
    )
    assert response.status_code == 404
