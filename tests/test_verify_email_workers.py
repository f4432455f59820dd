"""Address verification served by two gunicorn workers, on SQLite and
PostgreSQL, with the mail through the real SMTP server: one link clicked
many times at once in both workers verifies once, and ``required`` login
follows the store whichever worker answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from .conftest import PASSWORD
from .mail_workers import mail_app_workers
from .servers import Server
from .smtp import token_in
from .verify_email_app import claims

pytestmark = pytest.mark.slow

ADA = "ada@example.com"


@pytest.fixture
def workers(
    smtp_server: Any, engine: Engine, database_url: str, tmp_path: Path
) -> Iterator[Server]:
    with mail_app_workers(
        "verify",
        smtp_server,
        database_url,
        tmp_path,
        TOKENAUTH_EMAIL_VERIFICATION="required",
        TOKENAUTH_RATELIMIT_MAIL="1000/minute",
    ) as server:
        yield server


def post(server: Server, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/api/auth{path}", json=body, timeout=10)


def test_one_link_clicked_at_once_in_both_workers_verifies_once(
    workers: Server, smtp_server: Any
) -> None:
    registered = post(workers, "/register", {"email": ADA, "password": PASSWORD})
    assert registered.status_code == 201
    assert "accessToken" not in registered.json()
    credentials = {"email": ADA, "password": PASSWORD}
    assert post(workers, "/login", credentials).json()["code"] == "EMAIL_NOT_VERIFIED"
    (message,) = smtp_server.wait_for(ADA)
    token = token_in(message)

    n = 8
    barrier = threading.Barrier(n)
    answers: list[int] = []

    def click() -> None:
        barrier.wait()
        answers.append(post(workers, "/verify-email", {"token": token}).status_code)

    threads = [threading.Thread(target=click) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == [200] + [400] * (n - 1)

    # Whichever worker answers now, the store says verified.
    for _ in range(4):
        login = post(workers, "/login", credentials)
        assert login.status_code == 200, login.text
        assert claims(login.json()["accessToken"])["email_verified"] is True
