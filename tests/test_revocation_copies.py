"""What docs/revocation.md says of each process's copy of the revocations, for each
store (the database on SQLite and PostgreSQL, Redis), seen from the three
places it names: the process that revokes, a process already running (an
app of its own, whose copy is told nothing directly: it learns from the
database's log or from Redis pub/sub), and a process started after the
revocations (a separate Python process, :mod:`tests.copy_process`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import _dbmirror
from flask_tokenauth._revocation import DatabaseRevocation, RedisRevocation
from flask_tokenauth._sessions import revoke_in

from .conftest import Auth, base_config, bearer
from .servers import wait_for
from .test_revocation_mirror import database_uses, protect

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The store's configuration (the database one with a short staleness
    bound, so that a copy that misses something is soon not current)."""
    if request.param == "redis":
        return {
            "TOKENAUTH_REVOCATION": "redis",
            **request.getfixturevalue("redis_config"),
        }
    return {"TOKENAUTH_REVOCATION": "database", "TOKENAUTH_REVOCATION_STALENESS": 0.2}


class Copy:
    """One app's copy, whichever the store."""

    def __init__(self, app: Flask) -> None:
        self.revocation = app.extensions["tokenauth"].revocation

    @property
    def of_database(self) -> bool:
        return isinstance(self.revocation, DatabaseRevocation)

    def current(self) -> bool:
        if isinstance(self.revocation, DatabaseRevocation):
            assert self.revocation.copy is not None
            return self.revocation.copy.current()
        assert isinstance(self.revocation, RedisRevocation)
        assert self.revocation._mirror is not None
        return self.revocation._mirror.lookup("", "")[2]

    def holds_session(self, sid: str) -> bool:
        if isinstance(self.revocation, DatabaseRevocation):
            assert self.revocation.copy is not None
            return sid in self.revocation.copy.sessions
        assert self.revocation._mirror is not None
        return self.revocation._mirror.lookup(sid, "")[0]

    def only_from_its_source(self) -> Copy:
        """As in another process: not told of this process's revocations
        (a Redis mirror is told only by its own store)."""
        if isinstance(self.revocation, DatabaseRevocation):
            _dbmirror._COPIES.discard(self.revocation.copy)
        return self

    def deaf(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Reads nothing more from the log or the subscription."""
        if isinstance(self.revocation, DatabaseRevocation):
            target: Any = self.revocation.copy
        else:
            target = self.revocation._mirror
        monkeypatch.setattr(target, "apply", lambda *args: None)


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def answer(app: Flask, token: str) -> tuple[int, str | None]:
    response = app.test_client().get("/claims", headers=bearer(token))
    return response.status_code, (response.get_json() or {}).get("code")


def logged_in(app: Flask, email: str) -> tuple[Auth, str]:
    auth = Auth(app.test_client())
    response = auth.login(email)
    if response.status_code == 401:
        response = auth.register(email)
    assert response.status_code in (200, 201), response.get_json()
    return auth, str(response.get_json()["accessToken"])


def a_new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def caught_up(app: Flask, revoker: Flask, copy: Copy) -> None:
    """Wait until ``copy`` has everything ``revoker`` revoked so far: a
    marker session revoked last is held (the log is read in id order, and
    pub/sub delivers one channel's messages in order)."""
    auth, token = logged_in(revoker, a_new_email())
    assert auth.logout().status_code == 200
    sid = claims_of(token)["sid"]
    assert wait_for(lambda: copy.current() and copy.holds_session(sid))


def a_later_process(
    engine: Engine, store: dict[str, Any], tokens: list[str], at_once: bool = False
) -> list[tuple[int, str | None]]:
    """What a process started now answers for ``tokens``, from its copy
    (loaded at its start) once current, or ``at_once`` (its copy not yet
    current: it asks the store)."""
    config = base_config(
        TOKENAUTH_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TOKENAUTH_RATELIMIT_ENABLED=False,
        **store,
    )
    env = dict(
        os.environ,
        COPY_CONFIG=json.dumps(config),
        COPY_TOKENS=json.dumps(tokens),
        COPY_AT_ONCE="1" if at_once else "",
    )
    run = subprocess.run(
        [sys.executable, "-m", "tests.copy_process"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert at_once or result["current"] is True
    return [tuple(a) for a in result["answers"]]


def store_reads(copy: Copy, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each read of Redis by the store from now on (none for the database
    store: :func:`database_uses` counts those)."""
    asked: list[str] = []
    if isinstance(copy.revocation, RedisRevocation):
        real = copy.revocation._redis.mget

        def mget(*args: Any) -> Any:
            asked.append("mget")
            return real(*args)

        monkeypatch.setattr(copy.revocation._redis, "mget", mget)
    return asked


def test_a_logout_applies_at_once_here_and_reaches_a_running_process(
    make_app: Callable[..., Flask],
    engine: Engine,
    store: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the process that revokes, at once and from its copy alone (it
    reads nothing more, and the store is not asked); in a running one, once
    its copy has read the log or the message, from its copy too."""
    revoker = protect(make_app(**store))
    running = protect(make_app(**store))
    auth, token = logged_in(revoker, a_new_email())
    here, there = Copy(revoker), Copy(running).only_from_its_source()
    assert answer(revoker, token) == answer(running, token) == (200, None)
    assert wait_for(lambda: here.current() and there.current())
    here.deaf(monkeypatch)

    assert auth.logout().status_code == 200
    with database_uses(engine) as uses:
        asked = store_reads(here, monkeypatch)
        assert answer(revoker, token) == (401, "TOKEN_REVOKED")
    assert uses == [] and asked == []

    sid = claims_of(token)["sid"]
    assert wait_for(lambda: there.current() and there.holds_session(sid))
    with database_uses(engine) as uses:
        asked = store_reads(there, monkeypatch)
        assert answer(running, token) == (401, "TOKEN_REVOKED")
    assert uses == [] and asked == []


def test_a_later_cutoff_replaces_an_earlier_one_everywhere(
    make_app: Callable[..., Flask], engine: Engine, store: dict[str, Any]
) -> None:
    """Log out everywhere, log in again, then a second user-wide cutoff: the
    token issued between the two is refused after the second by the process
    that revoked, by a running process and by one started later.  (A copy
    that kept the user's first cutoff would let it through.)"""
    revoker = protect(make_app(**store))
    running = protect(make_app(**store))
    there = Copy(running).only_from_its_source()
    email = a_new_email()
    _, first = logged_in(revoker, email)
    assert answer(running, first) == (200, None)
    assert wait_for(there.current)
    # Cutoffs have one-second resolution (a token of the cutoff's own
    # second survives it): each logout-all waits for the next second.
    assert wait_for(lambda: time.time() >= claims_of(first)["iat"] + 1)
    logout_all = revoker.test_client().post(
        "/api/auth/logout-all", headers=bearer(first)
    )
    assert logout_all.status_code == 200
    _, between = logged_in(revoker, email)
    caught_up(running, revoker, there)
    for app in (revoker, running):
        assert answer(app, first) == (401, "TOKEN_REVOKED")
        assert answer(app, between) == (200, None)

    assert wait_for(lambda: time.time() >= claims_of(between)["iat"] + 1)
    # The second cutoff alone, listing no session: as for a session the
    # revocation did not see (a login racing it), only the cutoff refuses
    # its tokens.
    state = revoker.extensions["tokenauth"]
    with revoker.app_context(), state.db.begin() as conn:
        sub = claims_of(between)["sub"]
        assert revoke_in(state, conn, sub, only=[], cutoff=True) == []
    caught_up(running, revoker, there)
    refused = (401, "TOKEN_REVOKED")
    answers = {
        "revoker": answer(revoker, between),
        "running": answer(running, between),
        "later": a_later_process(engine, store, [between])[0],
    }
    assert answers == {"revoker": refused, "running": refused, "later": refused}


@pytest.mark.parametrize("at_once", [False, True], ids=["current", "at-once"])
def test_a_process_started_after_the_revocations_refuses_their_tokens(
    make_app: Callable[..., Flask],
    engine: Engine,
    store: dict[str, Any],
    at_once: bool,
) -> None:
    """A logout, a logout-all and (built-in users, database store) a user
    deleted by raw SQL, all before the process starts: its copy, loaded at
    its start, refuses each token, and a live one still passes; so does the
    process at once, before its copy is current (it asks the store)."""
    revoker = protect(make_app(**store))
    auth, logged_out = logged_in(revoker, a_new_email())
    assert auth.logout().status_code == 200
    _, everywhere = logged_in(revoker, a_new_email())
    assert wait_for(lambda: time.time() >= claims_of(everywhere)["iat"] + 1)
    assert (
        revoker.test_client()
        .post("/api/auth/logout-all", headers=bearer(everywhere))
        .status_code
        == 200
    )
    _, deleted = logged_in(revoker, a_new_email())
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM tokenauth_users WHERE id = :id"),
            {"id": int(claims_of(deleted)["sub"])},
        )
    _, live = logged_in(revoker, a_new_email())

    tokens = [logged_out, everywhere, deleted, live]
    answers = a_later_process(engine, store, tokens, at_once)
    assert answers[:2] == [(401, "TOKEN_REVOKED"), (401, "TOKEN_REVOKED")]
    if Copy(revoker).of_database:
        # The trigger logs the deletion: the copy knows the user is gone.
        # (Redis is not told of deletions: docs/revocation.md promises this of the
        # database store only.)
        assert answers[2] == (401, "USER_NOT_FOUND")
    assert answers[3] == (200, None)
