"""A refresh in flight while its session is revoked never outlives the
revocation (threads on real PostgreSQL).

A thief refreshes a stolen session in a tight loop while the victim revokes
it, by each mechanism there is: log out the others, log out everywhere,
change the password, revoke that one session, or present an older token of
the family (reuse detection).  Both start together at a barrier.  After each
trial no refresh token of a revoked session may still be spendable, and the
newest cookie the thief got is refused.

Before the rotation gated on the session row, some trials of every
mechanism left a survivor: the revoking UPDATE of the tokens missed the
successor inserted by a rotation that was in flight, and that successor then
rotated for ever in a session marked revoked.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from .conftest import PASSWORD, Auth, bearer

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

TRIALS = 50
#: The thief stops after this many refreshes whatever happens...
MAX_REFRESHES = 200
#: ... or this many more once the victim's revocation has returned (enough
#: for a survivor to show itself: it keeps rotating).
AFTER_REVOCATION = 3
TRIAL_TIMEOUT = 20.0

#: Spendable refresh tokens of revoked sessions: what must never exist.
SURVIVORS = """
SELECT t.family_id FROM tokenauth_refresh_tokens t
JOIN tokenauth_sessions s ON s.id = t.family_id
WHERE s.revoked_at IS NOT NULL
  AND t.revoked_at IS NULL AND t.used_at IS NULL AND t.expires_at > now()
"""


def refresh_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("refresh_token", path="/api/auth")
    assert cookie is not None
    return cookie.value


def session_id(access_token: str) -> str:
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


R = TypeVar("R")


def run_race(
    thief: Callable[[threading.Barrier, threading.Event], str],
    revoke: Callable[[], R],
) -> tuple[str, R]:
    """Run ``thief(start, revoked)`` in a thread and ``revoke()`` here, both
    released by one barrier; ``revoked`` is set once ``revoke`` returned.
    Returns the thief's newest cookie and what ``revoke`` returned."""
    start = threading.Barrier(2, timeout=TRIAL_TIMEOUT)
    revoked = threading.Event()
    newest: list[str] = []
    failed: list[BaseException] = []

    def run_thief() -> None:
        try:
            newest.append(thief(start, revoked))
        except BaseException as e:  # raised again in this thread, below
            failed.append(e)
            start.abort()

    runner = threading.Thread(target=run_thief)
    runner.start()
    try:
        start.wait()
        result = revoke()
    except threading.BrokenBarrierError:
        pass  # the thief failed before the start
    finally:
        revoked.set()
        runner.join(TRIAL_TIMEOUT * 2)
    assert not runner.is_alive()
    if failed:
        raise failed[0]
    return newest[0], result


@dataclass
class Stolen:
    """The session the thief refreshes: its id and its newest cookie."""

    id: str
    cookie: str


