"""The database revocation store's copy of the revocations (``_dbmirror``):
immediate in the process that revokes, seen by other processes through the
log, asked of the database itself while the copy is not current (the
PostgreSQL listener's connection killed), on SQLite and PostgreSQL, in one
process and across gunicorn workers."""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, bindparam, event, insert, inspect, make_url, text

from flask_tokenauth import _dblisten as dblisten
from flask_tokenauth import _dbmirror as dbmirror
from flask_tokenauth import current_claims, login_required
from flask_tokenauth._db import Database
from flask_tokenauth._dbmirror import RevocationCopy
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import downgrade, upgrade
from flask_tokenauth._revocation import DatabaseRevocation
from flask_tokenauth._sessions import purge, revoke_in
from flask_tokenauth.errors import ConfigurationError, TokenRevoked
from flask_tokenauth.models import RevocationEvent, metadata

from .conftest import (
    ACCESS_SECRET,
    PASSWORD,
    REFRESH_SECRET,
    Auth,
    base_config,
    bearer,
    service_missing,
    throwaway_database,
)
from .servers import (
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
    wait_for,
)

#: Generous: CI runs on a loaded 2-core machine.  Conditions are polled, so
#: a passing test takes as long as the behaviour does, not this.
WAIT = 15.0


def protect(app: Flask) -> Flask:
    """A view that never loads the user: only the revocation store refuses
    its token."""

    @app.get("/claims")
    @login_required
    def claims() -> Any:
        return {"sub": current_claims["sub"]}

    return app


def copy_of(app: Flask) -> RevocationCopy:
    revocation = app.extensions["tokenauth"].revocation
    assert isinstance(revocation, DatabaseRevocation)
    assert revocation.copy is not None
    return revocation.copy


def as_another_process(app: Flask) -> RevocationCopy:
    """The app's copy, no longer told of this process's revocations: it
    learns them from the log only, as a copy in another process would."""
    copy = copy_of(app)
    dbmirror._COPIES.discard(copy)
    return copy


def sid_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def code(response: Any) -> tuple[int, str | None]:
    return response.status_code, (response.get_json() or {}).get("code")


@contextmanager
def database_uses(engine: Engine) -> Iterator[list[str]]:
    """Each checkout of a pooled connection of the app's engine."""
    uses: list[str] = []

    def checkout(*args: Any) -> None:
        uses.append("checkout")

    event.listen(engine.pool, "checkout", checkout)
    try:
        yield uses
    finally:
        event.remove(engine.pool, "checkout", checkout)


@pytest.fixture
def make_db_app(make_app: Any) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        config.setdefault("TOKENAUTH_REVOCATION", "database")
        return protect(make_app(**config))

    return factory


def test_a_revocation_is_immediate_in_its_own_process(
    make_db_app: Callable[..., Flask], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logout refuses the session's token at the next request of the same
    process, from the copy alone: what the copy reads from the log is
    ignored here, so only the process's own note can tell it."""
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS=60)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = copy_of(app)
    assert wait_for(copy.current)
    monkeypatch.setattr(copy, "apply", lambda rows: None)
    assert Auth(client).logout().status_code == 200
    with database_uses(engine) as uses:
        assert code(client.get("/claims", headers=bearer(token))) == (
            401,
            "TOKEN_REVOKED",
        )
    assert uses == []  # the copy answered
    assert sid_of(token) in copy.sessions


def test_a_rolled_back_revocation_leaves_the_copy_alone(
    make_db_app: Callable[..., Flask],
) -> None:
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS=60)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    assert wait_for(copy_of(app).current)
    state = app.extensions["tokenauth"]

    with app.app_context(), pytest.raises(RuntimeError), state.db.begin() as conn:
        sub = jwt.decode(token, options={"verify_signature": False})["sub"]
        revoke_in(state, conn, sub, cutoff=True)
        raise RuntimeError("the caller's work fails after the revocation")
    assert copy_of(app).sessions == {}
    assert copy_of(app).cutoffs == {}
    assert client.get("/claims", headers=bearer(token)).status_code == 200


