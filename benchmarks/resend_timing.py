"""``POST /verify-email/resend {"email"}``: does the answer's time tell what
the address is?

::

    .venv/bin/python -m benchmarks.resend_timing              # 41 rounds
    .venv/bin/python -m benchmarks.resend_timing --rounds 101 --smtp-ms 200

An app with ``TOKENAUTH_EMAIL_VERIFICATION = "required"`` and a sender that
takes ``--smtp-ms`` per mail (a slow mail server), with three accounts: one
waiting for verification (it gets a mail), one verified, one whose
per-address limit is spent.  Each round times one request per kind of
address, an unknown one included, in an order shuffled each round, through the
app's test client; between requests the after-response work (lookup, link,
mail) is waited for, untimed, so that it never lands in the next request's
time.  The ratio of a kind is the median over rounds of its time over the
unknown address's in the same round (load that comes and goes cancels
out): 1.00 means the answer cannot tell it from an address with no
account, and the mail's ``--smtp-ms`` is nowhere in it.  Each timed request
follows an untimed one of the same shape, so that none inherits an idle
pause (the outbox sleeping through a slow mail) that the others do not.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Flask

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._state import get_state
from flask_tokenauth._verification import mark_verified
from flask_tokenauth.testing import wait_for_mail

PASSWORD = "correct horse battery"
KINDS = ("unknown", "waiting", "verified", "limited")
#: Its per-address limit spent before the first round.
LIMITED = "limited@example.com"


def make_app(folder: Path, smtp_seconds: float) -> Flask:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{folder / 'resend.sqlite3'}")
    upgrade(engine)
    app = Flask(__name__)
    app.config.update(
        TOKENAUTH_ACCESS_SECRET="a" * 32,
        TOKENAUTH_REFRESH_SECRET="b" * 32,
        TOKENAUTH_BCRYPT_ROUNDS=4,
        TOKENAUTH_EMAIL_VERIFICATION="required",
        TOKENAUTH_MAIL_SENDER=lambda message: time.sleep(smtp_seconds),
        TOKENAUTH_LINK_BASE_URL="https://app.example",
        TOKENAUTH_RATELIMIT_MAIL="1000000/minute",
        TOKENAUTH_RATELIMIT_REGISTER="1000000/minute",
        # One resend per address: each round's addresses are new, but for
        # the limited one, whose one resend is spent before the first round.
        TOKENAUTH_RATELIMIT_MAIL_ADDRESS="1/day",
    )
    TokenAuth(engine=engine).init_app(app)
    app.register_blueprint(auth_bp)
    register(app, LIMITED)
    app.test_client().post("/api/auth/verify-email/resend", json={"email": LIMITED})
    wait_for_mail(app)
    return app


def register(app: Flask, email: str, verified: bool = False) -> None:
    app.test_client().post(
        "/api/auth/register", json={"email": email, "password": PASSWORD}
    )
    if verified:
        with app.app_context():
            state = get_state()
            user = state.user_store.find_by_email(email)
            with state.db.begin() as conn:
                mark_verified(state, conn, user, email)


def addresses(app: Flask, index: int) -> dict[str, str]:
    """This round's address of each kind (untimed set-up)."""
    found = {
        "unknown": f"nobody-{index}@example.com",
        "waiting": f"waiting-{index}@example.com",
        "verified": f"verified-{index}@example.com",
        "limited": LIMITED,
    }
    register(app, found["waiting"])
    register(app, found["verified"], verified=True)
    wait_for_mail(app)
    return found


def timed(app: Flask, client: Any, email: str) -> float:
    # Untimed, the same request every time: whatever the previous one left
    # (an outbox that slept through a slow mail leaves a cold CPU), each
    # timed request follows a like one.
    client.post("/api/auth/verify-email/resend", json={"email": LIMITED})
    started = time.perf_counter()
    response = client.post("/api/auth/verify-email/resend", json={"email": email})
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.get_json()
    wait_for_mail(app)  # untimed: the next request starts on a quiet outbox
    return elapsed


def shuffled(kinds: tuple[str, ...]) -> list[str]:
    order = list(kinds)
    random.shuffle(order)
    return order


def measure(app: Flask, rounds: int) -> dict[str, tuple[float, float]]:
    """Per kind: median ms, and the median of its per-round ratio to the
    unknown address."""
    client = app.test_client()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    ratios: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for index in range(-3, rounds):  # 3 rounds of warm-up, not counted
        emails = addresses(app, index)
        # Shuffled, not rotated: a rotation keeps the same neighbours.
        order = shuffled(KINDS)
        got = {kind: timed(app, client, emails[kind]) for kind in order}
        if index < 0:
            continue
        for kind in KINDS:
            times[kind].append(got[kind])
            ratios[kind].append(got[kind] / got["unknown"])
    return {
        kind: (statistics.median(times[kind]) * 1000, statistics.median(ratios[kind]))
        for kind in KINDS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--smtp-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder), args.smtp_ms / 1000)
        results = measure(app, args.rounds)
    print(f"smtp {args.smtp_ms:.0f} ms per mail, {args.rounds} rounds")
    print(f"{'address':<10}{'ms':>8}{'/ unknown':>11}")
    for name, (ms, ratio) in results.items():
        print(f"{name:<10}{ms:>8.2f}{ratio:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
