"""Signals: every auth event is announced, with the app as sender."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from blinker import Signal
from flask import Flask

from flask_tokenauth import signals

from .conftest import PASSWORD, Auth, bearer

ALL = [
    "user_registered",
    "login_succeeded",
    "login_failed",
    "token_refreshed",
    "refresh_token_reused",
    "session_revoked",
    "logged_out",
    "password_changed",
]


@pytest.fixture
def received(app: Flask) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for name in ALL:
        signal: Signal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            assert sender is app
            events.append((_name, kwargs))

        signal.connect(receiver, sender=app)
        receivers.append((signal, receiver))
    yield events
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in events]


def test_the_whole_lifecycle(app: Flask, received: list[Any]) -> None:
    auth = Auth(app.test_client())
    user_id = auth.register().get_json()["user"]["id"]
    assert received[-1] == (
        "user_registered",
        {"user_id": user_id, "email": "user@example.com"},
    )
    auth.login(password="wrong password")
    assert received[-1] == (
        "login_failed",
        {"email": "user@example.com", "user_id": user_id},
    )
    auth.login("nobody@example.com")
    assert received[-1] == (
        "login_failed",
        {"email": "nobody@example.com", "user_id": None},
    )
    token = auth.login().get_json()["accessToken"]
    name, payload = received[-1]
    assert name == "login_succeeded" and payload["user_id"] == user_id
    session_id = payload["session_id"]

    stolen = auth.refresh_cookie()
    auth.refresh()
    assert received[-1] == (
        "token_refreshed",
        {"user_id": user_id, "session_id": session_id, "rotated": True},
    )
    assert stolen is not None
    auth.set_refresh_cookie(stolen)
    auth.refresh()
    assert names(received)[-2:] == ["refresh_token_reused", "session_revoked"]
    assert received[-2][1] == {"user_id": user_id, "session_id": session_id}
    assert received[-1][1] == {
        "user_id": user_id,
        "session_ids": [session_id],
        "reason": "reuse",
    }

    other = Auth(app.test_client())
    other.login()
    other.logout()
    assert names(received)[-2:] == ["session_revoked", "logged_out"]
    assert received[-2][1]["reason"] == "logout"

    fresh = Auth(app.test_client())
    token = fresh.login().get_json()["accessToken"]
    received.clear()
    response = fresh.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "another password"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert names(received) == ["session_revoked", "password_changed"]
    assert received[0][1]["reason"] == "password-changed"


def test_logout_without_a_cookie_still_signals(app: Flask, received: list[Any]) -> None:
    Auth(app.test_client()).logout()
    assert received == [("logged_out", {"user_id": None, "session_id": None})]


def test_a_session_of_another_id_scheme_is_announced_with_its_sub() -> None:
    """A store whose key type changed (a session's ``sub`` is not one of its
    ids) must not turn the revocation's signal into a 500."""
    from types import SimpleNamespace

    from flask_tokenauth._sessions import announce_revoked

    class IntegerKeys:
        def user_id(self, sub: str) -> int:
            return int(sub)

    state: Any = SimpleNamespace(user_store=IntegerKeys())
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **extra: Any) -> None:
        received.append(extra)

    app = Flask(__name__)
    with signals.session_revoked.connected_to(receiver), app.app_context():
        announce_revoked(state, "7", ["a"], "user-gone")
        announce_revoked(state, "uuid-like-abc", ["b"], "user-gone")
    assert [r["user_id"] for r in received] == [7, "uuid-like-abc"]