def test_every_app_of_the_process_is_told_at_once(
    make_db_app: Callable[..., Flask], make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logout through an app with another store (Redis here would do the
    same; ``off`` needs nothing) reaches the database store's copy of
    another app on the same database at once, not at its next read."""
    revoking = make_app(TOKENAUTH_REVOCATION="off")
    checking = make_db_app(TOKENAUTH_REVOCATION_STALENESS=60)
    client = revoking.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    checker = checking.test_client()
    assert checker.get("/claims", headers=bearer(token)).status_code == 200
    copy = copy_of(checking)
    assert wait_for(copy.current)
    monkeypatch.setattr(copy, "apply", lambda rows: None)  # no reads
    assert Auth(client).logout().status_code == 200
    assert code(checker.get("/claims", headers=bearer(token))) == (
        401,
        "TOKEN_REVOKED",
    )


def test_another_process_sees_a_revocation_through_the_log(
    make_db_app: Callable[..., Flask],
) -> None:
    """Two apps on one database stand for two processes: each has its own
    copy.  A logout on A reaches B's copy, and B refuses the token."""
    a = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.2)
    b = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.2)
    client_a = a.test_client()
    token = Auth(client_a).register().get_json()["accessToken"]
    client_b = b.test_client()
    assert client_b.get("/claims", headers=bearer(token)).status_code == 200
    copy_b = as_another_process(b)
    assert copy_b is not copy_of(a)
    assert wait_for(copy_b.current)

    assert Auth(client_a).logout().status_code == 200
    sid = sid_of(token)
    assert wait_for(lambda: copy_b.current() and sid in copy_b.sessions)
    assert code(client_b.get("/claims", headers=bearer(token))) == (
        401,
        "TOKEN_REVOKED",
    )


@pytest.mark.sqlite
def test_an_unchanged_sqlite_file_is_not_read(
    make_db_app: Callable[..., Flask], engine: Engine
) -> None:
    """Once the copy is due a read, an unchanged file (``PRAGMA
    data_version``) costs no statement of the app's engine; a commit by
    another connection makes the next one read the log again."""
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS=60)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = as_another_process(app)
    copy.mark_stale()
    assert copy.current()  # reads: the registration changed the file
    for _ in range(3):
        copy.mark_stale()
        with database_uses(engine) as uses:
            assert copy.current()
        assert uses == []

    assert Auth(client).logout().status_code == 200
    copy.mark_stale()
    with database_uses(engine) as uses:
        assert copy.current()
    assert uses == ["checkout"]
    assert sid_of(token) in copy.sessions


def test_logout_everywhere_reaches_another_process(
    make_db_app: Callable[..., Flask],
) -> None:
    a = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.2)
    b = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.2)
    client_a = a.test_client()
    body = Auth(client_a).register().get_json()
    token, sub = body["accessToken"], str(body["user"]["id"])
    client_b = b.test_client()
    assert client_b.get("/claims", headers=bearer(token)).status_code == 200
    copy_b = as_another_process(b)
    assert wait_for(copy_b.current)
    # The next second: a token issued in the cutoff's own second survives.
    iat = jwt.decode(token, options={"verify_signature": False})["iat"]
    assert wait_for(lambda: time.time() >= iat + 1)

    logout_all = client_a.post("/api/auth/logout-all", headers=bearer(token))
    assert logout_all.status_code == 200
    assert wait_for(lambda: copy_b.current() and sub in copy_b.cutoffs)
    assert code(client_b.get("/claims", headers=bearer(token))) == (
        401,
        "TOKEN_REVOKED",
    )


def test_a_deleted_builtin_user_reaches_every_copy(
    make_db_app: Callable[..., Flask], engine: Engine
) -> None:
    """Deleted by raw SQL: the trigger of migration 0005 logs it."""
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.2)
    client = app.test_client()
    body = Auth(client).register().get_json()
    token, sub = body["accessToken"], str(body["user"]["id"])
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = copy_of(app)
    assert wait_for(copy.current)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tokenauth_users WHERE id = :id"), {"id": sub})
    assert wait_for(lambda: copy.current() and sub in copy.gone)
    assert code(client.get("/claims", headers=bearer(token))) == (401, "USER_NOT_FOUND")


