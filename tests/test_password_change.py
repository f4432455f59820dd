"""A password change is one transaction that ends every session of the user,
the caller's included, and starts a new one for the caller: all of it or
none of it, even when Redis refuses writes, and no access token issued
before it survives, whatever second it was issued in."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from flask import Flask
from sqlalchemy import Engine, Table, select, text

from flask_tokenauth._db import as_utc
from flask_tokenauth._passwords import verify_password
from flask_tokenauth._state import get_state
from flask_tokenauth.models import UserCutoff

from .conftest import PASSWORD, Auth, bearer

NEW = "a brand new password"
_cutoffs = cast(Table, UserCutoff.__table__)


def change(auth: Auth, token: str, current: str = PASSWORD) -> Any:
    return auth.client.post(
        "/api/auth/password",
        json={"currentPassword": current, "newPassword": NEW},
        headers=bearer(token),
    )


def protected(app: Flask, token: str) -> Any:
    return app.test_client().get("/api/auth/sessions", headers=bearer(token))


def assert_code(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_json()
    assert response.get_json()["code"] == code


def stored_hash(engine: Engine, email: str = "user@example.com") -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT password_hash FROM tokenauth_users WHERE email = :e"),
                {"e": email},
            ).scalar_one()
        )


def live_sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM tokenauth_sessions WHERE revoked_at IS NULL")
            ).scalar_one()
        )


# -- exactness (issue 9, item 9) -------------------------------------------------


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, str]:
    """The revocation stores that revoke (``off`` revokes nothing by design)."""
    if request.param == "database":
        return {"TOKENAUTH_REVOCATION": "database"}
    return dict(request.getfixturevalue("redis_config"), TOKENAUTH_REVOCATION="redis")


def test_no_token_issued_before_the_change_survives(
    make_app: Any, engine: Engine, store: dict[str, str]
) -> None:
    app = make_app(**store)
    auth = Auth(app.test_client())
    first = auth.register().get_json()["accessToken"]
    old_cookie = auth.refresh_cookie()
    # Back to back, no sleeps: tokens of the changing session issued within
    # the same second as the change, just before it.
    second = auth.refresh().get_json()["accessToken"]
    old_cookie_2 = auth.refresh_cookie()
    state = get_state(app)
    old_claims = state.access_tokens.verify(second)
    response = change(auth, second)
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()) == {"accessToken"}
    renewed = response.get_json()["accessToken"]
    new_cookie = auth.refresh_cookie()
    assert new_cookie not in (None, old_cookie, old_cookie_2)
    # Whatever second the cutoff fell in: a token of the old session with
    # exactly the cutoff's second as ``iat``, which whole-second cutoffs let
    # through, is refused too.
    with engine.connect() as conn:
        cutoff = as_utc(
            conn.execute(select(_cutoffs.c.tokens_valid_after)).scalar_one()
        )
    same_second = state.access_tokens.issue(
        old_claims["sub"], old_claims["sid"], now=cutoff
    )
    for token in (first, second, same_second):
        assert_code(protected(app, token), 401, "TOKEN_REVOKED")
    # The new session works, with a new id; the old cookie is refused.
    assert state.access_tokens.verify(renewed)["sid"] != old_claims["sid"]
    assert protected(app, renewed).status_code == 200
    stale = Auth(app.test_client())
    stale.set_refresh_cookie(old_cookie_2 or "")
    assert_code(stale.refresh(), 401, "REFRESH_TOKEN_REVOKED")
    assert auth.refresh().status_code == 200


@pytest.mark.requirement("ASVS-5.0-7.2.4")
def test_the_caller_gets_a_new_session_with_its_cookie(app: Flask) -> None:
    auth = Auth(app.test_client())
    token = auth.register().get_json()["accessToken"]
    other = Auth(app.test_client())
    other_token = other.login().get_json()["accessToken"]
    response = change(auth, token)
    assert response.status_code == 200
    [cookie] = [
        h
        for h in response.headers.getlist("Set-Cookie")
        if h.startswith("refresh_token=")
    ]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/api/auth"):
        assert attribute in cookie
    renewed = response.get_json()["accessToken"]
    [listed] = protected(app, renewed).get_json()["sessions"]
    assert listed["current"] is True
    assert_code(protected(app, other_token), 401, "TOKEN_REVOKED")
    assert_code(other.refresh(), 401, "REFRESH_TOKEN_REVOKED")


# -- Redis refusing writes (issue 9, item 5) ------------------------------------


def refuse_writes(client: Any, refuse: bool) -> None:
    """``maxmemory`` below what Redis already uses, and no eviction: every
    write is refused with an OOM error, reads still work."""
    import redis

    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1 if refuse else 0)
    if refuse:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            client.set("probe", 1)
    else:
        client.set("probe", 1)


def test_password_change_when_redis_refuses_writes(
    make_app: Any, engine: Engine, own_redis: Any
) -> None:
    port = own_redis.connection_pool.connection_kwargs["port"]
    app = make_app(
        TOKENAUTH_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        TOKENAUTH_REDIS_PREFIX=f"t{uuid.uuid4().hex[:8]}:",
        TOKENAUTH_RATELIMIT_STORAGE_URI="memory://",
    )
    auth = Auth(app.test_client())
    token = auth.register().get_json()["accessToken"]
    cookie = auth.refresh_cookie()
    other = Auth(app.test_client())
    other_token = other.login().get_json()["accessToken"]
    before = stored_hash(engine)
    assert protected(app, token).status_code == 200
    assert protected(app, other_token).status_code == 200

    refuse_writes(own_redis, True)
    response = change(auth, token)
    assert_code(response, 503, "REVOCATION_STORE_UNAVAILABLE")
    assert "Set-Cookie" not in response.headers
    # Nothing was applied: same hash, no session revoked, none started.
    assert stored_hash(engine) == before
    assert live_sessions(engine) == 2
    assert auth.refresh_cookie() == cookie
    # The other session still refreshes, and its tokens still work (no
    # revocation was announced to the other processes either).
    response = other.refresh()
    assert response.status_code == 200
    other_token = response.get_json()["accessToken"]
    assert protected(app, other_token).status_code == 200
    assert protected(app, token).status_code == 200

    refuse_writes(own_redis, False)
    response = change(auth, token)  # the client's retry
    assert response.status_code == 200, response.get_json()
    assert verify_password(NEW, stored_hash(engine), rounds=4)
    renewed = response.get_json()["accessToken"]
    assert protected(app, renewed).status_code == 200
    assert_code(other.refresh(), 401, "REFRESH_TOKEN_REVOKED")
    assert_code(protected(app, other_token), 401, "TOKEN_REVOKED")
    assert_code(protected(app, token), 401, "TOKEN_REVOKED")
    assert live_sessions(engine) == 1
