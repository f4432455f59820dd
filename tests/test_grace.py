"""The reuse interval allows one grace answer per rotation: a spent refresh
token presented again within the interval gets one access token (no cookie),
and every further presentation is reuse, which ends the session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import RefreshTokenReused, signals
from flask_tokenauth._refresh import RefreshTokens

from .conftest import REFRESH_SECRET, Auth, concurrent_refreshes

#: Long enough that no test outlives it, even on a loaded machine.
REUSE_INTERVAL = "60s"
REUSE = timedelta(seconds=60)


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app(  # type: ignore[no-any-return]
        TOKENAUTH_REUSE_INTERVAL=REUSE_INTERVAL, TOKENAUTH_RATELIMIT_ENABLED=False
    )


@pytest.fixture
def sent(app: Flask) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The grace and refresh signals the app sends, in order."""
    events: list[tuple[str, dict[str, Any]]] = []

    def grace(sender: Any, **kwargs: Any) -> None:
        events.append(("grace", kwargs))

    def refreshed(sender: Any, **kwargs: Any) -> None:
        events.append(("refreshed", kwargs))

    signals.refresh_grace_used.connect(grace, sender=app)
    signals.token_refreshed.connect(refreshed, sender=app)
    yield events
    signals.refresh_grace_used.disconnect(grace)
    signals.token_refreshed.disconnect(refreshed)


def cookie_of(response: Any) -> str | None:
    """The refresh token a 200 response sets, if any."""
    header = response.headers.get("Set-Cookie")
    if response.status_code != 200 or header is None:
        return None
    return str(header.split(";")[0].split("=", 1)[1])


def code(response: Any) -> str:
    assert response.status_code == 401
    return str(response.get_json()["code"])


def session_revoked(engine: Engine) -> bool:
    with engine.connect() as conn:
        [revoked_at] = conn.execute(
            text("SELECT revoked_at FROM tokenauth_sessions")
        ).one()
    return revoked_at is not None


def test_one_grace_answer_then_reuse(app: Flask, engine: Engine, sent: Any) -> None:
    auth = Auth(app.test_client())
    user_id = auth.register().get_json()["user"]["id"]
    spent = auth.refresh_cookie()
    assert spent is not None
    assert auth.refresh().status_code == 200
    assert sent[-1][1]["rotated"] is True
    session_id = sent[-1][1]["session_id"]
    sent.clear()

    repeat = Auth(app.test_client())
    repeat.set_refresh_cookie(spent)
    grace = repeat.refresh()
    assert grace.status_code == 200
    assert set(grace.get_json()) == {"accessToken"}
    assert "Set-Cookie" not in grace.headers
    # token_refreshed keeps its meaning (rotated=False), and the grace
    # answer has a signal of its own.
    expected = {"user_id": user_id, "session_id": session_id}
    assert sent == [
        ("refreshed", {**expected, "rotated": False}),
        ("grace", expected),
    ]

    # The second repeat, still within the interval, is reuse.
    assert code(repeat.refresh()) == "REFRESH_TOKEN_REUSED"
    assert session_revoked(engine)
    assert code(auth.refresh()) == "REFRESH_TOKEN_REVOKED"
    assert [name for name, _ in sent] == ["refreshed", "grace"]


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_repeats_get_one_grace_answer(
    app: Flask, engine: Engine, sent: Any, attempt: int
) -> None:
    auth = Auth(app.test_client())
    auth.register()
    cookie = auth.refresh_cookie()
    assert cookie is not None
    responses = concurrent_refreshes(app, cookie, 8)
    assert len(responses) == 8

    ok = [r for r in responses if r.status_code == 200]
    rotated = [r for r in ok if cookie_of(r)]
    assert len(rotated) == 1 and len(ok) == 2  # one rotation, one grace answer
    refused = [code(r) for r in responses if r.status_code != 200]
    # The first refusal is reuse and revokes the session; one answered after
    # that may find the session revoked already.
    assert "REFRESH_TOKEN_REUSED" in refused
    assert set(refused) <= {"REFRESH_TOKEN_REUSED", "REFRESH_TOKEN_REVOKED"}
    assert [name for name, _ in sent].count("grace") == 1
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM tokenauth_refresh_tokens")).scalar()
            == 2
        )
    assert session_revoked(engine)
    auth.set_refresh_cookie(str(cookie_of(rotated[0])))
    assert code(auth.refresh()) == "REFRESH_TOKEN_REVOKED"


def test_a_replay_loop_gets_at_most_one_access_token(app: Flask) -> None:
    auth = Auth(app.test_client())
    auth.register()
    spent = auth.refresh_cookie()
    assert spent is not None
    assert auth.refresh().status_code == 200

    answers = []
    for i in range(100):
        replay = Auth(app.test_client())
        replay.set_refresh_cookie(spent)
        address = {"REMOTE_ADDR": f"198.51.100.{i + 1}"}
        answers.append(replay.refresh(environ_overrides=address))
    tokens = [r for r in answers if r.status_code == 200]
    assert len(tokens) <= 1
    assert all(r.status_code in (200, 401) for r in answers)


@pytest.mark.parametrize(
    ("after", "grace"),
    [(timedelta(seconds=59), True), (timedelta(seconds=61), False)],
    ids=["within", "after"],
)
def test_the_first_repeat_after_the_interval_is_reuse(
    engine: Engine, after: timedelta, grace: bool
) -> None:
    """The clock passed as ``now``: the *first* repeat of a rotated token
    gets the grace answer only within the reuse interval (60 s here); one
    second past it, it is reuse."""
    tokens = RefreshTokens(
        REFRESH_SECRET.encode(),
        timedelta(days=7),
        reuse_interval=REUSE,
    )
    start = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tokenauth_users (email, password_hash)"
                " VALUES ('a@b.co', 'x')"
            )
        )
        user_id = str(conn.execute(text("SELECT id FROM tokenauth_users")).scalar_one())
        spent = tokens.start_family(conn, user_id, start).token
    rotated_at = start + timedelta(seconds=1)
    with engine.begin() as conn:
        assert tokens.rotate(conn, spent, rotated_at).issued is not None
    repeat_at = rotated_at + after
    if grace:
        with engine.begin() as conn:
            assert tokens.rotate(conn, spent, repeat_at).issued is None
        return
    with pytest.raises(RefreshTokenReused), engine.begin() as conn:
        tokens.rotate(conn, spent, repeat_at)


def test_the_first_repeat_after_the_interval_ends_the_session(
    app: Flask, engine: Engine, sent: Any
) -> None:
    """Through the endpoint: the rotation moved back past the interval in
    the database (as if the clock had moved on), the first repeat of the
    spent token gets ``REFRESH_TOKEN_REUSED`` and no grace answer, and the
    session ends."""
    auth = Auth(app.test_client())
    auth.register()
    spent = auth.refresh_cookie()
    assert spent is not None
    assert auth.refresh().status_code == 200
    rotated_at = datetime.now(timezone.utc) - REUSE
    with engine.begin() as conn:
        moved = conn.execute(
            text(
                "UPDATE tokenauth_refresh_tokens SET used_at = :at"
                " WHERE used_at IS NOT NULL"
            ),
            {"at": rotated_at - timedelta(seconds=1)},
        )
        assert moved.rowcount == 1
    repeat = Auth(app.test_client())
    repeat.set_refresh_cookie(spent)
    assert code(repeat.refresh()) == "REFRESH_TOKEN_REUSED"
    assert "grace" not in [name for name, _ in sent]
    assert session_revoked(engine)
    assert code(auth.refresh()) == "REFRESH_TOKEN_REVOKED"