def test_a_new_copy_loads_the_revocations_of_one_token_lifetime(
    make_db_app: Callable[..., Flask], engine: Engine
) -> None:
    """Older rows refuse only tokens that have expired: not loaded."""
    app = make_db_app(TOKENAUTH_ACCESS_EXPIRES=60)
    now = datetime.now(timezone.utc)
    rows = [
        {"kind": "session", "session_id": "old", "at": now - timedelta(seconds=70)},
        {"kind": "session", "session_id": "recent", "at": now - timedelta(seconds=50)},
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(RevocationEvent).values(
                kind=bindparam("kind"),
                session_id=bindparam("session_id"),
                user_id="1",
                created_at=bindparam("at"),
            ),
            rows,
        )
    copy = copy_of(app)
    assert wait_for(copy.current)
    assert set(copy.sessions) == {"recent"}


def test_purge_deletes_the_logs_expired_rows(
    make_db_app: Callable[..., Flask], engine: Engine
) -> None:
    app = make_db_app(TOKENAUTH_ACCESS_EXPIRES=60)
    old = datetime.now(timezone.utc) - timedelta(minutes=5)
    with engine.begin() as conn:
        for kind, at in (("session", old), ("session", datetime.now(timezone.utc))):
            conn.execute(
                text(
                    "INSERT INTO tokenauth_revocation_events (kind, session_id,"
                    " user_id, created_at) VALUES (:kind, :sid, '1', :at)"
                ),
                {"kind": kind, "sid": uuid.uuid4().hex, "at": at},
            )
    with app.app_context():
        purge(app.extensions["tokenauth"])
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT created_at FROM tokenauth_revocation_events")
        ).all()
    assert len(left) == 1


# -- the per-request query (while the copy is not current) --------------------


def delete_session_row(engine: Engine, token: str) -> None:
    """The token's session row deleted by raw SQL (by hand, or a purge that
    went too far): no log row, so only the per-request query can know."""
    with engine.begin() as conn:
        for table in ("tokenauth_refresh_tokens", "tokenauth_sessions"):
            column = "family_id" if table == "tokenauth_refresh_tokens" else "id"
            conn.execute(
                text(f"DELETE FROM {table} WHERE {column} = :id"),
                {"id": sid_of(token)},
            )


@pytest.mark.parametrize("builtin_users", [True, False], ids=["builtin", "host"])
def test_the_query_refuses_a_token_whose_session_row_is_gone(
    make_db_app: Callable[..., Flask], engine: Engine, builtin_users: bool
) -> None:
    """Both forms of the per-request query (the built-in users' join, and a
    host's users): no session row, no access."""
    app = make_db_app()
    token = Auth(app.test_client()).register().get_json()["accessToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    store = DatabaseRevocation(app.extensions["tokenauth"].db, builtin_users)
    store.check(claims)  # the session is there: accepted
    delete_session_row(engine, token)
    with pytest.raises(TokenRevoked):
        store.check(claims)


def test_a_copy_not_yet_current_asks_and_refuses_a_gone_session(
    make_db_app: Callable[..., Flask], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the app, while its copy is not current (as while it starts,
    or its listener is down): the token of a session whose row is gone is
    refused by the query, and another session's token still passes."""
    app = make_db_app()
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    other = Auth(app.test_client()).login().get_json()["accessToken"]
    monkeypatch.setattr(copy_of(app), "current", lambda: False)
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    delete_session_row(engine, token)
    with database_uses(engine) as uses:
        assert code(client.get("/claims", headers=bearer(token))) == (
            401,
            "TOKEN_REVOKED",
        )
        assert client.get("/claims", headers=bearer(other)).status_code == 200
    assert len(uses) == 2  # asked the database each time


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "TOKENAUTH_REVOCATION_STALENESS must be positive"),
        ("soon", "TOKENAUTH_REVOCATION_STALENESS must be a timedelta"),
    ],
)
def test_staleness_is_validated(value: Any, message: str) -> None:
    from flask_tokenauth import TokenAuth

    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_REVOCATION_STALENESS=value))
    with pytest.raises(ConfigurationError, match=message):
        TokenAuth(app)


