"""The app through a real PgBouncer in transaction mode.

Production PostgreSQL often sits behind PgBouncer with ``pool_mode =
transaction``: each transaction of a client may run on another server
connection, and whatever a client leaves on its session (``SET``,
``LISTEN``, prepared statements, session advisory locks) stays with the
server connection, for the next client.  Here the app's
``TOKENAUTH_DATABASE_URL`` points at a pgbouncer of this run (see
:class:`tests.services.PrivatePgBouncer`) in front of a database of its own
on the shared PostgreSQL, and everything that needs the database is driven
through it: the migrations (the CLI's ``flask tokenauth db upgrade``),
registration and login, refresh rotation and reuse detection, a refresh race,
revocation with the ``database`` store and its per-process copy of the
revocations, and two gunicorn workers.

The server pool has a single connection (``default_pool_size = 1``): every
client's transactions take turns on it, so any session state that leaked
from one transaction to the next would show, and a request that held one
connection while it waited for a second would hang (``query_wait_timeout``
turns that into an error).  The refresh race also runs through the shared
:func:`~tests.services.private_pgbouncer_fixture` (ten server connections),
where the racers' transactions really run at once.  The first tests prove
the mode is real: the admin console says so, and a ``LISTEN`` made through
it never delivers.

The copy's listener (``TOKENAUTH_REVOCATION_LISTEN_URL``) must reach
PostgreSQL directly or through PgBouncer in session mode: through
transaction mode it hears nothing (see the last tests of the copy).
"""

from __future__ import annotations

import os
import select
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg2
import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, make_url, text

from flask_tokenauth import (
    ConfigurationError,
    TokenAuth,
    auth_bp,
    current_claims,
    login_required,
)
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import VERSION_TABLE
from flask_tokenauth._revocation import DatabaseRevocation
from flask_tokenauth._state import get_state
from flask_tokenauth.models import metadata

from .conftest import (
    ACCESS_SECRET,
    PASSWORD,
    POSTGRES_URL,
    REFRESH_SECRET,
    Auth,
    base_config,
    bearer,
    concurrent_refreshes,
    service_missing,
    throwaway_database,
)
from .servers import (
    START_TIMEOUT,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)
from .services import (  # noqa: F401 (the last one is a fixture)
    TIMEOUT,
    PrivatePgBouncer,
    private_pgbouncer_fixture,
)
from .test_revocation import assert_revoked, me

pytestmark = pytest.mark.slow

#: How long a client waits for the one server connection before PgBouncer
#: gives up on it: far more than any of these requests needs on a loaded CI,
#: far less than a hang.
QUERY_WAIT_SECONDS = 20
#: How long a revocation may take to reach another instance whose copy does
#: not hear it, before the test says it never will (the staleness is an
#: hour there; a direct listener hears it in milliseconds).
DEAF_TIMEOUT = 10.0


@dataclass
class Bounced:
    """A database of its own on the shared PostgreSQL, migrated, and the
    way to it through PgBouncer."""

    bouncer: PrivatePgBouncer
    #: Straight to PostgreSQL: for the test's own looks and cleanup.
    direct_url: str
    direct: Engine
    #: Through PgBouncer: what the apps use.
    url: str


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PrivatePgBouncer]:
    """A PgBouncer of this module's own: transaction mode (the default of
    :class:`PrivatePgBouncer`) with one server connection per database."""
    with PrivatePgBouncer.for_test(
        "default_pool_size=1", f"query_wait_timeout={QUERY_WAIT_SECONDS}"
    ) as server:
        yield server


def new_app(url: str, **config: Any) -> Flask:
    """The example's shape: the extension on ``TOKENAUTH_DATABASE_URL``, a
    protected ``/me``."""
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_DATABASE_URL=url, **config))
    TokenAuth().init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"sub": current_claims["sub"], "sid": current_claims["sid"]}

    return app


