"""The level of a session through two gunicorn workers, on SQLite and
PostgreSQL: a pending session refreshed on either worker stays pending;
upgraded on one, it refreshes at ``aal`` 2 on both; the pending refresh
token the upgrade replaced is refused by both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from .assurance_helpers import claims_of, give_totp
from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, service_missing
from .servers import (
    Server,
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
    wait_for,
)

pytestmark = pytest.mark.slow
CLOSE = {"Connection": "close"}


@pytest.fixture
def workers(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[Server]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    env = server_environment(
        ASSURANCEAPP_TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        ASSURANCEAPP_TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        ASSURANCEAPP_TOKENAUTH_DATABASE_URL=database_url,
        ASSURANCEAPP_TOKENAUTH_BCRYPT_ROUNDS="4",
        ASSURANCEAPP_TOKENAUTH_COOKIE_SECURE="false",
        ASSURANCEAPP_TOKENAUTH_RATELIMIT_ENABLED="false",
    )
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, threads=4, workers=2),
        "tests.assurance_app:create_app()",
    ]
    with running_server("assurance", command, env, tmp_path) as server:
        yield server


def on_both(server: Server, call: Any) -> dict[str, Any]:
    """``call(session)`` until each of the two workers has answered one;
    the answers by worker."""
    seen: dict[str, Any] = {}

    def answered_by_both() -> bool:
        response = call()
        seen.setdefault(response.headers["X-Worker"], response)
        return len(seen) == 2

    assert wait_for(answered_by_both, 60)
    return seen


def test_the_level_through_two_workers(workers: Server, engine: Engine) -> None:
    url = f"{workers.url}/api/auth"
    body = {"email": "ada@example.com", "password": PASSWORD}
    registered = requests.post(f"{url}/register", json=body, timeout=30)
    give_totp(engine, claims_of(registered.json()["accessToken"])["sub"])
    browser = requests.Session()
    login = browser.post(f"{url}/login", json=body, timeout=30)
    assert login.json()["mfaRequired"] is True

    def refresh() -> requests.Response:
        # A new connection each time: one kept alive stays with one worker.
        response = browser.post(f"{url}/refresh", headers=CLOSE, timeout=30)
        assert response.status_code == 200, response.text
        return response

    for response in on_both(workers, refresh).values():
        assert claims_of(response.json()["accessToken"])["mfa_state"] == "pending"
    token = refresh().json()["accessToken"]
    pending_cookie = browser.cookies.get("refresh_token")
    upgraded = browser.post(
        f"{workers.url}/api/factor-done",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert upgraded.status_code == 200, upgraded.text
    for response in on_both(workers, refresh).values():
        claims = claims_of(response.json()["accessToken"])
        assert claims["aal"] == 2 and "mfa_state" not in claims
        assert claims["amr"] == ["pwd", "otp", "mfa"]

    def replay() -> requests.Response:
        response = requests.post(
            f"{url}/refresh",
            cookies={"refresh_token": pending_cookie},
            headers=CLOSE,
            timeout=30,
        )
        assert response.status_code == 401
        assert response.json()["code"] == "REFRESH_TOKEN_REVOKED"
        return response

    on_both(workers, replay)
    assert refresh().status_code == 200  # the upgraded session lives on