def test_listen_url_must_be_postgresql() -> None:
    from flask_tokenauth import TokenAuth

    app = Flask(__name__)
    app.config.update(
        base_config(TOKENAUTH_REVOCATION_LISTEN_URL="sqlite:///revocations.db")
    )
    with pytest.raises(ConfigurationError, match="TOKENAUTH_REVOCATION_LISTEN_URL"):
        TokenAuth(app)


# -- PostgreSQL: the listener ------------------------------------------------


@pytest.fixture
def pg_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the listener is PostgreSQL's")
    return engine


def listener_activity(engine: Engine, copy: RevocationCopy, column: str) -> Any:
    """``pid`` or ``datname`` of the listener's connection, or None."""
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT {column} FROM pg_stat_activity WHERE application_name = :n"),
            {"n": copy.application_name},
        ).scalar()


def listener_pid(engine: Engine, copy: RevocationCopy) -> int | None:
    pid = listener_activity(engine, copy, "pid")
    return None if pid is None else int(pid)


def revoke_by_hand(engine: Engine, token: str) -> None:
    """Revoke the token's session with raw SQL: no log row, no note, so only
    a query of the database can know."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tokenauth_sessions SET revoked_at = now() WHERE id = :id"),
            {"id": sid_of(token)},
        )


def assert_refused_by_one_query(engine: Engine, client: Any, token: str) -> None:
    with database_uses(engine) as uses:
        assert code(client.get("/claims", headers=bearer(token))) == (
            401,
            "TOKEN_REVOKED",
        )
    assert len(uses) == 1


@pytest.mark.postgresql
def test_the_copy_asks_the_database_while_the_listener_is_down(
    make_db_app: Callable[..., Flask],
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Kill the listener's connection (and keep it from reconnecting): the
    copy is not current, so a revocation the log does not hold (raw SQL on
    the sessions table) is refused at once by the per-request query.  Once
    the listener is back the copy answers alone again."""
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.5)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    other = Auth(app.test_client()).login().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = copy_of(app)
    assert wait_for(copy.current)
    pid = listener_pid(pg_engine, copy)
    assert pid is not None

    real_connect = dblisten._connect
    down = True

    def connect(url: str, name: str) -> Any:
        if down:
            raise OSError("listener kept down by the test")
        return real_connect(url, name)

    monkeypatch.setattr(dblisten, "_connect", connect)
    with pg_engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert wait_for(lambda: not copy.current())
    revoke_by_hand(pg_engine, token)
    with database_uses(pg_engine) as uses:
        assert code(client.get("/claims", headers=bearer(token))) == (
            401,
            "TOKEN_REVOKED",
        )
        assert client.get("/claims", headers=bearer(other)).status_code == 200
    assert len(uses) == 2  # asked the database each time

    down = False
    assert wait_for(copy.current)
    assert listener_pid(pg_engine, copy) not in {None, pid}
    with database_uses(pg_engine) as uses:
        assert client.get("/claims", headers=bearer(other)).status_code == 200
    assert uses == []
    assert "tokenauth revocation listener lost" in caplog.text


@pytest.mark.postgresql
def test_a_silent_listener_stops_answering_after_the_staleness(
    make_db_app: Callable[..., Flask], pg_engine: Engine
) -> None:
    """The listener's connection hangs (a peer gone without a word): no
    error, no notification, only the heartbeat's reads stop.  Once the last
    read is older than the staleness bound the copy is not current and the
    database is asked; when the reads resume, the copy answers again."""
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS=0.5)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = copy_of(app)
    assert wait_for(copy.current)
    hung = threading.Event()
    resume = threading.Event()
    real_apply = copy.apply

    def hanging_apply(rows: Any) -> None:
        hung.set()
        resume.wait(WAIT)
        real_apply(rows)

    copy.apply = hanging_apply  # type: ignore[method-assign]
    try:
        assert hung.wait(WAIT)
        assert wait_for(lambda: not copy.current())
        revoke_by_hand(pg_engine, token)
        assert_refused_by_one_query(pg_engine, client, token)
    finally:
        copy.apply = real_apply  # type: ignore[method-assign]
        resume.set()
    assert wait_for(copy.current)


