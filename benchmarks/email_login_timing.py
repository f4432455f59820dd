"""Sign in by email: does the time of an answer tell whether an address has
an account?

::

    .venv/bin/python -m benchmarks.email_login_timing            # 15 rounds
    .venv/bin/python -m benchmarks.email_login_timing --rounds 41

The built-in users on a SQLite file, mail handed to a callable that drops
it.  Each round times, in turns (the order alternates), the same request
for an address with an account and for one without, through the app's test
client; a ratio is the median over rounds of ``unknown / account`` within a
round (load that comes and goes cancels out): 1.00 means one request cannot
tell them apart.

- ``/email-login``: the lookup, the token and the mail are made after the
  response, so both answers are the validation and the per-address count.
- ``/email-login/verify``, a wrong code, after a sign-in was asked for both
  addresses: the account's live code and the unknown address's decoy are
  checked and counted the same way.
- The same without the decoy (the unknown address was never asked for, as
  before decoys): no code to check, nothing counted; the difference a
  prober would see if unknown addresses got no decoy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import create_engine

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.mail import Message
from flask_tokenauth.testing import wait_for_mail

ACCOUNT = "ada@example.com"
UNKNOWN = "nobody@example.com"
NEVER_ASKED = "never-asked@example.com"


def drop(message: Message) -> None:
    """The mail sender: delivers nothing (the delivery is not measured)."""


def make_app(folder: Path) -> Flask:
    engine = create_engine(f"sqlite:///{folder / 'timing.sqlite3'}")
    upgrade(engine)
    app = Flask(__name__)
    app.config.update(
        TOKENAUTH_ACCESS_SECRET="a" * 32,
        TOKENAUTH_REFRESH_SECRET="b" * 32,
        TOKENAUTH_BCRYPT_ROUNDS=4,
        TOKENAUTH_RATELIMIT_ENABLED=False,
        TOKENAUTH_EMAIL_LOGIN_ENABLED=True,
        TOKENAUTH_EMAIL_LOGIN_ATTEMPTS=10,
        TOKENAUTH_MAIL_SENDER=drop,
        TOKENAUTH_LINK_BASE_URL="http://app.test",
    )
    TokenAuth(engine=engine).init_app(app)
    app.register_blueprint(auth_bp)
    client = app.test_client()
    response = client.post(
        "/api/auth/register",
        json={"email": ACCOUNT, "password": "correct horse battery"},
    )
    assert response.status_code == 201, response.get_json()
    return app


def ask(client: Any, email: str) -> float:
    started = time.perf_counter()
    response = client.post("/api/auth/email-login", json={"email": email})
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.get_json()
    return elapsed


def guess(client: Any, email: str) -> float:
    started = time.perf_counter()
    response = client.post(
        "/api/auth/email-login/verify", json={"email": email, "code": "000000"}
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.get_json()
    return elapsed


def ratio(
    rounds: int,
    timed: Callable[[str], float],
    unknown: str,
    before: Callable[[], None] = lambda: None,
) -> tuple[float, float, float]:
    """Median ms for the account, for ``unknown``, and the median ratio."""
    mine, theirs, ratios = [], [], []
    for index in range(rounds):
        before()
        pair = [ACCOUNT, unknown] if index % 2 else [unknown, ACCOUNT]
        times = {email: timed(email) for email in pair}
        mine.append(times[ACCOUNT])
        theirs.append(times[unknown])
        ratios.append(times[unknown] / times[ACCOUNT])
    return (
        statistics.median(mine) * 1000,
        statistics.median(theirs) * 1000,
        statistics.median(ratios),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder))
        client = app.test_client()

        def fresh_codes() -> None:
            # A live code (or decoy) for both, at most one wrong guess old.
            for email in (ACCOUNT, UNKNOWN):
                client.post("/api/auth/email-login", json={"email": email})
            wait_for_mail(app)

        def settled_ask(email: str) -> float:
            elapsed = ask(client, email)
            wait_for_mail(app)  # the job runs between requests, not during
            return elapsed

        fresh_codes()
        guess(client, ACCOUNT)  # warm up
        rows = [
            ("/email-login", ratio(args.rounds, settled_ask, UNKNOWN)),
            (
                "verify, decoy",
                ratio(args.rounds, lambda e: guess(client, e), UNKNOWN, fresh_codes),
            ),
            (
                "verify, no decoy",
                ratio(
                    args.rounds, lambda e: guess(client, e), NEVER_ASKED, fresh_codes
                ),
            ),
        ]
    print(f"{'request':<18}{'account ms':>11}{'unknown ms':>11}{'ratio':>7}")
    for label, (mine, theirs, median) in rows:
        print(f"{label:<18}{mine:>11.2f}{theirs:>11.2f}{median:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
