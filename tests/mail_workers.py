"""``tests.mail_app`` under gunicorn with two workers, mailing through the
real SMTP server: the fixture body the worker tests of the mail flows share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .conftest import ACCESS_SECRET, REFRESH_SECRET, service_missing
from .servers import (
    Server,
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
)

#: The address the app mails while it is preloaded (before the fork).
PRELOAD_TO = "master@example.com"


@contextmanager
def mail_app_workers(
    name: str,
    smtp_server: Any,
    database_url: str,
    workdir: Path,
    **settings: str,
) -> Iterator[Server]:
    """This app under gunicorn, 2 workers of 4 threads, ``--preload`` (the
    master has mailed before it forks), mailing through ``smtp_server``,
    with the test secrets and ``settings`` (``TOKENAUTH_...`` keys, without
    the ``MAILAPP_`` prefix).  The preload's mail is delivered and cleared
    before the server is handed over."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    env = server_environment(
        MAILAPP_TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        MAILAPP_TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        MAILAPP_TOKENAUTH_DATABASE_URL=database_url,
        MAILAPP_TOKENAUTH_BCRYPT_ROUNDS="4",
        MAILAPP_TOKENAUTH_COOKIE_SECURE="false",
        MAILAPP_TOKENAUTH_MAIL_BACKEND="smtp",
        MAILAPP_TOKENAUTH_LINK_BASE_URL="http://app.test",
        MAILAPP_MAIL_SERVER=smtp_server.host,
        MAILAPP_MAIL_PORT=str(smtp_server.port),
        MAILAPP_MAIL_DEFAULT_SENDER="no-reply@app.test",
        MAILAPP_PRELOAD_TO=PRELOAD_TO,
        **{f"MAILAPP_{key}": value for key, value in settings.items()},
    )
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, threads=4, workers=2),
        "--preload",
        "tests.mail_app:create_app()",
    ]
    with running_server(name, command, env, workdir) as server:
        smtp_server.wait_for(PRELOAD_TO)
        smtp_server.clear()
        yield server
