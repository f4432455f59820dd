"""Password reset with a host's users (``SQLAlchemyUserStore``), whose store
commits the new password on its own: on SQLite (one writer: the host's
commit must come before any write of ours) and PostgreSQL (two requests
with one link: the loser must not write its password either)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine

from flask_tokenauth._password_reset import issue_link
from flask_tokenauth._state import get_state
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD, bearer
from .test_password_reset import Mailbox, flow_config, mailbox
from .test_userstore import add_user, host, host_app

__all__ = ["flow_config", "host", "mailbox"]

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def app(engine: Engine, host: type[Any], flow_config: dict[str, Any]) -> Flask:
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    add_user(engine, host, "alice")
    return host_app(engine, store, **flow_config)


def link_token(app: Flask) -> str:
    """A reset link for alice, as the CLI makes one (the store's addresses
    are another helper's: looked up by login here)."""
    with app.app_context():
        state = get_state(app)
        user = state.user_store.find_by_login("alice")
        _, link = issue_link(state, user, EMAIL)
    return link.split("#token=")[1]


def login(app: Flask, password: str) -> Any:
    return app.test_client().post(
        "/api/auth/login", json={"username": "alice", "password": password}
    )


def reset(app: Flask, token: str, password: str = NEW_PASSWORD) -> Any:
    return app.test_client().post(
        "/api/auth/reset-password", json={"token": token, "password": password}
    )


def test_a_host_users_password_is_reset(app: Flask, mailbox: Mailbox) -> None:
    before = login(app, PASSWORD)
    assert before.status_code == 200
    response = reset(app, link_token(app))
    assert response.status_code == 200, response.text
    assert login(app, PASSWORD).status_code == 401
    assert login(app, NEW_PASSWORD).status_code == 200
    old = app.test_client().get("/me", headers=bearer(before.json["accessToken"]))
    assert old.status_code == 401
    assert old.json["code"] == "TOKEN_REVOKED"
    assert mailbox.to(EMAIL, "Your password was changed")


def test_a_host_users_link_dies_when_the_host_changes_the_password(
    app: Flask, engine: Engine, host: type[Any]
) -> None:
    token = link_token(app)
    with app.app_context():
        store = get_state(app).user_store
        store.set_password(store.find_by_login("alice"), "set by the host's form")
    assert reset(app, token).json["code"] == "LINK_INVALID"
    assert login(app, "set by the host's form").status_code == 200


def test_a_disabled_host_users_link_is_refused(
    app: Flask, engine: Engine, host: type[Any]
) -> None:
    token = link_token(app)
    with engine.begin() as conn:
        conn.execute(host.__table__.update().values(active=False))
    assert reset(app, token).json["code"] == "LINK_INVALID"


@pytest.mark.postgresql
def test_concurrent_resets_of_a_host_user_one_wins(app: Flask) -> None:
    """The host's store commits its password before our transaction does:
    the link's row is held from the start, so that the losers wait and
    then find it spent, never writing their password after the winner's."""
    token = link_token(app)
    n = 6
    barrier = threading.Barrier(n)
    results: dict[str, int] = {}

    def attempt(index: int) -> None:
        password = f"racing passphrase number {index}"
        barrier.wait()
        results[password] = reset(app, token, password).status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results.values()) == [200] + [400] * (n - 1), results
    for password, status in results.items():
        assert login(app, password).status_code == (200 if status == 200 else 401)
