"""Unknown login vs wrong password, per hash scheme of a host's users table.

::

    .venv/bin/python -m benchmarks.login_timing            # 9 rounds
    .venv/bin/python -m benchmarks.login_timing --rounds 21 --schemes bcrypt-12

A host user store (``SQLAlchemyUserStore`` over a SQLite table of the host's
own) with the users' hashes in one scheme; each round times one login with
an unknown name and one with a known name and a wrong password, in turns,
through the app's test client.  The ratio is the median over rounds of
``unknown / wrong`` within a round (load that comes and goes cancels out):
1.00 means one request cannot tell them apart.  ``fixed dummy`` is the
behaviour before issue 16 (an unknown login always checked against a
werkzeug scrypt hash, whatever the users' scheme), set here through
``dummy_hash=``; ``users' scheme`` is the default now.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from flask import Flask
from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import generate_password_hash

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.userstore import SQLAlchemyUserStore

PASSWORD = "correct horse battery"
SCHEMES: dict[str, Callable[[], str]] = {
    "bcrypt-12": lambda: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode(),
    "pbkdf2-600k": lambda: generate_password_hash(PASSWORD, "pbkdf2:sha256:600000"),
    "pbkdf2-260k": lambda: generate_password_hash(PASSWORD, "pbkdf2:sha256:260000"),
    "scrypt": lambda: generate_password_hash(PASSWORD, "scrypt"),
}


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))


def make_app(folder: Path, scheme: str, store: SQLAlchemyUserStore) -> Flask:
    engine = create_engine(f"sqlite:///{folder / scheme}.sqlite3")
    upgrade(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if session.query(User).count() == 0:
            session.add(User(username="alice", password_hash=SCHEMES[scheme]()))
            session.commit()
    app = Flask(__name__)
    app.config.update(
        TOKENAUTH_ACCESS_SECRET="a" * 32,
        TOKENAUTH_REFRESH_SECRET="b" * 32,
        TOKENAUTH_RATELIMIT_ENABLED=False,
        TOKENAUTH_REGISTER_ENABLED=False,
        TOKENAUTH_PASSWORD_CHANGE_ENABLED=False,
    )
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)
    return app


def timed_login(client: Any, username: str) -> float:
    started = time.perf_counter()
    response = client.post(
        "/api/auth/login", json={"username": username, "password": "wrong"}
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 401, response.get_json()
    return elapsed


def measure(app: Flask, rounds: int) -> tuple[float, float, float]:
    """Median ms of an unknown login, of a wrong password, and the median
    of their per-round ratio."""
    client = app.test_client()
    timed_login(client, "nobody")  # the first login samples the table
    unknown, wrong, ratios = [], [], []
    for index in range(rounds):
        pair = ["nobody", "alice"] if index % 2 else ["alice", "nobody"]
        times = {name: timed_login(client, name) for name in pair}
        unknown.append(times["nobody"])
        wrong.append(times["alice"])
        ratios.append(times["nobody"] / times["alice"])
    return (
        statistics.median(unknown) * 1000,
        statistics.median(wrong) * 1000,
        statistics.median(ratios),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="a subset")
    args = parser.parse_args(argv)
    fixed = generate_password_hash("dummy for unknown logins")
    print(f"{'scheme':<13}{'dummy':<15}{'unknown ms':>11}{'wrong ms':>10}{'ratio':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for scheme in args.schemes.split(","):
            for label, dummy in (("fixed dummy", fixed), ("users' scheme", None)):
                store = SQLAlchemyUserStore(User, login="username", dummy_hash=dummy)
                app = make_app(Path(folder), scheme, store)
                unknown, wrong, ratio = measure(app, args.rounds)
                print(
                    f"{scheme:<13}{label:<15}{unknown:>11.1f}{wrong:>10.1f}{ratio:>7.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