def connect(url: str) -> Any:
    """A psycopg2 connection (libpq wants ``postgresql://``, no driver)."""
    libpq = make_url(url).set(drivername="postgresql")
    return psycopg2.connect(libpq.render_as_string(hide_password=False))


def dispose(app: Flask) -> None:
    """Close ``app``'s pool, and end its revocation listener if it has one:
    the thread ends at its next wake-up once the copy's process id is no
    longer this one's."""
    state = get_state(app)
    copy = getattr(state.revocation, "copy", None)
    if copy is not None:
        copy._pid = -1
    state.db.engine.dispose()


@pytest.fixture(scope="module")
def bounced(bouncer: PrivatePgBouncer) -> Iterator[Bounced]:
    """A fresh database, migrated through PgBouncer with the CLI's
    ``flask tokenauth db upgrade``: Alembic runs the whole upgrade in one
    transaction on PostgreSQL and takes no session lock, so transaction
    mode serves it as is (no need to migrate around PgBouncer)."""
    stack = ExitStack()
    try:
        direct_url = stack.enter_context(
            throwaway_database(POSTGRES_URL, "tokenauth_pgbouncer_")
        )
    except Exception as e:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {e}")
    with stack:
        url = bouncer.through(direct_url)
        app = new_app(url)
        try:
            result = app.test_cli_runner().invoke(args=["tokenauth", "db", "upgrade"])
            assert result.exit_code == 0, result.output
        finally:
            dispose(app)
        direct = make_engine(direct_url, {})
        try:
            yield Bounced(bouncer, direct_url, direct, url)
        finally:
            direct.dispose()


@pytest.fixture
def clean(bounced: Bounced) -> Iterator[Bounced]:
    """The database through PgBouncer, emptied after the test."""
    yield bounced
    with bounced.direct.begin() as conn:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture
