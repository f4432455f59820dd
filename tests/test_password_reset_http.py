"""A password reset over HTTP: the example app in gunicorn with two worker
processes on PostgreSQL.  After a reset, no old refresh cookie and no old
access token works on either worker, including for a thief who keeps
refreshing a stolen session while the reset happens."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import TokenAuth
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._password_reset import issue_link
from flask_tokenauth._state import get_state
from flask_tokenauth.models import metadata

from .conftest import (
    ACCESS_SECRET,
    PASSWORD,
    REFRESH_SECRET,
    base_config,
    service_missing,
)
from .servers import (
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
    wait_for,
)
from .test_revocation_races import AFTER_REVOCATION, MAX_REFRESHES, SURVIVORS, run_race
from .test_revocation_races_http import Client, Login, bearer, cookie_header

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

TIMEOUT = 10.0
TRIALS = 6
ALL_TABLES = ", ".join(table.name for table in metadata.sorted_tables)
FLOW = {
    "TOKENAUTH_MAIL_BACKEND": "log",
    "TOKENAUTH_LINK_BASE_URL": "http://app.test",
}


@dataclass
class Deployment:
    url: str
    engine: Engine
    #: An app of this process on the same database and secrets: it issues
    #: the links (as ``flask tokenauth users reset-link`` does).
    issuer: Flask

    def link_token(self, email: str) -> str:
        with self.issuer.app_context():
            state = get_state(self.issuer)
            user = state.user_store.find_by_email(email)
            assert user is not None
            _, link = issue_link(state, user, email)
        return link.split("#token=")[1]


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
    settings = {
        "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
        "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
        "TOKENAUTH_DATABASE_URL": postgres_url,
        "TOKENAUTH_REVOCATION": "database",
        "TOKENAUTH_BCRYPT_ROUNDS": "4",
        "TOKENAUTH_COOKIE_SECURE": "false",
        "TOKENAUTH_RATELIMIT_ENABLED": "false",
        **FLOW,
    }
    env = server_environment(**settings)
    issuer = Flask(__name__)
    issuer.config.update(base_config(**settings))
    TokenAuth(issuer)
    workdir: Path = tmp_path_factory.mktemp("reset-http")
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, workers=2),
        "examples.app:create_app()",
    ]
    try:
        with running_server("reset", command, env, workdir) as server:
            yield Deployment(server.url, engine, issuer)
    finally:
        get_state(issuer).db.engine.dispose()
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {ALL_TABLES} RESTART IDENTITY"))
        engine.dispose()


def register(url: str) -> str:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    response = requests.post(
        f"{url}/api/auth/register",
        json={"email": email, "password": PASSWORD},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return email


def reset(url: str, token: str, password: str) -> Any:
    return requests.post(
        f"{url}/api/auth/reset-password",
        json={"token": token, "password": password},
        timeout=TIMEOUT,
    )


def refused_everywhere(url: str, login: Login) -> bool:
    """Whether the old access token and refresh cookie are refused, for
    what they are, on several new connections (so by both workers, which
    learn a revocation from the database in their own time)."""
    for _ in range(6):
        profile = requests.get(
            f"{url}/api/profile", headers=bearer(login.token), timeout=TIMEOUT
        )
        refresh = requests.post(
            f"{url}/api/auth/refresh",
            headers=cookie_header(login.cookie),
            timeout=TIMEOUT,
        )
        if profile.status_code != 401 or refresh.status_code != 401:
            return False
        # Refused as revoked: not merely as a user whose hash changed.
        assert profile.json()["code"] == "TOKEN_REVOKED", profile.text
        assert refresh.json()["code"] == "REFRESH_TOKEN_REVOKED", refresh.text
    return True


def test_a_reset_ends_every_session_on_both_workers(deployment: Deployment) -> None:
    url = deployment.url
    email = register(url)
    devices = [Client(url).login(email, PASSWORD) for _ in range(3)]
    for login in devices:
        ok = requests.get(
            f"{url}/api/profile", headers=bearer(login.token), timeout=TIMEOUT
        )
        assert ok.status_code == 200, ok.text
    response = reset(url, deployment.link_token(email), "a brand new passphrase")
    assert response.status_code == 200, response.text
    for login in devices:
        assert wait_for(partial(refused_everywhere, url, login)), login
    assert Client(url).login(email, "a brand new passphrase").token


def thief_loop(
    client: Client, cookie: str, start: threading.Barrier, revoked: threading.Event
) -> str:
    """Refresh the stolen session until refused (or a few times after the
    reset returned); the newest cookie obtained."""
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


def test_no_stolen_session_survives_a_reset_while_it_refreshes(
    deployment: Deployment,
) -> None:
    url = deployment.url
    email = register(url)
    password = PASSWORD
    thief = Client(url)
    survivors: set[str] = set()
    for trial in range(TRIALS):
        stolen = thief.login(email, password)
        new_password = f"new passphrase {uuid.uuid4().hex}"
        token = deployment.link_token(email)
        newest, response = run_race(
            partial(thief_loop, thief, stolen.cookie),
            partial(reset, url, token, new_password),
        )
        assert response.status_code == 200, (trial, response.text)
        password = new_password
        with deployment.engine.connect() as conn:
            survivors.update(conn.execute(text(SURVIVORS)).scalars())
            revoked_at = conn.execute(
                text("SELECT revoked_at FROM tokenauth_sessions WHERE id = :id"),
                {"id": stolen.session_id},
            ).scalar_one()
        assert revoked_at is not None, trial
        last = thief.refresh(newest)
        if last.status_code == 200:
            survivors.add(stolen.session_id)
        else:
            assert last.json()["code"] == "REFRESH_TOKEN_REVOKED", last.text
        assert wait_for(partial(refused_everywhere, url, stolen))
    assert survivors == set(), f"{len(survivors)} of {TRIALS} sessions survived"