@pytest.fixture
def other_database(pg_engine: Engine, postgres_url: str) -> Iterator[str]:
    """A second database on the server, migrated: a listener there reads a
    log (an empty one) without error, and hears none of this one's
    notifications (``NOTIFY`` is per database)."""
    with throwaway_database(postgres_url, "tokenauth_listen_") as url:
        engine = make_engine(url, {})
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url


def listener_database(engine: Engine, copy: RevocationCopy) -> str | None:
    database = listener_activity(engine, copy, "datname")
    return None if database is None else str(database)


@pytest.mark.postgresql
def test_the_listener_uses_its_own_url(
    make_db_app: Callable[..., Flask], pg_engine: Engine, other_database: str
) -> None:
    """TOKENAUTH_REVOCATION_LISTEN_URL (where PgBouncer in transaction mode
    would be bypassed): the listener connects there, not to the database URL.
    Shown with a second database on the server: the listener's connection is
    to it."""
    app = make_db_app(TOKENAUTH_REVOCATION_LISTEN_URL=other_database)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = copy_of(app)
    assert wait_for(lambda: listener_database(pg_engine, copy) is not None)
    database = listener_database(pg_engine, copy)
    assert database == make_url(other_database).database
    assert database != pg_engine.url.database


@pytest.mark.postgresql
def test_a_listener_that_cannot_hear_is_not_trusted(
    make_db_app: Callable[..., Flask],
    pg_engine: Engine,
    other_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The listener on another database: its LISTEN is accepted and its
    heartbeat reads succeed, but it hears none of this database's
    notifications (as through PgBouncer in transaction mode).  Its probe
    never arrives, so the copy is never current: each request asks the
    database, which refuses a revocation the log does not hold, and an error
    says which setting to change."""
    caplog.set_level(logging.WARNING, "flask_tokenauth")
    app = make_db_app(
        TOKENAUTH_REVOCATION_LISTEN_URL=other_database,
        TOKENAUTH_REVOCATION_STALENESS=0.2,
    )
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    copy = copy_of(app)
    reads = 0
    real_apply = copy.apply

    def counting_apply(rows: Any) -> None:
        nonlocal reads
        real_apply(rows)
        reads += 1

    copy.apply = counting_apply  # type: ignore[method-assign]
    assert client.get("/claims", headers=bearer(token)).status_code == 200

    def told() -> bool:
        return any(
            record.levelno == logging.ERROR
            and "TOKENAUTH_REVOCATION_LISTEN_URL" in record.getMessage()
            and "session mode" in record.getMessage()
            for record in caplog.records
        )

    assert wait_for(lambda: told() and reads >= 3), (told(), reads)
    assert not copy.current()  # its reads succeed, but it cannot hear
    revoke_by_hand(pg_engine, token)
    assert_refused_by_one_query(pg_engine, client, token)
    assert "tokenauth revocation listener lost" not in caplog.text


@pytest.mark.postgresql
def test_a_listener_ignores_the_probes_of_others(
    make_db_app: Callable[..., Flask],
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every listener on the database gets every other one's probes: they
    must not cost it a read each (a revocation does)."""
    monkeypatch.setattr(dblisten, "PROBE_EVERY_SECONDS", 3600.0)
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS="1h")
    copy = copy_of(app)
    reads = 0
    real_apply = copy.apply

    def counting_apply(rows: Any) -> None:
        nonlocal reads
        real_apply(rows)
        reads += 1

    copy.apply = counting_apply  # type: ignore[method-assign]
    assert wait_for(copy.current)
    before = reads
    notify = text("SELECT pg_notify(:channel, :payload)")
    for _ in range(20):
        payload = dblisten.PROBE_PREFIX + uuid.uuid4().hex
        with pg_engine.connect() as conn:
            conn.execute(notify, {"channel": dblisten.CHANNEL, "payload": payload})
            conn.commit()
        time.sleep(0.01)  # apart, so that each could wake it on its own
    with pg_engine.connect() as conn:
        conn.execute(notify, {"channel": dblisten.CHANNEL, "payload": ""})
        conn.commit()
    assert wait_for(lambda: reads > before)
    assert reads == before + 1  # the revocation's, none for the probes
    assert copy.current()