@dataclass
class Race:
    """Runs the trials of one mechanism for one user and keeps the tally."""

    app: Flask
    engine: Engine
    email: str
    password: str = PASSWORD
    survivors: set[str] = field(default_factory=set)
    thief_refreshes: int = 0

    def login(self) -> tuple[FlaskClient, str]:
        """A new session of the user: its client (holding the cookie) and
        its access token."""
        client = self.app.test_client()
        response = Auth(client).login(self.email, self.password)
        assert response.status_code == 200, response.get_json()
        return client, str(response.get_json()["accessToken"])

    def steal(self) -> Stolen:
        client, token = self.login()
        return Stolen(session_id(token), refresh_cookie(client))

    def thief(
        self, stolen: Stolen, start: threading.Barrier, revoked: threading.Event
    ) -> str:
        """Refresh in a loop until refused, or a few times after the
        revocation returned; return the newest cookie obtained."""
        client = self.app.test_client()
        newest = stolen.cookie
        after = 0
        deadline = time.monotonic() + TRIAL_TIMEOUT
        start.wait()
        for _ in range(MAX_REFRESHES):
            client.set_cookie("refresh_token", newest, path="/api/auth")
            response = client.post("/api/auth/refresh")
            if response.status_code != 200:
                # Refused, never failed: no deadlock, no 503.
                assert response.status_code == 401, response.get_json()
                break
            self.thief_refreshes += 1
            newest = refresh_cookie(client)
            if revoked.is_set():
                after += 1
            if after >= AFTER_REVOCATION or time.monotonic() > deadline:
                break
        return newest

    def trial(self, stolen: Stolen, revoke: Callable[[], TestResponse]) -> TestResponse:
        """One race: the thief against ``revoke`` (the victim's request,
        whose response is returned); then count the survivors."""
        newest, response = run_race(partial(self.thief, stolen), revoke)
        with self.engine.connect() as conn:
            revoked_at = conn.execute(
                text("SELECT revoked_at FROM tokenauth_sessions WHERE id = :id"),
                {"id": stolen.id},
            ).scalar_one()
            self.survivors.update(conn.execute(text(SURVIVORS)).scalars())
        assert revoked_at is not None
        # The thief's newest cookie is dead, and stays dead.
        client = self.app.test_client()
        client.set_cookie("refresh_token", newest, path="/api/auth")
        last = client.post("/api/auth/refresh")
        if last.status_code == 200:
            self.survivors.add(stolen.id)
        else:
            assert last.get_json()["code"] == "REFRESH_TOKEN_REVOKED"
        return response

    def check(self) -> None:
        assert self.survivors == set(), (
            f"{len(self.survivors)} of {TRIALS} revoked sessions kept a"
            f" spendable refresh token ({self.thief_refreshes} refreshes by the"
            " thief)"
        )


@pytest.fixture
def race(make_app: Any, engine: Engine) -> Race:
    app = make_app(TOKENAUTH_RATELIMIT_ENABLED=False)
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    assert Auth(app.test_client()).register(email).status_code == 201
    return Race(app, engine, email)


def test_logout_others(race: Race) -> None:
    victim, token = race.login()
    revoke = partial(victim.post, "/api/auth/logout-others", headers=bearer(token))
    for _ in range(TRIALS):
        assert race.trial(race.steal(), revoke).status_code == 200
    race.check()


def test_logout_all(race: Race) -> None:
    for _ in range(TRIALS):
        victim, token = race.login()
        revoke = partial(victim.post, "/api/auth/logout-all", headers=bearer(token))
        assert race.trial(race.steal(), revoke).status_code == 200
    race.check()


def test_password_change(race: Race) -> None:
    """Only "the stolen session is revoked and stays revoked" is asserted:
    what the caller's own session gets back is not this test's concern."""
    for _ in range(TRIALS):
        victim, token = race.login()
        stolen = race.steal()
        new_password = f"new-{uuid.uuid4().hex}"
        revoke = partial(
            victim.post,
            "/api/auth/password",
            headers=bearer(token),
            json={"currentPassword": race.password, "newPassword": new_password},
        )
        response = race.trial(stolen, revoke)
        assert response.status_code == 200, response.get_json()
        race.password = new_password
    race.check()


def test_revoke_one_session(race: Race) -> None:
    victim, token = race.login()
    for _ in range(TRIALS):
        stolen = race.steal()
        path = f"/api/auth/sessions/{stolen.id}"
        revoke = partial(victim.delete, path, headers=bearer(token))
        assert race.trial(stolen, revoke).status_code == 200
    race.check()


def test_reuse_detection(race: Race) -> None:
    """The victim presents the token the thief already rotated."""
    for _ in range(TRIALS):
        thief, token = race.login()
        spent = refresh_cookie(thief)
        assert thief.post("/api/auth/refresh").status_code == 200
        stolen = Stolen(session_id(token), refresh_cookie(thief))
        victim = race.app.test_client()
        victim.set_cookie("refresh_token", spent, path="/api/auth")
        response = race.trial(stolen, partial(victim.post, "/api/auth/refresh"))
        assert response.get_json()["code"] == "REFRESH_TOKEN_REUSED"
    race.check()
