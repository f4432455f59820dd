"""The race of test_revocation_races.py over HTTP: the example app in
gunicorn with two worker processes on PostgreSQL, a thief refreshing a
stolen session in a loop while the victim revokes it, by each mechanism in
turn.  No trial may leave a spendable refresh token in a revoked session.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import Engine, text

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.models import metadata

from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, service_missing
from .servers import (
    START_TIMEOUT,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)
from .test_revocation_races import (
    AFTER_REVOCATION,
    MAX_REFRESHES,
    SURVIVORS,
    run_race,
)

pytestmark = pytest.mark.slow

#: Five mechanisms, five trials each.
TRIALS = 25
TIMEOUT = 10.0


ALL_TABLES = ", ".join(table.name for table in metadata.sorted_tables)


@dataclass
class Deployment:
    url: str
    engine: Engine


@pytest.fixture(scope="module")
def deployment(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    engine = make_engine(postgres_url, {})
    upgrade(engine)
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=postgres_url,
        TOKENAUTH_REVOCATION="database",
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_COOKIE_SECURE="false",
        TOKENAUTH_RATELIMIT_ENABLED="false",
    )
    workdir = tmp_path_factory.mktemp("races")
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, workers=2),
        "examples.app:create_app()",
    ]
    server = start_server("races", command, env, workdir)
    try:
        wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        yield Deployment(server.url, engine)
    finally:
        stop_server(server)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {ALL_TABLES} RESTART IDENTITY"))
        engine.dispose()


@dataclass
class Login:
    token: str
    cookie: str

    @property
    def session_id(self) -> str:
        claims = jwt.decode(self.token, options={"verify_signature": False})
        return str(claims["sid"])


class Client:
    """One HTTP client (its own keep-alive connection), cookies explicit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.http.post(f"{self.url}{path}", timeout=TIMEOUT, **kwargs)

    def login(self, email: str, password: str) -> Login:
        response = self.post(
            "/api/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return Login(response.json()["accessToken"], response.cookies["refresh_token"])

    def refresh(self, cookie: str) -> Any:
        return self.post("/api/auth/refresh", headers=cookie_header(cookie))


def cookie_header(cookie: str) -> dict[str, str]:
    return {"Cookie": f"refresh_token={cookie}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def thief_loop(
    client: Client, cookie: str, start: threading.Barrier, revoked: threading.Event
) -> str:
    """Refresh until refused (or a few times after the revocation
    returned); the newest cookie obtained."""
    after = 0
    deadline = time.monotonic() + 2 * TIMEOUT
    start.wait()
    for _ in range(MAX_REFRESHES):
        response = client.refresh(cookie)
        if response.status_code != 200:
            assert response.status_code == 401, response.text
            break
        cookie = response.cookies["refresh_token"]
        if revoked.is_set():
            after += 1
        if after >= AFTER_REVOCATION or time.monotonic() > deadline:
            break
    return cookie


def test_no_refresh_survives_a_revocation_over_http(deployment: Deployment) -> None:
    url = deployment.url
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    setup = Client(url)
    registered = setup.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    password = PASSWORD
    victim, thief = Client(url), Client(url)
    survivors: set[str] = set()

    for trial in range(TRIALS):
        own = victim.login(email, password)
        stolen = thief.login(email, password)
        spent = stolen.cookie
        new_password = f"new-{uuid.uuid4().hex}"
        mechanism = trial % 5
        if mechanism == 4:  # reuse detection: the victim holds the spent token
            rotated = thief.refresh(spent)
            assert rotated.status_code == 200, rotated.text
            stolen.cookie = rotated.cookies["refresh_token"]

        sessions = f"{url}/api/auth/sessions/{stolen.session_id}"
        change = {"currentPassword": password, "newPassword": new_password}
        revocations: list[Callable[[], Any]] = [
            partial(victim.post, "/api/auth/logout-others", headers=bearer(own.token)),
            partial(victim.post, "/api/auth/logout-all", headers=bearer(own.token)),
            partial(
                victim.post,
                "/api/auth/password",
                headers=bearer(own.token),
                json=change,
            ),
            partial(
                victim.http.delete, sessions, headers=bearer(own.token), timeout=TIMEOUT
            ),
            partial(victim.refresh, spent),
        ]
        newest, response = run_race(
            partial(thief_loop, thief, stolen.cookie), revocations[mechanism]
        )
        if mechanism == 4:
            assert response.json()["code"] == "REFRESH_TOKEN_REUSED", response.text
        else:
            assert response.status_code == 200, (mechanism, response.text)
        if mechanism == 2:
            password = new_password

        with deployment.engine.connect() as conn:
            survivors.update(conn.execute(text(SURVIVORS)).scalars())
            revoked_at = conn.execute(
                text("SELECT revoked_at FROM tokenauth_sessions WHERE id = :id"),
                {"id": stolen.session_id},
            ).scalar_one()
        assert revoked_at is not None, mechanism
        last = thief.refresh(newest)
        if last.status_code == 200:
            survivors.add(stolen.session_id)
        else:
            assert last.json()["code"] == "REFRESH_TOKEN_REVOKED", last.text

    assert survivors == set(), f"{len(survivors)} of {TRIALS} sessions survived"