@pytest.mark.postgresql
def test_a_notification_that_came_in_with_a_read_wakes_the_listener(
    pg_engine: Engine,
) -> None:
    """A ``NOTIFY`` that arrives while the listener reads comes in with the
    read's answer: the driver holds it, the socket no longer does.  The
    listener's wait looks at what the driver holds first, so it reads again
    at once, not at the next heartbeat (here an hour away)."""
    url = pg_engine.url.render_as_string(hide_password=False)
    listener = dblisten._connect(url, f"tokenauth-test-{uuid.uuid4().hex[:8]}")
    woke = threading.Event()
    waiting = threading.Thread(
        target=lambda: (dblisten._wait(listener, 2 * WAIT), woke.set()), daemon=True
    )
    try:
        with listener.cursor() as cursor:
            cursor.execute(f"LISTEN {dblisten.CHANNEL}")
            with pg_engine.connect() as conn:
                conn.execute(
                    text("SELECT pg_notify(:channel, '')"),
                    {"channel": dblisten.CHANNEL},
                )
                conn.commit()

            def read() -> bool:
                cursor.execute("SELECT 1")
                cursor.fetchall()
                return bool(listener.notifies)

            assert wait_for(read)  # it came in with a read's answer
        assert select.select([listener], [], [], 0)[0] == []  # not on the socket
        waiting.start()
        assert woke.wait(WAIT)
        assert listener.notifies == []  # consumed
    finally:
        if waiting.is_alive():
            waiting.join()
        listener.close()


@pytest.mark.postgresql
def test_a_revocation_committed_during_a_read_is_read_at_once(
    make_db_app: Callable[..., Flask],
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole path: the listener's read is held (an advisory lock the test
    holds) after its snapshot; a logout commits meanwhile, so the read does
    not return its row, and its ``NOTIFY`` comes in with the read's answer.
    The listener reads again at once: the copy holds the session long
    before its next heartbeat (15 minutes here)."""
    monkeypatch.setattr(dblisten, "PROBE_EVERY_SECONDS", 3600.0)
    app = make_db_app(TOKENAUTH_REVOCATION_STALENESS="1h")
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    copy = as_another_process(app)
    assert wait_for(copy.current)
    key = uuid.uuid4().int % 2**62
    held = threading.Event()
    real_query = copy.query

    def held_query(named: bool = True) -> tuple[str, dict[str, Any]]:
        sql, params = real_query(named)
        if named or held.is_set():
            return sql, params
        held.set()  # this read only: it waits for the test's lock
        return (
            f"SELECT r.* FROM ({sql}) r, (SELECT pg_advisory_xact_lock({key})) l",
            params,
        )

    monkeypatch.setattr(copy, "query", held_query)
    with pg_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        holder.commit()
        try:
            with pg_engine.connect() as conn:  # wake the listener: a read
                conn.execute(
                    text("SELECT pg_notify(:channel, '')"),
                    {"channel": dblisten.CHANNEL},
                )
                conn.commit()
            assert wait_for(
                lambda: listener_activity(pg_engine, copy, "wait_event") == "advisory"
            )
            assert Auth(client).logout().status_code == 200
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            holder.commit()
    sid = sid_of(token)
    assert wait_for(lambda: sid in copy.sessions)


@pytest.mark.postgresql
def test_an_unreachable_listen_url_fails_closed(
    make_db_app: Callable[..., Flask],
    pg_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens there: the copy is never current, so every request
    asks the database, and a revocation the log does not hold is refused."""
    from .services import free_port

    caplog.set_level(logging.WARNING, "flask_tokenauth")
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    app = make_db_app(TOKENAUTH_REVOCATION_LISTEN_URL=url)
    client = app.test_client()
    token = Auth(client).register().get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    assert wait_for(lambda: "tokenauth revocation listener lost" in caplog.text)
    assert not copy_of(app).current()
    revoke_by_hand(pg_engine, token)
    assert code(client.get("/claims", headers=bearer(token))) == (401, "TOKEN_REVOKED")


# -- forks (gunicorn --preload) ----------------------------------------------


