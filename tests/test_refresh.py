"""Refresh tokens: storage, rotation, reuse detection, logout, races."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import RefreshTokenExpired
from flask_tokenauth._refresh import RefreshTokens

from .conftest import REFRESH_SECRET, Auth, concurrent_refreshes


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(text("SELECT * FROM tokenauth_refresh_tokens ORDER BY id"))
        )


def assert_refused(response: Any, code: str) -> None:
    assert response.status_code == 401
    assert response.get_json()["code"] == code
    cleared = response.headers.getlist("Set-Cookie")
    assert len(cleared) == 1 and cleared[0].startswith("refresh_token=;")
    assert "Path=/api/auth" in cleared[0]


@pytest.mark.requirement("ASVS-5.0-7.2.3", "ASVS-5.0-11.5.1", "NIST-800-63B-4-5.1")
def test_only_a_keyed_hash_is_stored(auth: Auth, engine: Engine) -> None:
    auth.register()
    token = auth.refresh_cookie()
    assert token is not None
    assert len(token) >= 43  # 32 random bytes, base64url
    assert token.count(".") == 0  # opaque, not a JWT
    [row] = rows(engine)
    expected = hmac.new(REFRESH_SECRET.encode(), token.encode(), hashlib.sha256)
    assert row.token_hash == expected.hexdigest()
    assert token not in repr(tuple(row))
    # A plain (unkeyed) hash of the token is not what is stored either.
    assert row.token_hash != hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.requirement("ASVS-5.0-7.2.3", "ASVS-5.0-7.2.2")
def test_tokens_are_unique(auth: Auth) -> None:
    auth.register()
    seen = {auth.refresh_cookie()}
    for _ in range(5):
        auth.refresh()
        seen.add(auth.refresh_cookie())
    assert len(seen) == 6


@pytest.mark.requirement("RFC-9700-4.14.2")
def test_rotation_spends_the_old_token(auth: Auth, engine: Engine) -> None:
    auth.register()
    first = auth.refresh_cookie()
    assert auth.refresh().status_code == 200
    first_row, second_row = rows(engine)
    assert first_row.used_at is not None and second_row.used_at is None
    assert first_row.family_id == second_row.family_id
    assert first and auth.refresh_cookie() != first


@pytest.mark.requirement("RFC-9700-4.14.2")
def test_reuse_revokes_the_whole_family(auth: Auth, engine: Engine) -> None:
    auth.register()
    stolen = auth.refresh_cookie()
    assert auth.refresh().status_code == 200  # the victim rotates
    victims_newest = auth.refresh_cookie()

    # An unrelated session of the same user must survive.
    other = Auth(auth.client.application.test_client())
    other.login()

    assert stolen is not None and victims_newest is not None
    auth.set_refresh_cookie(stolen)  # the thief replays the old token
    assert_refused(auth.refresh(), "REFRESH_TOKEN_REUSED")
    auth.set_refresh_cookie(victims_newest)
    assert_refused(auth.refresh(), "REFRESH_TOKEN_REVOKED")
    assert other.refresh().status_code == 200
    family = {r.family_id for r in rows(engine) if r.revoked_at is not None}
    assert len(family) == 1


def test_unknown_and_oversized_cookies(auth: Auth) -> None:
    assert_refused(auth.refresh(), "REFRESH_TOKEN_MISSING")
    auth.set_refresh_cookie("x" * 43)
    assert_refused(auth.refresh(), "REFRESH_TOKEN_INVALID")
    auth.set_refresh_cookie("x" * 3000)
    assert_refused(auth.refresh(), "REFRESH_TOKEN_INVALID")


@pytest.mark.requirement("ASVS-5.0-7.3.2", "NIST-800-63B-4-5.2")
def test_expired_token_is_refused(auth: Auth, engine: Engine) -> None:
    auth.register()
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tokenauth_refresh_tokens SET expires_at = :t"), {"t": past}
        )
    assert_refused(auth.refresh(), "REFRESH_TOKEN_EXPIRED")


@pytest.mark.requirement("ASVS-5.0-7.3.2", "NIST-800-63B-4-2.2.3", "NIST-800-63B-4-5.2")
def test_family_lifetime_is_absolute(engine: Engine) -> None:
    tokens = RefreshTokens(REFRESH_SECRET.encode(), timedelta(days=7))
    start = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tokenauth_users (email, password_hash)"
                " VALUES ('a@b.co', 'x')"
            )
        )
        user_id = str(conn.execute(text("SELECT id FROM tokenauth_users")).scalar_one())
        issued = tokens.start_family(conn, user_id, start)
        assert issued.expires_at == start + timedelta(days=7)
        later = tokens.rotate(conn, issued.token, start + timedelta(days=6)).issued
    # Rotation on day 6 does not extend the family past day 7.
    assert later is not None
    assert later.expires_at == start + timedelta(days=7)
    with pytest.raises(RefreshTokenExpired), engine.begin() as conn:
        tokens.rotate(conn, later.token, start + timedelta(days=7, seconds=1))


@pytest.mark.requirement("ASVS-5.0-7.4.1", "NIST-800-63B-4-5.1")
def test_logout_revokes_the_family(auth: Auth) -> None:
    auth.register()
    auth.refresh()
    token = auth.refresh_cookie()
    assert token is not None
    assert auth.logout().status_code == 200
    auth.set_refresh_cookie(token)
    assert_refused(auth.refresh(), "REFRESH_TOKEN_REVOKED")


@pytest.mark.parametrize("cookie", [None, "garbage", "x" * 3000])
def test_logout_without_a_valid_cookie_still_succeeds(
    auth: Auth, cookie: str | None
) -> None:
    if cookie is not None:
        auth.set_refresh_cookie(cookie)
    response = auth.logout()
    assert response.status_code == 200
    assert response.get_json() == {"message": "Logged out successfully"}
    assert response.headers["Set-Cookie"].startswith("refresh_token=;")


@pytest.mark.parametrize("attempt", range(3))
def test_same_token_race_rotates_once(
    app: Flask, auth: Auth, engine: Engine, attempt: int
) -> None:
    auth.register()
    cookie = auth.refresh_cookie()
    assert cookie is not None
    statuses = [r.status_code for r in concurrent_refreshes(app, cookie, 8)]
    assert sorted(statuses) == [200] + [401] * 7
    # Exactly one successor was minted from the raced token.
    assert len(rows(engine)) == 2


def test_a_token_of_a_revoked_session_is_refused_as_revoked(
    auth: Auth, engine: Engine
) -> None:
    """The session row is the record: once it is revoked, its tokens are
    refused as revoked, whatever their own rows say."""
    auth.register()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tokenauth_sessions SET revoked_at = :t"),
            {"t": datetime.now(timezone.utc)},
        )
    assert_refused(auth.refresh(), "REFRESH_TOKEN_REVOKED")


def test_refresh_checks_a_builtin_user_in_one_statement(
    auth: Auth, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh asks whether the user still exists; with the built-in store
    that is part of the rotation statement on PostgreSQL (see
    test_refresh_round_trips) and one statement after it on SQLite, never
    an ORM session's BEGIN, SELECT and ROLLBACK: a refresh opens no ORM
    session at all.  A deleted user's refresh is still refused."""
    from flask_tokenauth._db import Database

    assert auth.register().status_code == 201

    def no_orm_session(self: Database) -> Any:
        raise AssertionError("a refresh opened an ORM session")

    monkeypatch.setattr(Database, "session", no_orm_session)
    assert auth.refresh().status_code == 200
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tokenauth_users"))
    refused = auth.refresh()
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "REFRESH_TOKEN_INVALID"
