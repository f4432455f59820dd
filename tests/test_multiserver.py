"""Two gunicorn servers on one PostgreSQL database and one Redis behave as
one deployment: a revocation made on one is enforced by the other at its next
request, the rate limits are counted once for both, and a refresh token
raced to both rotates exactly once.

Each server is the example app (``examples.app:create_app()``) in its own
gunicorn process, configured through the environment only, and run from an
empty working directory so that no ``.env`` of the checkout is read.
Every request carries an ``X-Forwarded-For`` address of its test's own
(``TOKENAUTH_TRUSTED_PROXIES=1``), so the per-IP limits of one test never
count the requests of another.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._refresh import RefreshTokens
from flask_tokenauth.models import metadata

from .conftest import (
    ACCESS_SECRET,
    PASSWORD,
    REDIS_URL,
    REFRESH_SECRET,
    service_missing,
)
from .servers import (
    START_TIMEOUT,
    Server,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)

pytestmark = pytest.mark.slow

#: Per-IP login limit of the servers: the 7th login from one address within
#: a minute is refused, whichever server gets it.
LOGIN_LIMIT = 6
#: The servers' per-account limit on wrong passwords from clients that never
#: logged in to the account (TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES).
ACCOUNT_FAILURES = 5
REQUEST_TIMEOUT = 10.0


@dataclass
class Cluster:
    a: str
    b: str
    engine: Engine
    prefix: str


@pytest.fixture(scope="module")
def cluster(
    postgres_url: str,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    engine = make_engine(postgres_url, {})
    upgrade(engine)
    prefix = f"tokenauth-multiserver:{uuid.uuid4().hex[:12]}:"
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=postgres_url,
        TOKENAUTH_REDIS_URL=REDIS_URL,
        TOKENAUTH_REDIS_PREFIX=prefix,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_COOKIE_SECURE="false",
        TOKENAUTH_RATELIMIT_LOGIN=f"{LOGIN_LIMIT}/minute",
        TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES=f"{ACCOUNT_FAILURES}/minute",
        TOKENAUTH_TRUSTED_PROXIES="1",
    )
    workdir = tmp_path_factory.mktemp("multiserver")
    servers: list[Server] = []
    try:
        command = [gunicorn, *gunicorn_options(gunicorn), "examples.app:create_app()"]
        servers = [start_server(name, command, env, workdir) for name in "AB"]
        wait_until_ready(servers, time.monotonic() + START_TIMEOUT)
        yield Cluster(servers[0].url, servers[1].url, engine, prefix)
    finally:
        for server in servers:
            stop_server(server)
        with engine.begin() as conn:
            names = ", ".join(table.name for table in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        engine.dispose()
        # Flask-Limiter's keys hold the prefix in their middle
        # ("LIMITS:LIMITER/<prefix>ratelimit/..."), the revocation keys at
        # their start.
        keys = list(redis_server.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            redis_server.delete(*keys)


class Client:
    """Plain HTTP calls from one (forwarded) client address, with the
    refresh cookie passed explicitly so that nothing is shared by accident."""

    def __init__(self, ip: str) -> None:
        self.ip = ip

    def headers(self, token: str | None = None, cookie: str | None = None) -> Any:
        headers = {"X-Forwarded-For": self.ip}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = f"refresh_token={cookie}"
        return headers

    def post(
        self,
        url: str,
        json: Any = None,
        token: str | None = None,
        cookie: str | None = None,
    ) -> Any:
        return requests.post(
            url,
            json=json,
            headers=self.headers(token, cookie),
            timeout=REQUEST_TIMEOUT,
        )

    def register(self, server: str, email: str) -> Any:
        body = {"email": email, "password": PASSWORD}
        return self.post(f"{server}/api/auth/register", json=body)

    def login(self, server: str, email: str, password: str = PASSWORD) -> Any:
        body = {"email": email, "password": password}
        return self.post(f"{server}/api/auth/login", json=body)

    def profile(self, server: str, token: str) -> Any:
        return requests.get(
            f"{server}/api/profile",
            headers=self.headers(token),
            timeout=REQUEST_TIMEOUT,
        )


def new_ip() -> str:
    """A client address of its own: TEST-NET-2, random host."""
    number = uuid.uuid4().int
    return f"198.51.{number % 256}.{(number >> 8) % 254 + 1}"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def session_of(response: Any) -> tuple[str, str]:
    """The access token and refresh cookie of a register/login response."""
    assert response.status_code in (200, 201), response.text
    return response.json()["accessToken"], response.cookies["refresh_token"]


def assert_revoked(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "Token revoked", "code": "TOKEN_REVOKED"}
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


#: How long the other server may take to learn of a revocation: Redis hands
#: the pub/sub message over at once, but the server's subscriber thread must
#: be scheduled to apply it, which on a loaded 2-core machine is not always
#: before the next request's thread runs.
DELIVERY_BOUND = 5.0


def assert_revoked_once_delivered(request: Any) -> None:
    """``request()`` (to the server that did not make the revocation) is
    refused as revoked within :data:`DELIVERY_BOUND`, and from then on."""
    deadline = time.monotonic() + DELIVERY_BOUND
    response = request()
    while response.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
        response = request()
    assert_revoked(response)
    assert_revoked(request())


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "error": "Too many requests, try again later",
        "code": "RATE_LIMITED",
    }
    assert 1 <= int(response.headers["Retry-After"]) <= 61


def test_logout_on_one_server_revokes_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    client = Client(new_ip())
    email = new_email()
    token, cookie = session_of(client.register(a, email))
    assert client.profile(b, token).json()["user"]["email"] == email

    logout = client.post(f"{a}/api/auth/logout", cookie=cookie)
    assert logout.status_code == 200
    assert_revoked(client.profile(a, token))  # at once where it was made
    assert_revoked_once_delivered(lambda: client.profile(b, token))


def test_logout_everywhere_on_one_server_revokes_on_the_other(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    client = Client(new_ip())
    email = new_email()
    assert client.register(a, email).status_code == 201
    token_b, cookie_b = session_of(client.login(b, email))
    token_a, _ = session_of(client.login(a, email))
    assert client.profile(a, token_b).status_code == 200
    assert client.profile(b, token_a).status_code == 200

    response = client.post(f"{a}/api/auth/logout-all", token=token_a)
    assert response.status_code == 200
    assert response.json()["revoked"] == 3  # the registration's session too
    assert_revoked(client.profile(a, token_b))  # at once where it was made
    assert_revoked_once_delivered(lambda: client.profile(b, token_b))
    assert_revoked_once_delivered(lambda: client.profile(b, token_a))
    refresh = client.post(f"{b}/api/auth/refresh", cookie=cookie_b)
    assert refresh.json()["code"] == "REFRESH_TOKEN_REVOKED"

    # A new login is not caught by the cutoff, on either server.
    token, _ = session_of(client.login(b, email))
    assert client.profile(a, token).status_code == 200


def test_per_ip_login_limit_is_shared(cluster: Cluster, redis_server: Any) -> None:
    servers = [cluster.a, cluster.b]
    client = Client(new_ip())
    for attempt in range(LOGIN_LIMIT):
        # A different unknown email each time: only the per-IP limit counts.
        response = client.login(servers[attempt % 2], new_email())
        assert response.status_code == 401, (attempt, response.text)
        assert response.json()["code"] == "INVALID_CREDENTIALS"
    for server in servers:
        assert_rate_limited(client.login(server, new_email()))
    # Another address is not affected.
    other = Client(new_ip()).login(cluster.b, new_email())
    assert other.json()["code"] == "INVALID_CREDENTIALS"
    # The count lives in the shared Redis, under the servers' prefix.
    pattern = f"*{cluster.prefix}ratelimit*{client.ip}*"
    assert list(redis_server.scan_iter(match=pattern, count=1000))


def test_per_account_failure_limit_is_shared(cluster: Cluster) -> None:
    servers = [cluster.a, cluster.b]
    email = new_email()
    assert Client(new_ip()).register(cluster.a, email).status_code == 201
    for attempt in range(ACCOUNT_FAILURES):
        # From a new address every time: only the per-account limit counts.
        client = Client(new_ip())
        response = client.login(servers[attempt % 2], email, "wrong password!")
        assert response.status_code == 401, (attempt, response.text)
        assert response.json()["code"] == "INVALID_CREDENTIALS"
    for server in servers:
        # Refused before the password is checked: even the right one.
        assert_rate_limited(Client(new_ip()).login(server, email))
    # Another account is not affected.
    other = new_email()
    assert Client(new_ip()).register(cluster.b, other).status_code == 201
    assert Client(new_ip()).login(cluster.a, other).status_code == 200


def race(
    pool: ThreadPoolExecutor, client: Client, servers: list[str], cookie: str
) -> list[Any]:
    """POST /refresh with ``cookie`` to every server at the same moment."""
    barrier = threading.Barrier(len(servers), timeout=REQUEST_TIMEOUT)

    def refresh(server: str) -> Any:
        barrier.wait()
        return client.post(f"{server}/api/auth/refresh", cookie=cookie)

    return list(pool.map(refresh, servers))


def test_concurrent_refresh_on_both_servers_rotates_once(cluster: Cluster) -> None:
    hasher = RefreshTokens(REFRESH_SECRET.encode(), timedelta(days=1))
    servers = [cluster.a, cluster.b]
    rounds = 6
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(rounds):
            client = Client(new_ip())
            _, cookie = session_of(client.register(servers[round_ % 2], new_email()))
            responses = race(pool, client, servers, cookie)
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200, 401], (round_, [r.text for r in responses])
            winner = next(r for r in responses if r.status_code == 200)
            loser = next(r for r in responses if r.status_code == 401)
            # The loser presented a token already spent: reuse, which revokes
            # the session (no TOKENAUTH_REUSE_INTERVAL here).
            assert loser.json()["code"] == "REFRESH_TOKEN_REUSED"
            cleared = loser.headers["Set-Cookie"]
            assert cleared.startswith("refresh_token=;") and "Max-Age=0" in cleared
            successor = winner.cookies["refresh_token"]
            assert successor != cookie

            with cluster.engine.connect() as conn:
                parent = conn.execute(
                    text(
                        "SELECT id, family_id FROM tokenauth_refresh_tokens"
                        " WHERE token_hash = :h"
                    ),
                    {"h": hasher.hash(cookie)},
                ).one()
                children = conn.execute(
                    text(
                        "SELECT token_hash FROM tokenauth_refresh_tokens"
                        " WHERE parent_id = :id"
                    ),
                    {"id": parent.id},
                ).scalars()
                assert list(children) == [hasher.hash(successor)]
                family = conn.execute(
                    text(
                        "SELECT count(*) FROM tokenauth_refresh_tokens"
                        " WHERE family_id = :f"
                    ),
                    {"f": parent.family_id},
                ).scalar_one()
                assert family == 2
            again = client.post(
                f"{servers[round_ % 2]}/api/auth/refresh", cookie=successor
            )
            assert again.json()["code"] == "REFRESH_TOKEN_REVOKED"
