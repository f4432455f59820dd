"""Sign in by email served by two gunicorn workers, on SQLite and
PostgreSQL, with the mail through the real SMTP server: the code mailed
from a forked worker's outbox; guesses spread over both workers never
exceed the attempts; the right code sent many times at once, to both,
starts one session."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from flask_tokenauth.models import EmailToken

from .conftest import PASSWORD
from .mail_workers import mail_app_workers
from .servers import Server
from .smtp import text_of, token_in

pytestmark = pytest.mark.slow

ADA = "ada@example.com"
ATTEMPTS = 3


@pytest.fixture
def workers(
    smtp_server: Any, engine: Engine, database_url: str, tmp_path: Path
) -> Iterator[Server]:
    with mail_app_workers(
        "email-login",
        smtp_server,
        database_url,
        tmp_path,
        TOKENAUTH_EMAIL_LOGIN_ENABLED="true",
        TOKENAUTH_EMAIL_LOGIN_ATTEMPTS=str(ATTEMPTS),
        TOKENAUTH_RATELIMIT_MAIL="1000/minute",
        TOKENAUTH_RATELIMIT_MAIL_ADDRESS="1000/minute",
    ) as server:
        yield server


def post(server: Server, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/api/auth{path}", json=body, timeout=30)


def at_once(n: int, call: Callable[[int], requests.Response]) -> list[int]:
    barrier = threading.Barrier(n)
    answers: list[int] = []

    def worker(i: int) -> None:
        barrier.wait()
        answers.append(call(i).status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == n
    return answers


def mailed(server: Server, smtp_server: Any, count: int) -> tuple[str, str]:
    """Ask for a sign-in mail; the token and the code of the ``count``-th."""
    assert post(server, "/email-login", {"email": ADA}).status_code == 202
    message = smtp_server.wait_for(ADA, count=count)[-1]
    code = re.search(r"^\s*(\d{6})\s*$", text_of(message), re.M)
    assert code, text_of(message)
    return token_in(message), code.group(1)


def test_guesses_and_spends_across_two_workers(
    workers: Server, smtp_server: Any, engine: Engine
) -> None:
    registered = post(workers, "/register", {"email": ADA, "password": PASSWORD})
    assert registered.status_code == 201

    # Many wrong codes at once, spread over both workers: ATTEMPTS counted,
    # then the code (right one included) is dead.
    token, code = mailed(workers, smtp_server, 1)
    guesses = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, 4 * ATTEMPTS + 1)]
    answers = at_once(
        len(guesses),
        lambda i: post(
            workers, "/email-login/verify", {"email": ADA, "code": guesses[i]}
        ),
    )
    assert set(answers) == {400}
    with engine.connect() as conn:
        attempts = conn.execute(select(EmailToken.attempts)).scalar_one()
    assert attempts == ATTEMPTS
    dead = post(workers, "/email-login/verify", {"email": ADA, "code": code})
    assert dead.json()["code"] == "CODE_INVALID"

    # The right code sent eight times at once: one session.
    token, code = mailed(workers, smtp_server, 2)
    answers = at_once(
        8, lambda i: post(workers, "/email-login/verify", {"email": ADA, "code": code})
    )
    assert sorted(answers) == [200] + [400] * 7
    # And the link of the same mail died with it.
    spent = post(workers, "/email-login/verify", {"token": token})
    assert spent.json()["code"] == "LINK_INVALID"