def make_app(clean: Bounced) -> Iterator[Any]:
    """``make_app(url=None, **config)``: apps on the database through
    PgBouncer (this module's, or the one ``url`` goes through), revocation
    store ``database``; their pools are closed and the tables emptied after
    the test."""
    bounced = clean
    apps: list[Flask] = []

    def factory(url: str | None = None, **config: Any) -> Flask:
        config.setdefault("TOKENAUTH_REVOCATION", "database")
        app = new_app(url or bounced.url, **config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        dispose(app)


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app()  # type: ignore[no-any-return]


def session(app: Flask, email: str = "user@example.com") -> tuple[Auth, str]:
    """A logged-in client (registering the user if needed) and its token."""
    auth = Auth(app.test_client())
    response = auth.login(email)
    if response.status_code == 401:
        response = auth.register(email)
    assert response.status_code in (200, 201), response.get_json()
    return auth, str(response.get_json()["accessToken"])


def wait_for(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- the mode is real -------------------------------------------------------------


def test_the_admin_console_says_transaction_mode(bounced: Bounced) -> None:
    bouncer = bounced.bouncer
    assert bouncer.setting("pool_mode") == "transaction"
    database = bounced.direct.url.database
    pools = [row for row in bouncer.show("POOLS") if row["database"] == database]
    assert [row["pool_mode"] for row in pools] == ["transaction"]


def test_clients_take_turns_on_one_server_connection(bounced: Bounced) -> None:
    """Two clients connected at once run on the same server connection (in
    session mode the second would wait for the first to leave), and the
    second sees the session state the first left there."""
    first = connect(bounced.url)
    second = connect(bounced.url)
    try:
        first.autocommit = second.autocommit = True
        with first.cursor() as cursor:
            cursor.execute("LISTEN tokenauth_pgbouncer_probe")
            cursor.execute("SELECT pg_backend_pid()")
            [(first_pid,)] = cursor.fetchall()
        with second.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_listening_channels()")
            [(second_pid, channel)] = cursor.fetchall()
            cursor.execute("UNLISTEN *")
        assert second_pid == first_pid
        assert channel == "tokenauth_pgbouncer_probe"
    finally:
        first.close()
        second.close()


def test_listen_through_it_never_delivers(bounced: Bounced) -> None:
    """What a revocation listener pointed at PgBouncer would get: nothing.
    Its LISTEN ran on a server connection that went back to the pool; the
    notification reaches that connection while no client is linked to it,
    and PgBouncer drops it (and says so in its log)."""
    channel = f"tokenauth_probe_{uuid.uuid4().hex[:8]}"
    listener = connect(bounced.url)
    witness = connect(bounced.direct_url)
    sender = connect(bounced.direct_url)
    try:
        for conn in (listener, witness, sender):
            conn.autocommit = True
        listener.cursor().execute(f"LISTEN {channel}")
        witness.cursor().execute(f"LISTEN {channel}")
        sender.cursor().execute(f"NOTIFY {channel}, 'revoked'")

        def witness_heard() -> bool:
            select.select([witness], [], [], 0.1)
            witness.poll()
            return bool(witness.notifies)

        wait_for(witness_heard, "the direct listener's notification")
        wait_for(
            lambda: (
                "got packet 'A' from server when not linked" in bounced.bouncer.tail()
            ),
            "PgBouncer to drop the notification",
        )
        listener.poll()
        with listener.cursor() as cursor:
            cursor.execute("SELECT 1")  # whatever is pending arrives with it
        assert listener.notifies == []
        assert [n.payload for n in witness.notifies] == ["revoked"]
    finally:
        with listener.cursor() as cursor:
            cursor.execute("UNLISTEN *")
        for conn in (listener, witness, sender):
            conn.close()


# -- the app through it -----------------------------------------------------------


def test_the_migrations_ran_through_it(bounced: Bounced) -> None:
    with bounced.direct.connect() as conn:
        version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        assert len(version.all()) == 1
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
    assert {table.name for table in metadata.sorted_tables} <= tables


def test_register_login_and_a_protected_view(app: Flask) -> None:
    auth = Auth(app.test_client())
    assert auth.register().status_code == 201
    response = auth.login()
    assert response.status_code == 200
    token = response.get_json()["accessToken"]
    assert me(app, token).status_code == 200
    assert Auth(app.test_client()).login(password="wrong password").status_code == 401
    assert isinstance(get_state(app).revocation, DatabaseRevocation)


def test_rotations_and_reuse_revoke_the_family(app: Flask, bounced: Bounced) -> None:
    auth, first_token = session(app)
    cookies = [auth.refresh_cookie()]
    tokens = [first_token]
    for _ in range(5):
        response = auth.refresh()
        assert response.status_code == 200
        cookies.append(auth.refresh_cookie())
        tokens.append(response.get_json()["accessToken"])
    assert len(set(cookies)) == 6
    other, other_token = session(app)  # another session of the same user

    thief = Auth(app.test_client())
    stolen = cookies[2]
    assert stolen is not None
    thief.set_refresh_cookie(stolen)
    response = thief.refresh()
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_REUSED"
    # The victim's newest token is revoked with the family, and so are the
    # family's access tokens; the other session lives on.
    response = auth.refresh()
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_REVOKED"
    for token in tokens:
        assert_revoked(app, token)
    assert other.refresh().status_code == 200
    assert me(app, other_token).status_code == 200
    with bounced.direct.connect() as conn:
        revoked = conn.execute(
            text("SELECT count(*) FROM tokenauth_sessions WHERE revoked_at IS NOT NULL")
        ).scalar_one()
    assert revoked == 1


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("servers", ["one server connection", "a pool of ten"])
def test_a_raced_refresh_rotates_once(
    make_app: Any,
    clean: Bounced,
    request: pytest.FixtureRequest,
    servers: str,
    attempt: int,
) -> None:
    """Eight clients refresh one token at once: exactly one wins.  On one
    server connection their transactions take turns; through the shared
    PgBouncer fixture (ten server connections) they run at the same time
    and meet at the row locks."""
    url = None
    if servers != "one server connection":
        shared: PrivatePgBouncer = request.getfixturevalue("private_pgbouncer")
        assert shared.setting("default_pool_size") == "10"
        url = shared.through(clean.direct_url)
    app = make_app(url)
    auth, _ = session(app)
    cookie = auth.refresh_cookie()
    assert cookie is not None
    responses = concurrent_refreshes(app, cookie, 8)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 7, [r.get_json() for r in responses]
    with clean.direct.connect() as conn:
        tokens = conn.execute(
            text("SELECT count(*) FROM tokenauth_refresh_tokens")
        ).scalar_one()
    assert tokens == 2  # exactly one successor of the raced token


def test_logout_refuses_the_access_token(app: Flask) -> None:
    auth, token = session(app)
    _, other = session(app)
    assert me(app, token).status_code == 200
    assert auth.logout().status_code == 200
    assert_revoked(app, token)
    assert me(app, other).status_code == 200


def test_logout_everywhere_refuses_every_access_token(app: Flask) -> None:
    tokens = [session(app)[1] for _ in range(3)]
    response = app.test_client().post("/api/auth/logout-all", headers=bearer(tokens[0]))
    assert response.status_code == 200
    assert response.get_json()["revoked"] == 3
    for token in tokens:
        assert_revoked(app, token)


def test_password_change_refuses_the_other_access_tokens(app: Flask) -> None:
    _, other = session(app)
    auth, current = session(app)
    response = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new password"},
        headers=bearer(current),
    )
    assert response.status_code == 200
    assert me(app, response.get_json()["accessToken"]).status_code == 200
    assert_revoked(app, other)
    assert Auth(app.test_client()).login().status_code == 401


def test_the_admin_commands_through_it(app: Flask, clean: Bounced) -> None:
    """``flask tokenauth sessions | revoke-sessions | purge``, as cron or an
    operator runs them, on the app's URL through PgBouncer."""
    tokens = [session(app)[1] for _ in range(2)]
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["tokenauth", "sessions", "user@example.com"])
    assert listed.exit_code == 0, listed.output
    assert len(listed.output.strip().splitlines()) == 2
    revoked = runner.invoke(args=["tokenauth", "revoke-sessions", "user@example.com"])
    assert revoked.exit_code == 0, revoked.output
    assert "Revoked 2 session(s)." in revoked.output
    for token in tokens:
        assert_revoked(app, token)
    with clean.direct.begin() as conn:
        conn.execute(
            text(
                "UPDATE tokenauth_sessions SET revoked_at = now() - interval '30 days'"
            )
        )
    purged = runner.invoke(args=["tokenauth", "purge", "--batch-size", "1"])
    assert purged.exit_code == 0, purged.output
    assert "Purged 2 session(s)." in purged.output


