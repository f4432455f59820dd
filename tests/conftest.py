"""Fixtures: an app factory, a client, an auth helper, and a database
parametrized over SQLite and PostgreSQL so that the whole suite runs on both.

PostgreSQL is the real server at ``TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each run creates a database
of its own there and drops it afterwards.  Without a server the PostgreSQL
half is skipped with the reason shown, unless ``REQUIRE_SERVICES=1``
(set by ``.ci/run``) turns that skip into a failure.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from werkzeug.test import TestResponse

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._engine import make_engine, normalize_url
from flask_tokenauth._keys import SigningKey
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.models import metadata

from .conformance import ResultsRecorder

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

ACCESS_SECRET = "access-secret-for-tests-" + "a" * 48
REFRESH_SECRET = "refresh-secret-for-tests-" + "b" * 48
PASSWORD = "correct horse battery"
#: The ``kid`` of ACCESS_SECRET's HS256 key: tokens forged by hand name it,
#: so that they are refused (or accepted) for what they test, not for
#: lacking a kid.
ACCESS_KID = SigningKey.hmac(ACCESS_SECRET.encode(), "HS256", "").kid


def service_missing(reason: str) -> None:
    """Skip locally, fail in CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def throwaway_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of ``server_url``, dropped on
    exit (after ending whatever still uses it)."""
    # pool_pre_ping: test_service_outages.py restarts the server, which cuts
    # the pooled connection the DROP below would otherwise be run on.
    url = normalize_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with suppress(Exception), admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    stack = ExitStack()
    try:
        url = stack.enter_context(throwaway_database(POSTGRES_URL, "tokenauth_test_"))
    except Exception as e:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {e}")
    with stack:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """A client of the real Redis at ``TEST_REDIS_URL``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        service_missing(f"Redis not reachable at {REDIS_URL}: {e}")
    yield client
    client.close()


@pytest.fixture
def redis_config(redis_server: Any) -> Iterator[dict[str, str]]:
    """Config for a Redis-backed app, with a key prefix of this test's own;
    its keys are deleted afterwards."""
    prefix = f"tokenauth-test:{uuid.uuid4().hex[:12]}:"
    yield {"TOKENAUTH_REDIS_URL": REDIS_URL, "TOKENAUTH_REDIS_PREFIX": prefix}
    keys = list(redis_server.scan_iter(match=prefix + "*", count=1000))
    if keys:
        redis_server.delete(*keys)


@pytest.fixture
def own_redis() -> Iterator[Any]:
    """A client of a Redis server of this test's own (see
    :mod:`tests.services`), which the test may reconfigure or stop without
    touching the shared one; the server is stopped by its PID afterwards."""
    from .services import PrivateRedis

    with PrivateRedis.for_test() as server:
        client = server.client()
        try:
            yield client
        finally:
            client.close()


