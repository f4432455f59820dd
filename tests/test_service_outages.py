"""Real outages of PostgreSQL and Redis, stopped and started by their PIDs
while an in-process app serves requests.

* PostgreSQL down: every endpoint that needs it answers 503
  ``DATABASE_UNAVAILABLE`` (never 500), writes nothing, spends no refresh
  token, and the same app serves again once the server is back.
* Redis down: protected requests fail closed with 503
  ``REVOCATION_STORE_UNAVAILABLE`` (or pass with
  ``TOKENAUTH_REVOCATION_FAIL_OPEN``), rate limits fall back to memory, and
  everything resumes by itself when Redis returns.

The servers are private ones of this test run (:mod:`tests.services`), on
ports of their own: the shared servers of ``TEST_POSTGRES_URL`` and
``TEST_REDIS_URL`` serve other tests and CI at the same time and are never
touched here.  A server is down for exactly the ``with ....stopped()``
block (stopped by its PID, waited for until it has exited) and started
again on the same port when the block ends, whatever happened in it.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import auth_bp, current_claims, current_user, login_required
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._state import get_state
from flask_tokenauth.models import metadata

from .conftest import Auth, base_config, bearer, throwaway_database
from .services import (  # noqa: F401 (the last two are fixtures)
    PrivatePostgres,
    PrivateRedis,
    private_postgres_fixture,
    private_redis_fixture,
)

pytestmark = pytest.mark.slow

TABLES = tuple(table.name for table in metadata.sorted_tables)


# -- the services --------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres(private_postgres: PrivatePostgres) -> Iterator[str]:
    """A database of this module's own on the private PostgreSQL server."""
    with throwaway_database(private_postgres.url, "tokenauth_outage_") as url:
        yield url


@pytest.fixture(scope="module")
def database(postgres: str) -> Iterator[Engine]:
    """The test database, migrated, through an engine that pings every
    connection it hands out: the tests count rows with it right after an
    outage, however short, and it must not be the one to notice it."""
    engine = make_engine(postgres, {"pool_pre_ping": True})
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_server(private_redis: PrivateRedis) -> Iterator[Any]:
    """A client of the private Redis."""
    client = private_redis.client()
    yield client
    client.close()