# -- the database store's copy of the revocations --------------------------------
#
# Each process keeps a copy of the revocation log, read by a thread that
# LISTENs on TOKENAUTH_REVOCATION_LISTEN_URL (default: the database's URL)
# and reads the log again at each notification and every quarter of
# TOKENAUTH_REVOCATION_STALENESS (its heartbeat).  With a staleness of an
# hour the heartbeat is 15 minutes away: within a test, only a notification
# can tell a copy of a revocation made elsewhere (by an app on another URL,
# see elsewhere()).

#: A staleness no test outlives: the copy learns only by notifications.
HOUR = "1h"


def copy_of(app: Flask) -> Any:
    """``app``'s copy of the revocation log (its listener started)."""
    copy = get_state(app).revocation.copy  # type: ignore[attr-defined]
    assert copy is not None
    copy.current()  # starts the listener thread
    return copy


def sid_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def elsewhere(url: str) -> str:
    """``url`` as another process's: the same database through the same
    PgBouncer, named differently (an ``application_name`` of its own).  A
    revocation is told at commit to every copy of this process on the same
    URL; an app on this one is told, like another process's, only through
    the log."""
    parsed = make_url(url)
    named = parsed.update_query_dict({"application_name": "another-instance"})
    return named.render_as_string(hide_password=False)