def pytest_configure(config: pytest.Config) -> None:
    """Record the outcomes of the tests that prove a requirement, for
    ``flask tokenauth conformance`` (see ``tests/conformance.py``)."""
    config.pluginmanager.register(ResultsRecorder(config), "tokenauth-conformance")


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A test marked ``postgresql`` (a listener, prepared statements, the
    wire) or ``sqlite`` (the file's ``data_version``) has no half on the
    other database: that variant is deselected, not skipped."""
    other_halves = [
        item
        for item in items
        if getattr(item, "callspec", None) is not None
        and (database := item.callspec.params.get("database_url")) is not None
        and any(
            item.get_closest_marker(only) is not None
            for only in ("postgresql", "sqlite")
            if only != database
        )
    ]
    if other_halves:
        config.hook.pytest_deselected(items=other_halves)
        dropped = set(other_halves)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    path = tmp_path_factory.mktemp("sqlite") / "tokenauth.sqlite3"
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """One engine per database, migrated to head once."""
    engine = make_engine(database_url, {})
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    """The migrated engine, emptied after each test."""
    yield migrated_engine
    with migrated_engine.begin() as conn:
        if migrated_engine.dialect.name == "postgresql":
            names = ", ".join(table.name for table in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


def base_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
        "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
        # The minimum cost keeps the suite fast; cost is tested on its own.
        "TOKENAUTH_BCRYPT_ROUNDS": 4,
    }
    config.update(overrides)
    return config


@pytest.fixture
def make_app(engine: Engine) -> Any:
    """Build an app on the test database: ``make_app(url_prefix=..., **config)``."""

    def factory(url_prefix: str | None = None, **config: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(base_config(**config))
        TokenAuth(engine=engine).init_app(app)
        options = {} if url_prefix is None else {"url_prefix": url_prefix}
        app.register_blueprint(auth_bp, **options)
        return app

    return factory


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app()  # type: ignore[no-any-return]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Auth:
    """Drives the auth endpoints for a test."""

    client: FlaskClient
    prefix: str = "/api/auth"

    def register(
        self, email: str = "user@example.com", password: str = PASSWORD, **kwargs: Any
    ) -> TestResponse:
        return self.client.post(
            f"{self.prefix}/register",
            json={"email": email, "password": password},
            **kwargs,
        )

    def login(
        self, email: str = "user@example.com", password: str = PASSWORD, **kwargs: Any
    ) -> TestResponse:
        return self.client.post(
            f"{self.prefix}/login",
            json={"email": email, "password": password},
            **kwargs,
        )

    def refresh(self, **kwargs: Any) -> TestResponse:
        return self.client.post(f"{self.prefix}/refresh", **kwargs)

    def logout(self, **kwargs: Any) -> TestResponse:
        return self.client.post(f"{self.prefix}/logout", **kwargs)

    def refresh_cookie(self) -> str | None:
        cookie = self.client.get_cookie("refresh_token", path=self.prefix)
        return cookie.value if cookie else None

    def set_refresh_cookie(self, value: str) -> None:
        self.client.set_cookie("refresh_token", value, path=self.prefix)


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


def concurrent_refreshes(app: Flask, cookie: str, n: int) -> list[TestResponse]:
    """``n`` clients refresh with the same cookie at the same moment."""
    barrier = threading.Barrier(n)
    responses: list[TestResponse] = []

    def worker() -> None:
        client = app.test_client()
        client.set_cookie("refresh_token", cookie, path="/api/auth")
        barrier.wait()
        responses.append(client.post("/api/auth/refresh"))

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return responses


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- mail: a real SMTP server process (tests/smtp.py) -------------------------


@pytest.fixture(scope="session")
def _smtp_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One aiosmtpd process for the whole run (stopped by its PID at the end)."""
    from .smtp import running_smtp_server

    with running_smtp_server(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture
def smtp_server(_smtp_process: Any) -> Iterator[Any]:
    """The real SMTP server, empty and accepting mail at the start of the
    test: ``.port``, ``.messages(to=None)``, ``.wait_for(to, count=1)``,
    ``.clear()``, ``.set_mode("refuse-rcpt" | "refuse-data" | "hang")``.
    Mail still in this process's outbox at the end is delivered (or fails)
    before the next test starts, so it never lands in another test's box."""
    from flask_tokenauth.testing import wait_for_mail

    assert _smtp_process.alive(), _smtp_process.log()
    _smtp_process.set_mode("accept")
    _smtp_process.clear()
    yield _smtp_process
    wait_for_mail()
    _smtp_process.set_mode("accept")
    _smtp_process.clear()


@pytest.fixture
def mail_config(smtp_server: Any) -> dict[str, Any]:
    """The ``MAIL_*`` keys (as Flask-Mail reads them) for the test server,
    and where the links point; merge into an app's config."""
    return {
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": smtp_server.port,
        "MAIL_DEFAULT_SENDER": "Example App <no-reply@app.test>",
        "TOKENAUTH_LINK_BASE_URL": "http://app.test",
    }