def in_a_fork(work: Callable[[], object]) -> str | None:
    """``str(work())`` run in a child forked from this process, or None if
    the child gave no answer within :data:`WAIT` (then it is killed)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, and never return into pytest
        try:
            os.close(read)
            os.write(write, str(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    ready: list[int] = []
    try:
        ready, _, _ = select.select([read], [], [], WAIT)
        return os.read(read, 1000).decode() if ready else None
    finally:
        os.close(read)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.mark.postgresql
def test_a_forked_process_uses_database_sessions_of_its_own(
    pg_engine: Engine,
) -> None:
    """The pool's connections are the parent's: a child (a gunicorn worker
    after ``--preload``) that used them would share their sockets with the
    parent and its siblings, and a request would wait for an answer another
    process read (``test_a_logout_on_one_worker_reaches_the_other`` timed
    out so).  The child gets new ones."""
    # A database of its own, on a pool of one connection: the child would
    # get that one if it inherited it.
    url = pg_engine.url.render_as_string(hide_password=False)
    database = Database(make_engine(url, {"pool_size": 1, "max_overflow": 0}))
    engine = database.engine
    backend = text("SELECT pg_backend_pid()")
    with engine.connect() as conn:
        parents = conn.execute(backend).scalar()

    def childs() -> object:
        with engine.connect() as conn:
            return conn.execute(backend).scalar()

    answer = in_a_fork(childs)
    assert answer is not None and answer.isdigit(), answer
    assert int(answer) != parents
    try:
        with engine.connect() as conn:  # the parent's still works
            assert conn.execute(backend).scalar() == parents
    finally:
        engine.dispose()


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_fork_while_the_copy_is_locked_does_not_hang_the_child(
    make_app: Any, request: pytest.FixtureRequest, store: str
) -> None:
    """Another thread of the parent held the copy's lock at the fork: in the
    child, where that thread does not exist, the copy's first use (which
    starts the child's own reader) must not wait for it."""
    config: dict[str, Any] = {"TOKENAUTH_REVOCATION": store}
    if store == "redis":
        config.update(request.getfixturevalue("redis_config"))
    revocation = protect(make_app(**config)).extensions["tokenauth"].revocation
    copy: Any = revocation.copy if store == "database" else revocation._mirror

    def use() -> object:
        if store == "database":
            return copy.current()
        return copy.lookup("sid", "1")

    with copy._lock:
        answer = in_a_fork(use)
    assert answer is not None, "the child waited for a lock nobody holds"


# -- the migration -------------------------------------------------------------


