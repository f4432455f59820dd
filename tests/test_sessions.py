"""Sessions: listing and revoking them, idle timeout, and the reuse interval
for concurrent refreshes from one client."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import RefreshTokenExpired, RefreshTokenReused
from flask_tokenauth._refresh import RefreshTokens

from .conftest import REFRESH_SECRET, Auth, bearer, concurrent_refreshes


def login(
    app: Flask, agent: str, ip: str = "127.0.0.1", email: str = "u@example.com"
) -> tuple[Auth, str]:
    auth = Auth(app.test_client())
    kwargs = {
        "headers": {"User-Agent": agent},
        "environ_overrides": {"REMOTE_ADDR": ip},
    }
    response = auth.login(email, **kwargs)
    if response.status_code == 401:
        response = auth.register(email, **kwargs)
    return auth, str(response.get_json()["accessToken"])


def sessions(app: Flask, token: str) -> list[dict[str, Any]]:
    response = app.test_client().get("/api/auth/sessions", headers=bearer(token))
    assert response.status_code == 200
    return list(response.get_json()["sessions"])


def test_list_sessions(app: Flask) -> None:
    _, phone = login(app, "Phone/1.0", "10.0.0.1")
    laptop_auth, laptop = login(app, "Laptop/2.0", "10.0.0.2")
    laptop_auth.refresh()  # the laptop was used last
    listed = sessions(app, laptop)
    assert [s["userAgent"] for s in listed] == ["Laptop/2.0", "Phone/1.0"]
    assert [s["ipAddress"] for s in listed] == ["10.0.0.2", "10.0.0.1"]
    assert [s["current"] for s in listed] == [True, False]
    assert set(listed[0]) == {
        "id",
        "userAgent",
        "ipAddress",
        "createdAt",
        "lastUsedAt",
        "expiresAt",
        "current",
    }
    assert listed[0]["lastUsedAt"] >= listed[0]["createdAt"]
    assert [s["current"] for s in sessions(app, phone)] == [False, True]


def test_sessions_need_a_token(app: Flask) -> None:
    response = app.test_client().get("/api/auth/sessions")
    assert response.status_code == 401
    assert response.get_json()["code"] == "TOKEN_MISSING"


def test_revoke_one_session(app: Flask) -> None:
    phone_auth, _phone = login(app, "Phone")
    _, laptop = login(app, "Laptop")
    phone_id = next(s["id"] for s in sessions(app, laptop) if not s["current"])
    client = app.test_client()
    response = client.delete(f"/api/auth/sessions/{phone_id}", headers=bearer(laptop))
    assert response.status_code == 200
    assert [s["userAgent"] for s in sessions(app, laptop)] == ["Laptop"]
    assert phone_auth.refresh().get_json()["code"] == "REFRESH_TOKEN_REVOKED"
    # Gone now, and never anyone else's to revoke.
    again = client.delete(f"/api/auth/sessions/{phone_id}", headers=bearer(laptop))
    assert again.status_code == 404
    assert again.get_json()["code"] == "SESSION_NOT_FOUND"
    _, stranger = login(app, "Other", email="other@example.com")
    own_id = sessions(app, laptop)[0]["id"]
    theirs = client.delete(f"/api/auth/sessions/{own_id}", headers=bearer(stranger))
    assert theirs.status_code == 404
    assert len(sessions(app, laptop)) == 1


@pytest.mark.requirement("ASVS-5.0-7.4.3")
def test_logout_others(app: Flask) -> None:
    for agent in ("A", "B", "C"):
        login(app, agent)
    current_auth, current = login(app, "Current")
    response = app.test_client().post(
        "/api/auth/logout-others", headers=bearer(current)
    )
    assert response.get_json()["revoked"] == 3
    assert [s["userAgent"] for s in sessions(app, current)] == ["Current"]
    assert current_auth.refresh().status_code == 200


def test_logged_out_session_is_not_listed(app: Flask) -> None:
    auth, _ = login(app, "Gone")
    _, token = login(app, "Stays")
    auth.logout()
    assert [s["userAgent"] for s in sessions(app, token)] == ["Stays"]


@pytest.fixture
def user_id(engine: Engine) -> str:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tokenauth_users (email, password_hash)"
                " VALUES ('a@b.co', 'x')"
            )
        )
        return str(conn.execute(text("SELECT id FROM tokenauth_users")).scalar_one())


START = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.mark.requirement("ASVS-5.0-7.3.1", "NIST-800-63B-4-5.2")
def test_idle_timeout(engine: Engine, user_id: str) -> None:
    tokens = RefreshTokens(
        REFRESH_SECRET.encode(), timedelta(days=7), idle_timeout=timedelta(hours=1)
    )
    with engine.begin() as conn:
        first = tokens.start_family(conn, user_id, START)
        assert first.expires_at == START + timedelta(hours=1)
        # Used within the hour: the session lives on, another hour from now.
        second = tokens.rotate(conn, first.token, START + timedelta(minutes=50)).issued
        assert second is not None
        assert second.expires_at == START + timedelta(minutes=110)
        # ...but never past the session's absolute lifetime.
        long_idle = RefreshTokens(
            REFRESH_SECRET.encode(), timedelta(days=7), idle_timeout=timedelta(days=5)
        )
        day0 = long_idle.start_family(conn, user_id, START)
        day4 = long_idle.rotate(conn, day0.token, START + timedelta(days=4)).issued
        assert day4 is not None
        assert day4.expires_at == START + timedelta(days=7)
    with pytest.raises(RefreshTokenExpired), engine.begin() as conn:
        tokens.rotate(conn, second.token, START + timedelta(minutes=111))


def test_reuse_interval_semantics(engine: Engine, user_id: str) -> None:
    tokens = RefreshTokens(
        REFRESH_SECRET.encode(), timedelta(days=7), reuse_interval=timedelta(seconds=5)
    )
    with engine.begin() as conn:
        a = tokens.start_family(conn, user_id, START)
        b = tokens.rotate(conn, a.token, START).issued
        assert b is not None
        # The immediately previous token, within the interval: a valid session
        # of the same family, and no second branch.
        repeat = tokens.rotate(conn, a.token, START + timedelta(seconds=5))
        assert repeat.issued is None and repeat.family_id == a.family_id
        assert (
            conn.execute(text("SELECT count(*) FROM tokenauth_refresh_tokens")).scalar()
            == 2
        )
    # One grace answer per rotation: the next repeat, still within the
    # interval, is reuse.
    with pytest.raises(RefreshTokenReused), engine.begin() as conn:
        tokens.rotate(conn, a.token, START + timedelta(seconds=5))
    # Later than the interval: reuse.
    with pytest.raises(RefreshTokenReused), engine.begin() as conn:
        tokens.rotate(conn, a.token, START + timedelta(seconds=6))
    # Older than the immediately previous token (its successor was rotated
    # too), even within the interval: reuse.
    with engine.begin() as conn:
        c = tokens.rotate(conn, b.token, START + timedelta(seconds=1)).issued
        assert c is not None
    with pytest.raises(RefreshTokenReused), engine.begin() as conn:
        tokens.rotate(conn, a.token, START + timedelta(seconds=2))


@pytest.mark.parametrize("attempt", range(2))
def test_two_tabs_within_the_reuse_interval(
    make_app: Any, engine: Engine, attempt: int
) -> None:
    """Two tabs refreshing at once both stay signed in.  (A third repeat
    would be reuse: see test_grace.py.)"""
    app = make_app(TOKENAUTH_REUSE_INTERVAL="10s")
    auth = Auth(app.test_client())
    auth.register()
    cookie = auth.refresh_cookie()
    assert cookie is not None
    responses = concurrent_refreshes(app, cookie, 2)
    assert [r.status_code for r in responses] == [200] * 2
    # One rotation: one new cookie among the answers, one successor row, and
    # every answer's access token belongs to the same session.
    assert sum("Set-Cookie" in r.headers for r in responses) == 1
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM tokenauth_refresh_tokens")).scalar()
            == 2
        )
    new_cookie = next(r for r in responses if "Set-Cookie" in r.headers)
    auth.set_refresh_cookie(
        new_cookie.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    )
    assert auth.refresh().status_code == 200  # the family is intact


@pytest.mark.parametrize(
    ("agent", "forwarded", "stored_agent", "stored_ip"),
    [
        ("Bad\x00Agent", "203.0.113.9", "BadAgent", "203.0.113.9"),
        ("A" * 2000, "not-an-ip" * 20, "A" * 512, None),
        ("", "2001:db8::1", None, "2001:db8::1"),
        ("Agent", "1.2.3.4\x00", "Agent", None),
    ],
)
def test_odd_device_details_are_stored_safely(
    make_app: Any,
    agent: str,
    forwarded: str,
    stored_agent: str | None,
    stored_ip: str | None,
) -> None:
    app = make_app(TOKENAUTH_TRUSTED_PROXIES=1)
    response = Auth(app.test_client()).register(
        headers={"User-Agent": agent, "X-Forwarded-For": forwarded}
    )
    assert response.status_code == 201
    [listed] = sessions(app, response.get_json()["accessToken"])
    assert (listed["userAgent"], listed["ipAddress"]) == (stored_agent, stored_ip)


@pytest.mark.parametrize("session_id", ["x" * 5000, "%00", "A" * 32, "a%00b"])
def test_revoking_a_malformed_session_id(app: Flask, session_id: str) -> None:
    _, token = login(app, "Agent")
    response = app.test_client().delete(
        f"/api/auth/sessions/{session_id}", headers=bearer(token)
    )
    assert response.status_code == 404
    assert response.get_json()["code"] == "SESSION_NOT_FOUND"