def listening_copy(one: Flask, two: Flask) -> Any:
    """``two``'s copy, once it has read the log: a session revoked on
    ``one`` before its listener started is in it.  (Its first read, which
    needs no notification: later ones do, with an hour of staleness.)"""
    auth, token = session(one, "seed@example.com")
    assert auth.logout().status_code == 200
    copy = copy_of(two)
    wait_for(lambda: sid_of(token) in copy.sessions, "the copy's first read")
    return copy


@pytest.fixture(scope="module")
def session_bouncer() -> Iterator[PrivatePgBouncer]:
    """A second PgBouncer, in session mode: a client keeps its server
    connection, so LISTEN works through it."""
    with PrivatePgBouncer.for_test("pool_mode=session") as server:
        yield server


@pytest.mark.parametrize("listener", ["direct", "pgbouncer-session-mode"])
def test_a_listener_that_hears_tells_another_instance_at_once(
    make_app: Any, clean: Bounced, request: pytest.FixtureRequest, listener: str
) -> None:
    """The engine through PgBouncer in transaction mode, the listener
    straight to PostgreSQL or through a PgBouncer in session mode: a logout
    on one instance is refused by the other, which had accepted the token
    from its copy, without waiting for the staleness bound."""
    listen_url = clean.direct_url
    if listener != "direct":
        session_mode: PrivatePgBouncer = request.getfixturevalue("session_bouncer")
        assert session_mode.setting("pool_mode") == "session"
        listen_url = session_mode.through(clean.direct_url)
    config = {
        "TOKENAUTH_REVOCATION_LISTEN_URL": listen_url,
        "TOKENAUTH_REVOCATION_STALENESS": HOUR,
    }
    one, two = make_app(**config), make_app(elsewhere(clean.url), **config)
    copy = listening_copy(one, two)
    auth, token = session(one)
    assert copy.current()
    assert me(two, token).status_code == 200  # from the copy: it is current
    assert auth.logout().status_code == 200
    wait_for(
        lambda: me(two, token).status_code == 401,
        "the other instance to refuse the token",
    )
    assert_revoked(two, token)
    assert sid_of(token) in copy.sessions


def test_a_listener_through_pgbouncer_still_refuses_within_the_staleness(
    make_app: Any, clean: Bounced
) -> None:
    """The listener left on the database URL, through PgBouncer in
    transaction mode, where its LISTEN never delivers: with the default
    staleness (one second) the other instance still refuses the token within
    it (its heartbeat reads the log every quarter of the bound)."""
    one, two = make_app(), make_app(elsewhere(clean.url))
    copy_of(two)
    auth, token = session(one)
    assert me(two, token).status_code == 200
    assert auth.logout().status_code == 200
    wait_for(
        lambda: me(two, token).status_code == 401,
        "the other instance to refuse the token",
    )