@pytest.fixture
def fresh_url(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """An empty database of the test's dialect."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_url")
    with throwaway_database(server, "tokenauth_mirror_") as url:
        yield url


def test_0005_logs_the_revocations_made_before_it(fresh_url: str) -> None:
    engine = make_engine(fresh_url, {})
    try:
        upgrade(engine, "0004")
        at = datetime(2026, 11, 29, 1, 2, 3, tzinfo=timezone.utc)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tokenauth_sessions (id, user_id, created_at,"
                    " last_used_at, expires_at, revoked_at) VALUES"
                    " ('s1', '7', :at, :at, :at, :at), ('s2', '7', :at, :at, :at, NULL)"
                ),
                {"at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO tokenauth_user_cutoffs (user_id, tokens_valid_after)"
                    " VALUES ('8', :at)"
                ),
                {"at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO tokenauth_users (email, password_hash)"
                    " VALUES ('gone@example.com', 'x')"
                )
            )
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tokenauth_users"))
            rows = conn.execute(
                text(
                    "SELECT kind, session_id, user_id, not_before"
                    " FROM tokenauth_revocation_events ORDER BY id"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("session", "s1", "7", None),
            ("cutoff", None, "8", int(at.timestamp())),
            ("user-gone", None, "1", None),
        ]
        downgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tokenauth_users (email, password_hash)"
                    " VALUES ('again@example.com', 'x')"
                )
            )
            # The trigger went with the table.
            conn.execute(text("DELETE FROM tokenauth_users"))
        assert "tokenauth_revocation_events" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_create_all_logs_user_deletions_too(fresh_url: str) -> None:
    """Tables made by ``metadata.create_all`` (then stamped) get the trigger
    of migration 0005, and it survives a drop_all and create_all."""
    engine = make_engine(fresh_url, {})
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tokenauth_users (email, password_hash)"
                    " VALUES ('gone@example.com', 'x')"
                )
            )
            conn.execute(text("DELETE FROM tokenauth_users"))
            rows = conn.execute(
                text("SELECT kind, user_id FROM tokenauth_revocation_events")
            ).all()
        assert [tuple(r) for r in rows] == [("user-gone", "1")]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


# -- gunicorn workers ----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Two gunicorn workers on one database, the database revocation store,
    no Redis.  The app is loaded, and its copy put to use, before the fork
    (``--preload``, :mod:`tests.mirror_app`): each worker must notice it is
    a new process and start its own listener."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("mirror-workers")
    with (
        throwaway_database(
            request.getfixturevalue("postgres_url"), "tokenauth_workers_"
        )
        if request.param == "postgresql"
        else _sqlite_file(workdir)
    ) as url:
        engine = make_engine(url, {})
        upgrade(engine)
        engine.dispose()
        env = server_environment(
            TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
            TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
            TOKENAUTH_DATABASE_URL=url,
            TOKENAUTH_REVOCATION="database",
            TOKENAUTH_REVOCATION_STALENESS="1",
            TOKENAUTH_BCRYPT_ROUNDS="4",
            TOKENAUTH_COOKIE_SECURE="false",
            TOKENAUTH_RATELIMIT_ENABLED="false",
        )
        command = [
            gunicorn,
            *gunicorn_options(gunicorn, threads=2, workers=2),
            "--preload",
            "tests.mirror_app:create_app()",
        ]
        with running_server("mirror", command, env, workdir) as server:
            yield server.url


@contextmanager
def _sqlite_file(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'tokenauth.sqlite3'}"


def test_a_logout_on_one_worker_reaches_the_other(workers: str) -> None:
    """Log out through whichever worker takes the request; the other worker's
    copy then holds the revocation and refuses the token (each request is a
    new connection: the workers take turns as they accept)."""
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    registered = requests.post(
        f"{workers}/api/auth/register",
        json={"email": email, "password": PASSWORD},
        timeout=10,
    )
    assert registered.status_code == 201
    token = registered.json()["accessToken"]
    cookie = registered.cookies["refresh_token"]
    sid = sid_of(token)

    def claims() -> requests.Response:
        return requests.get(f"{workers}/test/claims", headers=bearer(token), timeout=10)

    def copy() -> requests.Response:
        return requests.get(f"{workers}/test/copy/{sid}", timeout=10)

    # Both workers answer, and both have a current copy.
    answered: set[str] = set()
    assert wait_for(
        lambda: (
            (r := claims()).status_code == 200
            and bool(answered.add(r.headers["X-Worker"]) or len(answered) == 2)
        )
    ), f"only worker(s) {answered} answered"
    current: set[str] = set()
    assert wait_for(
        lambda: (
            (r := copy()).json()["current"]
            and bool(current.add(r.headers["X-Worker"]) or len(current) == 2)
        )
    )
    # Each worker on database sessions of its own: none inherited from the
    # process that loaded the app (--preload) and forked them.
    backends: dict[str, Any] = {}
    assert wait_for(
        lambda: (
            (r := requests.get(f"{workers}/test/backend", timeout=10)).ok
            and not backends.update({r.headers["X-Worker"]: r.json()["backend"]})
            and len(backends) == 2
        )
    )
    if None not in backends.values():
        assert len(set(backends.values())) == 2, backends

    logout = requests.post(
        f"{workers}/api/auth/logout",
        headers={"Cookie": f"refresh_token={cookie}"},
        timeout=10,
    )
    assert logout.status_code == 200
    revoker = logout.headers["X-Worker"]
    (other,) = answered - {revoker}

    # The other worker's copy learns it (not only its fallback query)...
    assert wait_for(
        lambda: (
            (r := copy()).headers["X-Worker"] == other
            and r.json() == {"current": True, "revoked": True}
        )
    )
    # ...and it refuses the token.
    assert wait_for(
        lambda: (
            (r := claims()).headers["X-Worker"] == other
            and (r.status_code, r.json().get("code")) == (401, "TOKEN_REVOKED")
        )
    )