@pytest.fixture
def prefix(redis_server: Any) -> Iterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards
    (the rate limiter's keys hold it in their middle)."""
    prefix = f"tokenauth-outage:{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = list(redis_server.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        redis_server.delete(*keys)


# -- the app ---------------------------------------------------------------------


def close_redis_clients(app: Flask) -> None:
    """Close the app's Redis connections now, rather than leave their
    sockets to the garbage collector (whose ResourceWarning, at whatever
    later test it runs, pyproject.toml ignores for port 6379 only)."""
    from redis import Redis

    state = get_state(app)
    for client in (
        getattr(state.revocation, "_redis", None),  # None: not the Redis store
        getattr(state.limiter.storage, "storage", None),  # a Counter: memory://
    ):
        if isinstance(client, Redis):
            client.close()


@pytest.fixture
def make_app(
    postgres: str, database: Engine, private_redis: PrivateRedis
) -> Iterator[Any]:
    """``make_app(**config)``: an app with its own engine on the test
    database (``TOKENAUTH_DATABASE_URL``, so ``pool_pre_ping`` is on), a
    protected view that loads the user and one that reads only the claims."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(base_config(TOKENAUTH_DATABASE_URL=postgres, **config))
        app.register_blueprint(auth_bp)

        @app.get("/api/profile")
        @login_required
        def profile() -> Any:
            return {"email": current_user.email}

        @app.get("/api/claims")
        @login_required
        def claims() -> Any:
            return {"sid": current_claims["sid"]}

        apps.append(app)
        return app

    yield factory
    for app in apps:
        get_state(app).db.engine.dispose()
        close_redis_clients(app)
    # Free the apps now: each app's revocation-mirror thread ends once its
    # app is gone, rather than outlive the private Redis and log its
    # reconnection attempts at the end of the run.
    apps.clear()
    gc.collect()


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }


def session_revoked(engine: Engine, app: Flask, token: str) -> bool:
    sid = get_state(app).access_tokens.verify(token)["sid"]
    with engine.connect() as conn:
        revoked_at = conn.execute(
            text("SELECT revoked_at FROM tokenauth_sessions WHERE id = :id"),
            {"id": sid},
        ).scalar_one()
    return revoked_at is not None


def wait_until_stale(*apps: Flask) -> None:
    """Wait until each app's copy of the Redis denylist knows that it is
    no longer current (its subscription is lost), at most 10 seconds."""
    deadline = time.monotonic() + 10
    for app in apps:
        store: Any = get_state(app).revocation
        while store._mirror.lookup("", "")[2]:  # (revoked, cutoff, current)
            assert time.monotonic() < deadline, "the Redis outage went unnoticed"
            time.sleep(0.01)


def get(app: Flask, path: str, token: str) -> Any:
    return app.test_client().get(path, headers=bearer(token))


def assert_503(response: Any, code: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["code"] == code
    assert response.headers["Retry-After"] == "1"
    # Nothing said about the cookie: it stays as it was.
    assert "Set-Cookie" not in response.headers


def assert_revoked(response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["code"] == "TOKEN_REVOKED"


# -- PostgreSQL ------------------------------------------------------------------


def test_postgres_outage(
    make_app: Any,
    database: Engine,
    prefix: str,
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
) -> None:
    # Revocation in Redis: verifying a token needs no database.
    app = make_app(TOKENAUTH_REDIS_URL=private_redis.url, TOKENAUTH_REDIS_PREFIX=prefix)
    # Revocation in the database: every protected request needs it.
    db_app = make_app(TOKENAUTH_REVOCATION="database")
    auth = Auth(app.test_client())
    email = new_email()
    response = auth.register(email)
    assert response.status_code == 201
    token = response.get_json()["accessToken"]
    cookie = auth.refresh_cookie()
    assert get(app, "/api/profile", token).status_code == 200
    assert get(db_app, "/api/claims", token).status_code == 200
    before = counts(database)

    with private_postgres.stopped():
        started = time.monotonic()
        code = "DATABASE_UNAVAILABLE"
        assert_503(Auth(app.test_client()).register(new_email()), code)
        assert_503(auth.login(email), code)
        assert_503(auth.refresh(), code)
        assert auth.refresh_cookie() == cookie
        assert_503(auth.logout(), code)
        assert auth.refresh_cookie() == cookie
        assert_503(get(app, "/api/profile", token), code)  # loads the user
        assert_503(get(app, "/api/auth/sessions", token), code)
        response = app.test_client().post("/api/auth/logout-all", headers=bearer(token))
        assert_503(response, code)
        # The token itself is checked without the database.
        assert get(app, "/api/claims", token).status_code == 200
        assert_503(get(db_app, "/api/claims", token), code)
        assert_503(Auth(db_app.test_client()).login(email), code)
        # A refused connection fails fast: no request hangs.
        assert time.monotonic() - started < 10

    # Nothing was written, nothing was spent.
    assert counts(database) == before
    # The same apps serve again at once: pool_pre_ping drops the dead
    # connections and opens new ones.
    assert get(app, "/api/profile", token).get_json() == {"email": email}
    assert get(db_app, "/api/claims", token).status_code == 200
    # The token presented during the outage rotates: it was not spent.
    response = auth.refresh()
    assert response.status_code == 200, response.get_json()
    assert auth.refresh_cookie() not in (None, cookie)
    assert auth.login(email).status_code == 200
    assert Auth(app.test_client()).register(new_email()).status_code == 201
    assert auth.logout().status_code == 200


# -- Redis -------------------------------------------------------------------------


def login(app: Flask, email: str) -> tuple[Auth, str]:
    auth = Auth(app.test_client())
    response = auth.login(email)
    assert response.status_code == 200, response.get_json()
    return auth, response.get_json()["accessToken"]


def limiter_keys(redis_server: Any, prefix: str, ip: str) -> list[Any]:
    return list(redis_server.scan_iter(match=f"*{prefix}ratelimit*{ip}*", count=1000))


def test_redis_outage(
    make_app: Any,
    database: Engine,
    prefix: str,
    redis_server: Any,
    private_redis: PrivateRedis,
) -> None:
    redis = {"TOKENAUTH_REDIS_URL": private_redis.url, "TOKENAUTH_REDIS_PREFIX": prefix}
    app = make_app(
        TOKENAUTH_TRUSTED_PROXIES=1, TOKENAUTH_RATELIMIT_LOGIN="3/minute", **redis
    )
    open_app = make_app(TOKENAUTH_REVOCATION_FAIL_OPEN=True, **redis)
    # Database revocation, Redis only for the rate limits.
    db_app = make_app(TOKENAUTH_REVOCATION="database", **redis)

    email = new_email()
    assert Auth(app.test_client()).register(email).status_code == 201
    live, live_token = login(app, email)  # stays logged in
    gone, gone_token = login(app, email)  # logged out before the outage
    assert gone.logout().status_code == 200
    assert_revoked(get(app, "/api/claims", gone_token))
    assert_revoked(get(db_app, "/api/claims", gone_token))
    out, out_token = login(app, email)  # logs out during the outage
    out_cookie = out.refresh_cookie()
    loose, loose_token = login(open_app, email)  # same, on the fail-open app
    ip = "203.0.113.7"
    assert (
        Auth(app.test_client())
        .login(email, headers={"X-Forwarded-For": "203.0.113.1"})
        .status_code
        == 200
    )
    assert limiter_keys(redis_server, prefix, "203.0.113.1")  # limits in Redis

    with private_redis.stopped():
        # Until its subscription thread sees the connection close, an app
        # still trusts its copy of the denylist (current a moment ago): wait
        # for that, as a request arriving a little later would.
        wait_until_stale(app, open_app)
        started = time.monotonic()
        code = "REVOCATION_STORE_UNAVAILABLE"
        # Fail closed: a token that cannot be checked is not accepted.
        assert_503(get(app, "/api/claims", live_token), code)
        assert_503(get(app, "/api/profile", live_token), code)
        # Fail open: accepted.
        assert get(open_app, "/api/claims", live_token).status_code == 200
        # What this process's copy of the denylist holds is still refused.
        assert_revoked(get(app, "/api/claims", gone_token))
        # The database store needs no Redis and still knows the revocation.
        assert get(db_app, "/api/claims", live_token).status_code == 200
        assert_revoked(get(db_app, "/api/claims", gone_token))

        # Logout: the revocation store cannot record it, so the fail-closed
        # app answers 503, keeps the cookie and revokes nothing (the retry
        # below works) ...
        assert_503(out.logout(), code)
        assert out.refresh_cookie() == out_cookie
        assert not session_revoked(database, app, out_token)
        # ... while the fail-open app answers 200.
        assert loose.logout().status_code == 200
        assert session_revoked(database, open_app, loose_token)

        # Rate limits fall back to memory: requests are served, and limited.
        headers = {"X-Forwarded-For": ip}
        for _ in range(3):
            response = Auth(app.test_client()).login(new_email(), headers=headers)
            assert response.get_json()["code"] == "INVALID_CREDENTIALS"
        response = Auth(app.test_client()).login(email, headers=headers)
        assert response.status_code == 429
        assert response.get_json()["code"] == "RATE_LIMITED"
        response = live.refresh()
        assert response.status_code == 200
        live_token = response.get_json()["accessToken"]
        assert Auth(app.test_client()).register(new_email()).status_code == 201
        login(open_app, email)
        assert time.monotonic() - started < 10

    # Revocation resumes at once: redis-py reconnects by itself.
    assert get(app, "/api/profile", live_token).get_json() == {"email": email}
    # The logout refused during the outage works when retried.
    assert out.logout().status_code == 200
    # The database store still refuses what was revoked before and during
    # the outage (for the Redis store, see the two tests below).
    for token in (gone_token, out_token, loose_token):
        assert_revoked(get(db_app, "/api/claims", token))

    # The rate limiter goes back to Redis by itself; it retries the store
    # with a growing back-off (1, 2, 4, ... seconds), so allow for it.
    deadline = time.monotonic() + 20
    probe = 0
    while not limiter_keys(redis_server, prefix, f"203.0.114.{probe}"):
        assert time.monotonic() < deadline, "rate limits did not return to Redis"
        probe += 1
        time.sleep(0.2)
        Auth(app.test_client()).login(
            new_email(), headers={"X-Forwarded-For": f"203.0.114.{probe}"}
        )
    # And new revocations are enforced again.
    assert live.logout().status_code == 200
    assert_revoked(get(app, "/api/claims", live_token))


def test_revocation_across_a_redis_restart(
    make_app: Any, database: Engine, prefix: str, private_redis: PrivateRedis
) -> None:
    """A token revoked before Redis restarts should stay revoked.  This
    Redis keeps nothing on disk, so its denylist is empty afterwards."""
    redis = {"TOKENAUTH_REDIS_URL": private_redis.url, "TOKENAUTH_REDIS_PREFIX": prefix}
    app = make_app(**redis)
    db_app = make_app(TOKENAUTH_REVOCATION="database", **redis)
    auth = Auth(app.test_client())
    token = auth.register(new_email()).get_json()["accessToken"]
    assert auth.logout().status_code == 200
    assert_revoked(get(app, "/api/claims", token))
    with private_redis.stopped():
        # Known revoked from this process's copy, so refused even now.
        assert_revoked(get(app, "/api/claims", token))
    assert_revoked(get(db_app, "/api/claims", token))
    # The process that saw the revocation keeps it in its copy of the
    # denylist, although Redis restarted empty.  (A process started after the
    # restart would not know it: see docs/revocation.md.)
    assert_revoked(get(app, "/api/claims", token))


def test_logout_retried_after_redis_outage(
    make_app: Any, database: Engine, prefix: str, private_redis: PrivateRedis
) -> None:
    """A client told 503 retries the logout once Redis is back: the access
    token of that session should then be refused."""
    app = make_app(TOKENAUTH_REDIS_URL=private_redis.url, TOKENAUTH_REDIS_PREFIX=prefix)
    auth = Auth(app.test_client())
    response = auth.register(new_email())
    token = response.get_json()["accessToken"]
    with private_redis.stopped():
        assert_503(auth.logout(), "REVOCATION_STORE_UNAVAILABLE")
    # A 503 means nothing was revoked: the database rolled back too.
    assert not session_revoked(database, app, token)
    response = auth.logout()
    assert response.get_json() == {"message": "Logged out successfully"}
    assert_revoked(get(app, "/api/claims", token))
