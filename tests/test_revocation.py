"""Immediate revocation: logout, reuse detection, log out everywhere,
password change and an admin revoke stop the affected access tokens at
their next request, with Redis or with the database fallback."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from flask_tokenauth import (
    TokenRevoked,
    current_claims,
    login_required,
    revoke_user_sessions,
)
from flask_tokenauth._revocation import DatabaseRevocation, RedisRevocation

from .conftest import PASSWORD, Auth, bearer


@pytest.fixture(params=["database", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "redis":
        return {
            "TOKENAUTH_REVOCATION": "redis",
            **request.getfixturevalue("redis_config"),
        }
    return {"TOKENAUTH_REVOCATION": "database"}


def protect(app: Flask) -> Flask:
    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"sub": current_claims["sub"], "sid": current_claims["sid"]}

    return app


@pytest.fixture
def rapp(make_app: Any, backend: dict[str, Any]) -> Flask:
    return protect(make_app(**backend))


def session(app: Flask, email: str = "user@example.com") -> tuple[Auth, str]:
    """A logged-in client (registering the user if needed) and its token."""
    auth = Auth(app.test_client())
    response = auth.login(email)
    if response.status_code == 401:
        response = auth.register(email)
    return auth, str(response.get_json()["accessToken"])


def me(app: Flask, token: str) -> Any:
    return app.test_client().get("/me", headers=bearer(token))


def assert_revoked(app: Flask, token: str) -> None:
    response = me(app, token)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Token revoked", "code": "TOKEN_REVOKED"}


@pytest.mark.requirement("ASVS-5.0-7.4.1", "NIST-800-63B-4-5.1")
def test_logout_stops_the_access_token(rapp: Flask) -> None:
    auth, token = session(rapp)
    _other, other_token = session(rapp)
    assert me(rapp, token).status_code == 200
    assert auth.logout().status_code == 200
    assert_revoked(rapp, token)
    assert me(rapp, other_token).status_code == 200  # another session is unaffected


@pytest.mark.requirement("RFC-9700-4.14.2")
def test_reuse_detection_stops_both_sides(rapp: Flask) -> None:
    auth, first = session(rapp)
    stolen = auth.refresh_cookie()
    victim = auth.refresh().get_json()["accessToken"]
    assert stolen is not None
    thief = Auth(rapp.test_client())
    thief.set_refresh_cookie(stolen)
    assert thief.refresh().get_json()["code"] == "REFRESH_TOKEN_REUSED"
    assert_revoked(rapp, first)
    assert_revoked(rapp, victim)


@pytest.mark.requirement("ASVS-5.0-7.4.3")
def test_logout_everywhere(rapp: Flask) -> None:
    tokens = [session(rapp)[1] for _ in range(3)]
    response = rapp.test_client().post(
        "/api/auth/logout-all", headers=bearer(tokens[0])
    )
    assert response.status_code == 200
    assert response.get_json()["revoked"] == 3
    assert response.headers["Set-Cookie"].startswith("refresh_token=;")
    for token in tokens:
        assert_revoked(rapp, token)
    _, fresh = session(rapp)  # logging in again works
    assert me(rapp, fresh).status_code == 200


@pytest.mark.requirement("ASVS-5.0-6.2.2", "ASVS-5.0-7.4.3")
def test_password_change(rapp: Flask) -> None:
    _, other = session(rapp)
    current_auth, current = session(rapp)
    response = current_auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new password"},
        headers=bearer(current),
    )
    assert response.status_code == 200
    renewed = response.get_json()["accessToken"]
    assert me(rapp, renewed).status_code == 200
    assert_revoked(rapp, other)
    assert current_auth.refresh().status_code == 200  # this session stays logged in
    assert Auth(rapp.test_client()).login().status_code == 401
    assert (
        Auth(rapp.test_client()).login(password="a brand new password").status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"currentPassword": "wrong password", "newPassword": "long enough"},
            403,
            "WRONG_PASSWORD",
        ),
        (
            {"currentPassword": PASSWORD, "newPassword": "short"},
            400,
            "INVALID_PASSWORD",
        ),
        ({"currentPassword": PASSWORD}, 400, "VALIDATION_ERROR"),
    ],
)
@pytest.mark.requirement("ASVS-5.0-6.2.3")
def test_password_change_refusals(
    rapp: Flask, body: dict[str, str], status: int, code: str
) -> None:
    auth, token = session(rapp)
    response = auth.client.post("/api/auth/password", json=body, headers=bearer(token))
    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert me(rapp, token).status_code == 200  # nothing was revoked


@pytest.mark.requirement("ASVS-5.0-7.4.5")
def test_admin_revoke(rapp: Flask) -> None:
    _, token = session(rapp)
    user_id = int(me(rapp, token).get_json()["sub"])
    with rapp.app_context():
        assert len(revoke_user_sessions(user_id)) == 1
    assert_revoked(rapp, token)


def test_revocation_off_is_stateless(make_app: Any) -> None:
    app = protect(make_app(TOKENAUTH_REVOCATION="off"))
    auth, token = session(app)
    auth.logout()
    assert me(app, token).status_code == 200  # valid until it expires


def test_redis_entries_expire_with_the_access_tokens(
    make_app: Any, redis_config: dict[str, str], redis_server: Any
) -> None:
    app = protect(make_app(TOKENAUTH_ACCESS_EXPIRES="10m", **redis_config))
    _auth, token = session(app)
    app.test_client().post("/api/auth/logout-all", headers=bearer(token))
    keys = list(
        redis_server.scan_iter(match=redis_config["TOKENAUTH_REDIS_PREFIX"] + "*")
    )
    revocation_keys = [k for k in keys if b"ratelimit" not in k]
    assert len(revocation_keys) == 2  # the session and the user's cutoff
    for key in revocation_keys:
        assert 590 <= redis_server.ttl(key) <= 601


@pytest.mark.parametrize(("fail_open", "status"), [(False, 503), (True, 200)])
def test_unreachable_redis(make_app: Any, fail_open: bool, status: int) -> None:
    app = protect(
        make_app(
            TOKENAUTH_REDIS_URL="redis://127.0.0.1:1/0",
            TOKENAUTH_REVOCATION_FAIL_OPEN=fail_open,
            TOKENAUTH_RATELIMIT_STORAGE_URI="memory://",
        )
    )
    _, token = session(app)
    response = me(app, token)
    assert response.status_code == status
    if status == 503:
        assert response.get_json() == {
            "error": "Revocation store unavailable, try again shortly",
            "code": "REVOCATION_STORE_UNAVAILABLE",
        }
        assert response.headers["Retry-After"] == "1"


def test_revocation_requires_a_redis_url() -> None:
    from flask_tokenauth import ConfigurationError
    from flask_tokenauth._config import Settings

    from .conftest import base_config

    with pytest.raises(ConfigurationError, match="TOKENAUTH_REDIS_URL"):
        Settings.from_mapping(base_config(TOKENAUTH_REVOCATION="redis"))


def test_default_store_without_redis_is_the_database(client: FlaskClient) -> None:
    """The default store without Redis is the database."""
    assert client.application.extensions["tokenauth"].settings.revocation == "database"


def wait_for_the_next_second(after: float, limit: float = 5.0) -> None:
    """Return once the clock has left the second ``after`` falls in (at most
    ``limit`` seconds): a cutoff taken now is then later than a token issued
    at ``after`` even at one-second resolution."""
    deadline = time.monotonic() + limit
    while int(time.time()) <= int(after):
        assert time.monotonic() < deadline, "the clock did not advance"
        time.sleep(0.01)


def test_password_change_refuses_the_changing_sessions_older_tokens(
    rapp: Flask,
) -> None:
    """The promise of docs/security.md: every access token issued before a password
    change is refused, the changing session's own included; only the one
    the change answers with works."""
    auth, old = session(rapp)
    assert me(rapp, old).status_code == 200  # and now cached
    wait_for_the_next_second(
        jwt.decode(old, options={"verify_signature": False})["iat"]
    )
    response = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new password"},
        headers=bearer(old),
    )
    assert response.status_code == 200
    assert me(rapp, response.get_json()["accessToken"]).status_code == 200
    refused = me(rapp, old)
    assert refused.status_code == 401
    assert refused.get_json()["code"] in {"TOKEN_REVOKED", "TOKEN_INVALID"}


@pytest.mark.parametrize(("offset", "revoked"), [(-10, False), (10, True)])
def test_database_store_applies_the_users_cutoff(
    make_app: Any, engine: Engine, offset: int, revoked: bool
) -> None:
    """A live session does not save a token issued before the user's
    ``tokens_valid_after``: the per-request query, which answers while the
    process's copy of the revocations is not current."""
    app = make_app(TOKENAUTH_REVOCATION="database")
    state = app.extensions["tokenauth"]
    assert isinstance(state.revocation, DatabaseRevocation)
    state.revocation.copy = None
    _, token = session(app)
    claims = state.access_tokens.verify(token)
    state.revocation.check(claims)  # the session is live
    cutoff = datetime.fromtimestamp(claims["iat"] + offset, timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tokenauth_user_cutoffs (user_id, tokens_valid_after)"
                " VALUES (:id, :at)"
            ),
            {"at": cutoff, "id": claims["sub"]},
        )
    if revoked:
        with pytest.raises(TokenRevoked):
            state.revocation.check(claims)
    else:
        state.revocation.check(claims)