def test_a_listener_that_cannot_hear_is_not_trusted(
    make_app: Any, clean: Bounced, caplog: pytest.LogCaptureFixture
) -> None:
    """The same with an hour of staleness: a copy whose LISTEN cannot
    deliver must not answer alone, and say which setting to change (or the
    app must refuse to start with such a listener); otherwise the other
    instance accepts the revoked token for up to 15 minutes.  A direct
    listener refuses it in milliseconds (the tests above).  (The copy's
    probe, a notification from its own engine, never comes back: it asks
    the database on each request and logs an error.)"""
    one = make_app(
        TOKENAUTH_REVOCATION_LISTEN_URL=clean.direct_url,
        TOKENAUTH_REVOCATION_STALENESS=HOUR,
    )
    try:
        two = make_app(elsewhere(clean.url), TOKENAUTH_REVOCATION_STALENESS=HOUR)
    except ConfigurationError as e:
        assert "TOKENAUTH_REVOCATION_LISTEN_URL" in str(e)
        return  # refused at start-up: fine
    copy = copy_of(two)

    def told() -> bool:
        return any(
            "TOKENAUTH_REVOCATION_LISTEN_URL" in record.getMessage()
            for record in caplog.records
        )

    wait_for(
        lambda: copy.current() or told(),
        "the copy to call itself current, or to say that it cannot hear",
    )
    auth, token = session(one)
    assert me(two, token).status_code == 200
    assert auth.logout().status_code == 200
    wait_for(
        lambda: me(two, token).status_code == 401,
        "the other instance to refuse the token",
        timeout=DEAF_TIMEOUT,
    )
    assert told()


# -- two gunicorn workers through it ---------------------------------------------

#: Fresh connections tried before giving up on reaching the other worker
#: (the kernel hands each connection to one worker; it never takes long).
MAX_TRIES = 500
REQUEST_TIMEOUT = 10.0


def gunicorn_app() -> Flask:
    """The example app, telling which worker answered: what gunicorn runs
    (``tests.test_pgbouncer:gunicorn_app()``)."""
    from examples.app import create_app

    app = create_app()

    @app.after_request
    def worker(response: Any) -> Any:
        response.headers["X-Worker"] = str(os.getpid())
        return response

    return app


@pytest.fixture
def workers(clean: Bounced, tmp_path: Path) -> Iterator[str]:
    """One gunicorn with two workers, the app's database through PgBouncer,
    the revocation listener straight to PostgreSQL."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=clean.url,
        TOKENAUTH_REVOCATION="database",
        # The listener straight to PostgreSQL; with an hour of staleness
        # only its notifications can tell a worker of the other's logout.
        TOKENAUTH_REVOCATION_LISTEN_URL=clean.direct_url,
        TOKENAUTH_REVOCATION_STALENESS=HOUR,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_COOKIE_SECURE="false",
        TOKENAUTH_RATELIMIT_ENABLED="false",
    )
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, threads=4, workers=2),
        "tests.test_pgbouncer:gunicorn_app()",
    ]
    server = start_server("pgbouncer-workers", command, env, tmp_path)
    try:
        wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        yield server.url
    finally:
        stop_server(server)


def profile(url: str, token: str) -> requests.Response:
    """``/api/profile`` on a fresh connection (so on either worker)."""
    return requests.get(
        f"{url}/api/profile",
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=REQUEST_TIMEOUT,
    )


def test_logout_on_one_gunicorn_worker_is_refused_by_the_other(workers: str) -> None:
    body = {"email": "worker@example.com", "password": PASSWORD}
    response = requests.post(
        f"{workers}/api/auth/register", json=body, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code == 201, response.text
    token = response.json()["accessToken"]
    cookie = response.cookies["refresh_token"]

    # Both workers accept the token (each has served it once).
    accepted: set[str] = set()
    for _ in range(MAX_TRIES):
        response = profile(workers, token)
        assert response.status_code == 200, response.text
        accepted.add(response.headers["X-Worker"])
        if len(accepted) == 2:
            break
    assert len(accepted) == 2, "one worker took every connection"

    response = requests.post(
        f"{workers}/api/auth/logout",
        headers={"Cookie": f"refresh_token={cookie}", "Connection": "close"},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    logged_out_on = response.headers["X-Worker"]

    # The other worker refuses it as soon as its listener has heard of it
    # (accepting it until then); once it has, every answer is a refusal.
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, "the other worker never refused it"
        response = profile(workers, token)
        if response.headers["X-Worker"] == logged_out_on:
            assert response.status_code == 401, response.text
        elif response.status_code == 401:
            break
    for _ in range(20):
        response = profile(workers, token)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "TOKEN_REVOKED"
