"""Does an endpoint that takes an address answer an account's address in
the same time as an unknown one?  Paired timing, on PostgreSQL.

::

    .venv/bin/python -m benchmarks.enumeration                 # 400 pairs
    .venv/bin/python -m benchmarks.enumeration --pairs 2000

Rows: ``/forgot-password`` for an account's address against itself (the A/A
control: what a ratio looks like when there is no difference to find), for
an account's address vs an unknown one, and
``/register`` in enumeration-safe mode (``TOKENAUTH_REGISTER_ENUMERATION_SAFE``)
for a taken address vs a new one.  Each pair times one request of each,
in turns (the order alternating pair by pair), through the app's test
client (WSGI, in process: no network noise to hide a difference in).  The
work each request deferred (lookup, token, mail: see ``_outbox``) is
waited for between requests, untimed, so that it never lands in the other
variant's timing.  Printed: the median of each variant, and the median of
the per-pair ratio (load that comes and goes cancels out), with the 5th
and 95th percentiles of that ratio.  1.00 means a client cannot tell them
apart from the time of the answer.

Mail goes to a sender that drops it; rate limits are off (they would
refuse the load); bcrypt at cost 4 (a new account's hash is made after the
response, untimed: it only makes the run longer).  The database is a
throwaway one on the server of ``BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1/test``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, text

from benchmarks.run import databases
from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.testing import wait_for_mail

PASSWORD = "correct horse battery"


@contextmanager
def throwaway_database() -> Iterator[str]:
    url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
    url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    name = f"tokenauth_enum_{uuid.uuid4().hex[:10]}"
    databases(url, [name])
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        databases(url, [name], drop=True)


def make_app(url: str, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        TOKENAUTH_ACCESS_SECRET="a" * 32,
        TOKENAUTH_REFRESH_SECRET="b" * 32,
        TOKENAUTH_DATABASE_URL=url,
        TOKENAUTH_RATELIMIT_ENABLED=False,
        TOKENAUTH_COOKIE_SECURE=False,
        # The new accounts' hashing is deferred (untimed): kept short.
        TOKENAUTH_BCRYPT_ROUNDS=4,
        TOKENAUTH_MAIL_SENDER=lambda message: None,
        TOKENAUTH_LINK_BASE_URL="http://app.test",
        **config,
    )
    TokenAuth(app)
    app.register_blueprint(auth_bp)
    return app


Request = Callable[[], Any]


def timed(request: Request, status: int) -> float:
    started = time.perf_counter()
    response = request()
    elapsed = time.perf_counter() - started
    assert response.status_code == status, response.get_data(as_text=True)
    wait_for_mail()  # the deferred work, untimed
    return elapsed


def pairs(a: Request, b: Request, status: int, count: int) -> list[tuple[float, float]]:
    for _ in range(20):  # warm-up: connections, templates, code paths
        timed(a, status)
        timed(b, status)
    measured = []
    for index in range(count):
        if index % 2:
            first, second = timed(a, status), timed(b, status)
        else:
            second = timed(b, status)
            first = timed(a, status)
        measured.append((first, second))
    return measured


def report(name: str, a: str, b: str, measured: list[tuple[float, float]]) -> None:
    ratios = sorted(x / y for x, y in measured)
    cut = statistics.quantiles(ratios, n=20)
    print(
        f"{name:<34}{statistics.median(x for x, _ in measured) * 1000:>9.3f}"
        f"{statistics.median(y for _, y in measured) * 1000:>9.3f}"
        f"{statistics.median(ratios):>8.3f}{cut[0]:>8.3f}{cut[-1]:>8.3f}"
        f"   ({a} / {b})"
    )


def forgot_password(
    url: str, count: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The A/A control (the account's address against itself: the noise
    floor of this machine and of the pairing), then account vs unknown."""
    app = make_app(url)
    client = app.test_client()
    result = app.test_cli_runner().invoke(
        args=["tokenauth", "create-user", "ada@example.com", "--password", PASSWORD]
    )
    assert result.exit_code == 0, result.output

    def ask(email: str) -> Request:
        return lambda: client.post("/api/auth/forgot-password", json={"email": email})

    known, unknown = ask("ada@example.com"), ask("nobody@example.com")
    return pairs(known, known, 202, count), pairs(known, unknown, 202, count)


def safe_register(url: str, count: int) -> list[tuple[float, float]]:
    app = make_app(url, TOKENAUTH_REGISTER_ENUMERATION_SAFE=True)
    client = app.test_client()
    body = {"email": "ada@example.com", "password": PASSWORD}
    assert client.post("/api/auth/register", json=body).status_code == 202
    wait_for_mail()

    def taken() -> Any:
        return client.post("/api/auth/register", json=body)

    def new() -> Any:
        email = f"new-{uuid.uuid4().hex[:12]}@example.com"
        return client.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD}
        )

    return pairs(taken, new, 202, count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args(argv)
    with throwaway_database() as url:
        engine = create_engine(url)
        upgrade(engine)
        print(f"{'endpoint':<34}{'a ms':>9}{'b ms':>9}{'a/b':>8}{'p5':>8}{'p95':>8}")
        control, measured = forgot_password(url, args.pairs)
        report("/forgot-password (A/A control)", "account", "account", control)
        report("/forgot-password", "account", "unknown", measured)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tokenauth_users"))
        report(
            "/register (enumeration-safe)",
            "taken",
            "new",
            safe_register(url, args.pairs),
        )
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