@pytest.mark.parametrize("mirror", [True, False], ids=["mirror", "redis"])
@pytest.mark.parametrize(("offset", "revoked"), [(-10, False), (10, True)])
def test_redis_store_applies_the_users_cutoff(
    make_app: Any,
    redis_config: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    mirror: bool,
    offset: int,
    revoked: bool,
) -> None:
    """The same with Redis, read through this process's mirror or from
    Redis itself."""
    app = make_app(TOKENAUTH_REVOCATION="redis", **redis_config)
    store = app.extensions["tokenauth"].revocation
    assert isinstance(store, RedisRevocation)
    if not mirror:
        monkeypatch.setattr(store, "_mirror", None)
    _, token = session(app)
    claims = app.extensions["tokenauth"].access_tokens.verify(token)
    store.check(claims)  # the session is live; starts the mirror
    if mirror:
        # Until the mirror is current, a check falls back to Redis.
        local = store._mirror
        assert local is not None
        deadline = time.monotonic() + 10
        while not local.lookup(claims["sid"], claims["sub"])[2]:
            assert time.monotonic() < deadline, "the mirror never became current"
            time.sleep(0.01)
    store.revoke_user(
        claims["sub"], datetime.fromtimestamp(claims["iat"] + offset, timezone.utc)
    )
    if revoked:
        with pytest.raises(TokenRevoked):
            store.check(claims)
    else:
        store.check(claims)
