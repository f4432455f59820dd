"""The whole address change over HTTP: the example app in gunicorn with two
worker processes on PostgreSQL, mail through the real SMTP server; after a
cancel, every access token and refresh cookie of the user is refused by
whichever worker gets it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.models import metadata

from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, service_missing
from .servers import (
    Server,
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
    wait_for,
)
from .smtp import token_in
from .test_change_email import NEW, OLD

pytestmark = pytest.mark.slow

TIMEOUT = 10.0
#: Consecutive refusals that make "every worker refuses it" near certain
#: (each request goes to either of the two).
ROUNDS = 12


@pytest.fixture
def database(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, {})
    upgrade(engine)
    yield engine
    with engine.begin() as conn:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture
def server(
    postgres_url: str, database: Engine, smtp_server: Any, tmp_path: Path
) -> Iterator[Server]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=postgres_url,
        TOKENAUTH_REVOCATION="database",
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_COOKIE_SECURE="false",
        TOKENAUTH_RATELIMIT_ENABLED="false",
        TOKENAUTH_LINK_BASE_URL="http://app.test",
    )
    # The example app takes the MAIL_* keys as config here (gunicorn calls
    # the factory with these literal arguments).
    mail = {
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": smtp_server.port,
        "MAIL_DEFAULT_SENDER": "no-reply@app.test",
    }
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, workers=2),
        f"examples.app:create_app({mail!r})",
    ]
    with running_server("change-email", command, env, tmp_path) as running:
        yield running


def test_cancel_ends_every_session_on_every_worker(
    server: Server, smtp_server: Any
) -> None:
    def post(path: str, **kwargs: Any) -> Any:
        return requests.post(f"{server.url}/api/auth{path}", timeout=TIMEOUT, **kwargs)

    credentials = {"email": OLD, "password": PASSWORD}
    assert post("/register", json=credentials).status_code == 201
    logins = [post("/login", json=credentials) for _ in range(3)]
    accesses = [login.json()["accessToken"] for login in logins]
    cookies = [login.cookies["refresh_token"] for login in logins]

    asked = post(
        "/change-email",
        json={"newEmail": NEW, "password": PASSWORD},
        headers={"Authorization": f"Bearer {accesses[0]}"},
    )
    assert asked.status_code == 202, asked.text
    confirm_token = token_in(smtp_server.wait_for(NEW)[-1])
    cancel_token = token_in(smtp_server.wait_for(OLD)[-1])
    assert post("/change-email/confirm", json={"token": confirm_token}).json() == {
        "message": "Email address changed",
        "email": NEW,
    }

    def profile(access: str) -> int:
        return requests.get(
            f"{server.url}/api/profile",
            headers={"Authorization": f"Bearer {access}"},
            timeout=TIMEOUT,
        ).status_code

    # Kept across the confirmation, on both workers.
    assert all(profile(access) == 200 for access in accesses for _ in range(4))

    cancelled = post("/change-email/cancel", json={"token": cancel_token})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["restored"] is True
    for access in accesses:
        # The other worker applies the revocation from the database's log
        # in its own time (TOKENAUTH_REVOCATION_STALENESS): waited for.
        assert wait_for(
            lambda access=access: all(profile(access) == 401 for _ in range(ROUNDS))
        ), access
    for cookie in cookies:
        refused = post("/refresh", headers={"Cookie": f"refresh_token={cookie}"})
        assert refused.status_code == 401
    assert post("/login", json=credentials).status_code == 200
    assert post("/login", json={"email": NEW, "password": PASSWORD}).status_code == 401
