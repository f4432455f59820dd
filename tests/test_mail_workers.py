"""The outbox under gunicorn: two forked workers, the app loaded (and its
outbox thread started, by a mail) in the master before the fork.  A thread
does not survive a fork: each worker must start its own, or its mails wait
for ever."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade

from .conftest import ACCESS_SECRET, REFRESH_SECRET, service_missing
from .mail_app import TOKEN
from .servers import (
    Server,
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
)
from .smtp import text_of

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(smtp_server: Any, tmp_path: Path) -> Iterator[Server]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    url = f"sqlite:///{tmp_path / 'tokenauth.sqlite3'}"
    engine = make_engine(url, {})
    upgrade(engine)
    engine.dispose()
    env = server_environment(
        MAILAPP_TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        MAILAPP_TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        MAILAPP_TOKENAUTH_DATABASE_URL=url,
        MAILAPP_TOKENAUTH_MAIL_BACKEND="smtp",
        MAILAPP_TOKENAUTH_LINK_BASE_URL="http://app.test",
        MAILAPP_MAIL_SERVER=smtp_server.host,
        MAILAPP_MAIL_PORT=str(smtp_server.port),
        MAILAPP_MAIL_DEFAULT_SENDER="no-reply@app.test",
        MAILAPP_PRELOAD_TO="master@example.com",
    )
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, threads=2, workers=2),
        "--preload",
        "tests.mail_app:create_app()",
    ]
    with running_server("mail", command, env, tmp_path) as server:
        yield server


def test_forked_workers_deliver_mail(workers: Server, smtp_server: Any) -> None:
    # The master's own mail went before the fork.
    smtp_server.wait_for("master@example.com")
    master = workers.process.pid

    run = uuid.uuid4().hex[:8]
    addresses = [f"w{n}-{run}@example.com" for n in range(12)]

    def send(to: str) -> int:
        response = requests.post(f"{workers.url}/send", params={"to": to}, timeout=10)
        assert response.status_code == 200
        return int(response.json()["pid"])

    # Concurrent, so both workers are likely to take some (not required:
    # every worker is a forked one).
    with ThreadPoolExecutor(4) as pool:
        pids = set(pool.map(send, addresses))
    assert master not in pids
    for to in addresses:
        (message,) = smtp_server.wait_for(to)
        assert TOKEN in text_of(message)
