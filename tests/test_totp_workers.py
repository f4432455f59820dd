"""A second factor served by two gunicorn workers, on SQLite and
PostgreSQL: one authenticator code, or one recovery code, sent many times
at once to both workers (each request a session of its own waiting for
its factor) upgrades exactly one session; the recovery-code notice goes
out once, from a forked worker's outbox, through the real SMTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from sqlalchemy import Engine

from .conftest import PASSWORD
from .mail_workers import mail_app_workers
from .servers import Server
from .smtp import text_of

pytestmark = pytest.mark.slow

ADA = "ada@example.com"
N = 8


@pytest.fixture
def workers(
    smtp_server: Any, engine: Engine, database_url: str, tmp_path: Path
) -> Iterator[Server]:
    with mail_app_workers(
        "totp",
        smtp_server,
        database_url,
        tmp_path,
        # The limits are tested on their own; here every request must reach
        # the code.
        TOKENAUTH_RATELIMIT_LOGIN="1000/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="1000/minute",
        TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES="1000/day",
    ) as server:
        yield server


def post(
    server: Server, path: str, body: Any = None, token: str | None = None
) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.post(
        f"{server.url}/api/auth{path}", json=body, headers=headers, timeout=30
    )


def at_once(n: int, call: Callable[[int], requests.Response]) -> list[int]:
    barrier = threading.Barrier(n)
    answers: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        status = call(i).status_code
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == n
    return answers


def login(server: Server) -> str:
    response = post(server, "/login", {"email": ADA, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


def test_one_code_upgrades_one_session_across_two_workers(
    workers: Server, smtp_server: Any
) -> None:
    assert post(workers, "/register", {"email": ADA, "password": PASSWORD}).ok
    token = login(workers)
    secret = post(workers, "/mfa/totp/enroll", token=token).json()["secret"]
    otp = pyotp.TOTP(secret)
    # Real time here (another process's clock): the step of the confirming
    # code, then a code of the next step, which the window accepts now and
    # in the next step.
    step = int(time.time() // 30)
    confirmed = post(
        workers, "/mfa/totp/confirm", {"code": otp.generate_otp(step)}, token
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recoveryCodes"]

    pending = [login(workers) for _ in range(N)]
    the_code = otp.generate_otp(step + 1)
    answers = at_once(
        N, lambda i: post(workers, "/mfa/verify", {"code": the_code}, pending[i])
    )
    assert sorted(answers) == [200] + [400] * (N - 1), answers

    pending = [login(workers) for _ in range(N)]
    answers = at_once(
        N,
        lambda i: post(workers, "/mfa/verify", {"recoveryCode": codes[0]}, pending[i]),
    )
    assert sorted(answers) == [200] + [400] * (N - 1), answers
    # One notice, from whichever worker won.
    mails = smtp_server.wait_for(ADA)
    assert len(mails) == 1
    assert "9 unused recovery codes left" in " ".join(text_of(mails[0]).split())
