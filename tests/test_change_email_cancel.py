"""Cancelling an address change from the notice mailed to the old address:
before and after the confirmation, every session and access token ended."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from flask import Flask
from sqlalchemy import Engine, Table, text, update

from flask_tokenauth import _linktokens as links
from flask_tokenauth import signals
from flask_tokenauth._state import get_state
from flask_tokenauth.models import EmailToken, User

from . import test_change_email as base
from .servers import wait_for
from .test_change_email import (
    NEW,
    OLD,
    PREFIX,
    Account,
    Change,
    address_of,
    live_tokens,
    received,
)

_tokens = cast(Table, EmailToken.__table__)
_users = cast(Table, User.__table__)

# The flow's fixtures, shared with the other files of this flow.
mailbox = base.mailbox
change_app = base.change_app
flow = base.flow


def assert_signed_out(user: Account) -> None:
    """The user's access token and refresh cookie are both refused."""
    response = user.client.get(f"{PREFIX}/sessions", headers=_bearer(user))
    assert response.status_code == 401
    assert response.json["code"] == "TOKEN_REVOKED"  # type: ignore[index]
    assert not user.refreshes()


def _bearer(user: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access}"}


def _cancelled_cookie(response: Any) -> bool:
    return any(
        value.startswith("refresh_token=;") or "Max-Age=0" in value
        for value in response.headers.getlist("Set-Cookie")
        if value.startswith("refresh_token=")
    )


def test_cancel_before_the_confirmation(flow: Change, engine: Engine) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    with (
        received(signals.email_change_cancelled) as cancelled,
        received(signals.session_revoked) as revoked,
    ):
        response = flow.cancel(cancel_token, client=user.client)
    assert response.status_code == 200, response.json
    assert response.json == {
        "message": "Address change cancelled and every session ended",
        "restored": False,
    }
    assert _cancelled_cookie(response)
    assert cancelled == [{"user_id": user.id, "email": OLD, "restored": False}]
    assert [call["reason"] for call in revoked] == ["email-change-cancelled"]
    assert_signed_out(user)
    # The confirm link died with it; the address never changed.
    assert flow.confirm(confirm_token).json["code"] == "LINK_INVALID"  # type: ignore[index]
    assert address_of(engine, user.id) == (OLD, False)
    assert flow.login(OLD).status_code == 200


def test_cancel_after_the_confirmation_restores_the_old_address(
    flow: Change, engine: Engine, change_app: Flask
) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    assert flow.confirm(confirm_token).status_code == 200
    # Links mailed to the new address meanwhile (the attacker's mailbox).
    settings = get_state(change_app).settings
    with engine.begin() as conn:
        for purpose in (links.RESET, links.LOGIN):
            links.issue(settings, conn, purpose, str(user.id), NEW, timedelta(hours=1))
    with received(signals.email_change_cancelled) as cancelled:
        response = flow.cancel(cancel_token)
    assert response.status_code == 200
    assert response.json["restored"] is True  # type: ignore[index]
    assert cancelled == [{"user_id": user.id, "email": OLD, "restored": True}]
    assert address_of(engine, user.id) == (OLD, True)  # the cancel link proved it
    assert_signed_out(user)
    assert flow.login(OLD).status_code == 200
    assert flow.login(NEW).status_code == 401
    assert live_tokens(engine, links.RESET) == 0
    assert live_tokens(engine, links.LOGIN) == 0


def test_cancel_undoes_a_chain_of_changes(flow: Change, engine: Engine) -> None:
    """Whoever took the account moves it on again (A to B to C) to get out
    of the first cancel link's reach: it still restores A."""
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    assert flow.confirm(confirm_token).status_code == 200
    flow.ask(user, new="third@example.com")
    assert flow.confirm(flow.mailbox.token("third@example.com")).status_code == 200
    assert address_of(engine, user.id)[0] == "third@example.com"
    response = flow.cancel(cancel_token)
    assert response.json["restored"] is True  # type: ignore[index]
    assert address_of(engine, user.id) == (OLD, True)
    assert_signed_out(user)


def test_cancel_when_the_old_address_was_taken_meanwhile(
    flow: Change, engine: Engine
) -> None:
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    assert flow.confirm(confirm_token).status_code == 200
    flow.user(OLD)  # the freed address is registered by someone else
    with received(signals.email_change_cancelled) as cancelled:
        response = flow.cancel(cancel_token)
    assert response.status_code == 200
    assert response.json["restored"] is False  # type: ignore[index]
    assert "could not be restored" in response.json["message"]  # type: ignore[index]
    assert cancelled == [{"user_id": user.id, "email": NEW, "restored": False}]
    assert address_of(engine, user.id) == (NEW, True)  # left as it is
    assert_signed_out(user)  # the sessions end all the same


def test_a_cancel_link_works_once(flow: Change) -> None:
    user = flow.user()
    flow.ask(user)
    _, cancel_token = flow.links()
    assert flow.cancel(cancel_token).status_code == 200
    replay = flow.cancel(cancel_token)
    assert replay.status_code == 400
    assert replay.json["code"] == "LINK_INVALID"  # type: ignore[index]


def test_the_notice_of_a_request_for_a_taken_address_cancels_too(
    flow: Change, engine: Engine
) -> None:
    user = flow.user()
    flow.user("taken@example.com")
    flow.ask(user, new="taken@example.com")
    response = flow.cancel(flow.mailbox.token(OLD))
    assert response.status_code == 200
    assert response.json["restored"] is False  # type: ignore[index]
    assert_signed_out(user)
    assert address_of(engine, user.id) == (OLD, False)


@pytest.mark.parametrize("store", ["database", "redis"])
def test_cancel_ends_the_access_tokens_on_each_revocation_store(
    make_app: Any, mailbox: Any, request: pytest.FixtureRequest, store: str
) -> None:
    extra = request.getfixturevalue("redis_config") if store == "redis" else {}
    config = base.flow_config(TOKENAUTH_REVOCATION=store, **extra)
    flow = Change(make_app(**mailbox.config(config)), mailbox)
    user = flow.user()
    flow.ask(user)
    assert flow.cancel(flow.mailbox.token(OLD)).status_code == 200
    assert_signed_out(user)


@pytest.mark.postgresql
def test_a_cancel_waits_for_a_confirmation_in_flight(
    flow: Change, engine: Engine
) -> None:
    """A confirmation that has spent its link but not committed yet (held
    open here, as a slow request would) is waited for: the cancel then
    sees the new address and restores the old one, rather than deciding
    "not confirmed" and letting the confirmation win."""
    user = flow.user()
    flow.ask(user)
    confirm_token, cancel_token = flow.links()
    responses: list[Any] = []
    with engine.connect() as confirming:
        transaction = confirming.begin()
        confirming.execute(
            update(_tokens)
            .where(_tokens.c.id == confirm_token.partition(".")[0])
            .values(used_at=datetime.now(timezone.utc))
        )
        confirming.execute(
            update(_users).where(_users.c.id == user.id).values(email=NEW)
        )
        thread = threading.Thread(
            target=lambda: responses.append(flow.cancel(cancel_token))
        )
        thread.start()
        assert wait_for(lambda: _waiting_for_a_lock(engine), 30)
        transaction.commit()
        thread.join(timeout=30)
    assert responses[0].json["restored"] is True
    assert address_of(engine, user.id) == (OLD, True)


def _waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return bool(waiting)
