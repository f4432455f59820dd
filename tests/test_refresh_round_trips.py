"""A refresh on PostgreSQL is one database round trip: the rotation
statement also reads the status of the session's user, when the user store
can say it in SQL on our database (the built-in store; a host model's store
with an integer, native UUID or string key and no ``is_active`` callable).
Otherwise the store is asked after the rotation, a second round trip.

Round trips are counted at the driver: each statement psycopg2 sends, and
the ``BEGIN`` it sends first outside autocommit, and each ``COMMIT`` or
``ROLLBACK`` of an open transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, delete, insert, text, update
from sqlalchemy.orm import Session

from flask_tokenauth import ConfigurationError, TokenAuth, auth_bp
from flask_tokenauth._engine import make_engine
from flask_tokenauth._state import get_state
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import Auth, base_config
from .test_userstore import add_user, assert_code, login, make_model


class WireLog:
    """What one engine's connections sent to the server, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def engine(self, url: str, **options: Any) -> Engine:
        import psycopg2.extensions as ext

        sent = self.sent

        class Cursor(ext.cursor):  # type: ignore[misc]
            def execute(self, query: Any, params: Any = None) -> Any:
                conn = self.connection
                if not conn.autocommit and conn.status == ext.STATUS_READY:
                    sent.append("BEGIN")
                words = query if isinstance(query, str) else query.decode()
                sent.append(" ".join(words.split()[:2]))
                return super().execute(query, params)

        class Connection(ext.connection):  # type: ignore[misc]
            def commit(self) -> None:
                if self.status != ext.STATUS_READY:
                    sent.append("COMMIT")
                super().commit()

            def rollback(self) -> None:
                if self.status != ext.STATUS_READY:
                    sent.append("ROLLBACK")
                super().rollback()

        # No ping of an idle connection: the test may wait more than its second.
        return make_engine(
            url,
            {
                **options,
                "pool_pre_ping": False,
                "connect_args": {
                    "connection_factory": Connection,
                    "cursor_factory": Cursor,
                },
            },
        )

    def during(self, call: Any) -> tuple[Any, list[str]]:
        mark = len(self.sent)
        result = call()
        return result, self.sent[mark:]


@pytest.fixture
def wire(engine: Engine, database_url: str) -> Iterator[tuple[WireLog, Engine]]:
    """A counting engine on the (emptied after the test) PostgreSQL database."""
    if engine.dialect.name != "postgresql":
        pytest.skip("round trips are counted on PostgreSQL")
    log = WireLog()
    counted = log.engine(database_url)
    yield log, counted
    counted.dispose()


def live_sessions(engine: Engine) -> int:
    """Sessions not revoked: a refused refresh of a user gone revokes its
    session (and the successor the rotation issued)."""
    with engine.connect() as conn:
        query = "SELECT count(*) FROM tokenauth_sessions WHERE revoked_at IS NULL"
        return int(conn.execute(text(query)).scalar_one())


def counted_refresh(log: WireLog, refresh: Any) -> tuple[Any, list[str]]:
    refresh()  # the first one compiles the statement and may connect
    return log.during(refresh)


@pytest.mark.postgresql
def test_a_builtin_refresh_is_one_round_trip(
    wire: tuple[WireLog, Engine], engine: Engine
) -> None:
    log, counted = wire
    app = Flask(__name__)
    app.config.update(base_config())
    TokenAuth(engine=counted).init_app(app)
    app.register_blueprint(auth_bp)
    auth = Auth(app.test_client())
    auth.register()

    response, sent = counted_refresh(log, auth.refresh)
    assert response.status_code == 200
    assert len(sent) == 1, sent
    assert sent[0].startswith("EXECUTE tokenauth_")  # prepared: see below

    # Its user gone (raw SQL: no event), the same statement says so.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tokenauth_users"))
    assert_code(auth.refresh(), 401, "REFRESH_TOKEN_INVALID")
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM tokenauth_sessions WHERE revoked_at IS NULL")
            ).scalar_one()
            == 0
        )


@pytest.fixture(params=["int", "uuid", "str"])
def host_model(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Any]:
    model = make_model(request.param)
    model.metadata.create_all(engine)
    yield model
    model.metadata.drop_all(engine)


def add_host_user(engine: Engine, model: Any, **values: Any) -> Any:
    kind = model.__table__.c.id.type.python_type
    if kind is str:
        values.setdefault("id", "alice-" + uuid.uuid4().hex[:8])
    return add_user(engine, model, **values)


def host_app(engine: Engine, store: SQLAlchemyUserStore) -> Flask:
    app = Flask(__name__)
    app.config.update(
        base_config(TOKENAUTH_REGISTER_ENABLED=False, TOKENAUTH_REVOCATION="database")
    )
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)
    return app


@pytest.mark.parametrize("how", ["deleted", "disabled", "nulled"])
@pytest.mark.postgresql
def test_a_host_store_refresh_is_one_round_trip(
    wire: tuple[WireLog, Engine], engine: Engine, host_model: Any, how: str
) -> None:
    log, counted = wire
    user = add_host_user(engine, host_model)
    store = SQLAlchemyUserStore(host_model, login="username", is_active="active")
    app = host_app(counted, store)
    client, response = login(app)
    assert response.status_code == 200
    refresh = lambda: client.post("/api/auth/refresh")  # noqa: E731

    response, sent = counted_refresh(log, refresh)
    assert response.status_code == 200
    assert len(sent) == 1, sent

    # Raw SQL fires no ORM event: the rotation statement finds out.
    with engine.begin() as conn:
        row = host_model.__table__.c.id == user.id
        if how == "deleted":
            conn.execute(delete(host_model.__table__).where(row))
        elif how == "disabled":
            conn.execute(update(host_model.__table__).where(row).values(active=False))
        else:  # a NULL, which ``is_active`` reads as false
            conn.execute(text("ALTER TABLE users ALTER COLUMN active DROP NOT NULL"))
            conn.execute(update(host_model.__table__).where(row).values(active=None))
    expected = "REFRESH_TOKEN_INVALID" if how == "deleted" else "REFRESH_TOKEN_REVOKED"
    assert_code(refresh(), 401, expected)
    assert live_sessions(engine) == 0


@pytest.mark.postgresql
def test_a_session_of_another_id_scheme_reads_as_no_user(
    wire: tuple[WireLog, Engine], engine: Engine
) -> None:
    """A session whose ``sub`` is not an id of the store (the app changed
    stores) is refused as a missing user, not a database error."""
    _, counted = wire
    model = make_model("int")
    model.metadata.create_all(engine)
    try:
        store = SQLAlchemyUserStore(model, login="username")
        app = host_app(counted, store)
        for sub in ("99999999999999999999", "-1", "01", "9" * 19):
            with app.app_context():
                state = get_state(app)
                with state.db.begin() as conn:
                    issued = state.refresh_tokens.start_family(conn, sub)
            client = app.test_client()
            client.set_cookie("refresh_token", issued.token, path="/api/auth")
            assert_code(client.post("/api/auth/refresh"), 401, "REFRESH_TOKEN_INVALID")
    finally:
        model.metadata.drop_all(engine)


@pytest.mark.postgresql
def test_a_store_that_cannot_say_it_in_sql_asks_after_the_rotation(
    wire: tuple[WireLog, Engine], engine: Engine
) -> None:
    """``is_active`` as a callable is Python: two round trips, and the
    callable still decides."""
    log, counted = wire
    model = make_model("int")
    model.metadata.create_all(engine)
    try:
        add_user(engine, model)
        allowed = {"alice": True}
        store = SQLAlchemyUserStore(
            model, login="username", is_active=lambda user: allowed[user.username]
        )
        client, _ = login(host_app(counted, store))
        refresh = lambda: client.post("/api/auth/refresh")  # noqa: E731
        response, sent = counted_refresh(log, refresh)
        assert response.status_code == 200
        assert sent[0].startswith("EXECUTE tokenauth_") and len(sent) > 1, sent
        allowed["alice"] = False
        assert_code(refresh(), 401, "REFRESH_TOKEN_REVOKED")
    finally:
        model.metadata.drop_all(engine)


@pytest.mark.postgresql
def test_a_host_model_in_another_database_is_not_read_by_the_rotation(
    wire: tuple[WireLog, Engine], engine: Engine, tmp_path: Any
) -> None:
    """The host's users on another engine (here SQLite): the rotation
    statement cannot join them, so the store is asked, where they are."""
    log, counted = wire
    model = make_model("int")
    elsewhere = create_engine(f"sqlite:///{tmp_path / 'host.sqlite3'}")
    model.metadata.create_all(elsewhere)
    try:
        with Session(elsewhere) as session:
            session.execute(
                insert(model.__table__).values(
                    id=1, username="alice", password_hash="-", active=True
                )
            )
            session.commit()
        store = SQLAlchemyUserStore(
            model,
            login="username",
            is_active="active",
            verify=lambda user, password: True,
            hash=lambda password: password,
            session=lambda: Session(elsewhere),
        )
        client, response = login(host_app(counted, store))
        assert response.status_code == 200
        refresh = lambda: client.post("/api/auth/refresh")  # noqa: E731
        response, sent = counted_refresh(log, refresh)
        assert response.status_code == 200
        # Only the rotation here (it would fail, joining a table that is not
        # in this database); the lookup went to SQLite.
        assert len(sent) == 1, sent
        with elsewhere.begin() as conn:
            conn.execute(update(model.__table__).values(active=False))
        assert_code(refresh(), 401, "REFRESH_TOKEN_REVOKED")
    finally:
        elsewhere.dispose()


@pytest.fixture
def one_connection(
    engine: Engine, database_url: str
) -> Iterator[tuple[WireLog, Flask, Auth]]:
    """The built-in store's app on a pool of one counted connection."""
    if engine.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    log = WireLog()
    counted = log.engine(database_url, pool_size=1, max_overflow=0)
    app = Flask(__name__)
    app.config.update(base_config())
    TokenAuth(engine=counted).init_app(app)
    app.register_blueprint(auth_bp)
    auth = Auth(app.test_client())
    assert auth.register().status_code == 201
    yield log, app, auth
    counted.dispose()


def rotation_sent(log: WireLog, auth: Auth) -> list[str]:
    response, sent = log.during(auth.refresh)
    assert response.status_code == 200, response.get_json()
    return [" ".join(words.split()[:1]) for words in sent]


@pytest.mark.postgresql
def test_the_rotation_is_prepared_once_per_connection(
    one_connection: tuple[WireLog, Flask, Auth],
) -> None:
    """Its first use sends PREPARE and EXECUTE in one round trip; later
    ones only EXECUTE: the server plans it once."""
    log, _, auth = one_connection
    assert rotation_sent(log, auth) == ["PREPARE"]
    assert rotation_sent(log, auth) == ["EXECUTE"]
    assert rotation_sent(log, auth) == ["EXECUTE"]


@pytest.mark.postgresql
def test_a_connection_that_lost_the_statement_prepares_it_again(
    one_connection: tuple[WireLog, Flask, Auth],
) -> None:
    log, app, auth = one_connection
    assert rotation_sent(log, auth) == ["PREPARE"]
    with get_state(app).db.engine.connect() as conn:  # the pool's one
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
    assert rotation_sent(log, auth) == ["EXECUTE", "PREPARE"]
    assert rotation_sent(log, auth) == ["EXECUTE"]


@pytest.mark.postgresql
def test_a_connection_that_has_it_already_runs_it(
    one_connection: tuple[WireLog, Flask, Auth],
) -> None:
    """A statement of our name on a connection we did not prepare it on (a
    pooler's server connection another client prepared it on) is ours,
    the same text: it runs."""
    log, app, auth = one_connection
    assert rotation_sent(log, auth) == ["PREPARE"]
    with get_state(app).db.engine.connect() as conn:
        conn.connection.info["tokenauth_prepared"].clear()
    assert rotation_sent(log, auth) == ["PREPARE", "EXECUTE"]
    assert rotation_sent(log, auth) == ["EXECUTE"]


@pytest.mark.postgresql
def test_a_statement_lost_again_and_again_is_sent_as_text(
    one_connection: tuple[WireLog, Flask, Auth], caplog: pytest.LogCaptureFixture
) -> None:
    """A pooler in transaction mode may run each EXECUTE on another server
    connection: after a second miss in a row the rotation is sent as text,
    and is from then on, still one round trip and still a rotation."""
    log, app, auth = one_connection
    assert rotation_sent(log, auth) == ["PREPARE"]
    statement, _ = get_state(app).refresh_tokens._rotate_sql or (None, None)
    assert statement is not None
    # Names no connection has: every EXECUTE misses, as through a pooler.
    statement._execute = statement._prepare = "EXECUTE tokenauth_elsewhere"
    with caplog.at_level("INFO", logger="flask_tokenauth"):
        assert rotation_sent(log, auth) == ["EXECUTE", "EXECUTE", "WITH"]
    assert "sending it as text" in caplog.text
    assert rotation_sent(log, auth) == ["WITH"]


@pytest.mark.postgresql
def test_async_commit_is_opt_in_and_for_the_rotation_only(
    wire: tuple[WireLog, Engine], database_url: str
) -> None:
    """``TOKENAUTH_REFRESH_ASYNC_COMMIT``: the rotation's transaction (and
    only it: the connection keeps its setting) commits without waiting for
    the WAL flush, in the same single round trip."""
    log, counted = wire
    for opted_in in (False, True):
        app = Flask(__name__)
        app.config.update(base_config(TOKENAUTH_REFRESH_ASYNC_COMMIT=opted_in))
        TokenAuth(engine=counted).init_app(app)
        app.register_blueprint(auth_bp)
        auth = Auth(app.test_client())
        auth.register(f"user{int(opted_in)}@example.com")
        response, sent = counted_refresh(log, auth.refresh)
        assert response.status_code == 200
        assert len(sent) == 1, sent
        assert sent[0].startswith("SELECT set_config(") is opted_in, sent
        with counted.connect() as conn:
            setting = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        assert setting == "on"
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_REFRESH_ASYNC_COMMIT="sometimes"))
    with pytest.raises(ConfigurationError, match="TOKENAUTH_REFRESH_ASYNC_COMMIT"):
        TokenAuth(engine=counted).init_app(app)


@pytest.mark.postgresql
def test_a_status_clause_that_fails_leaves_the_check_to_status(
    wire: tuple[WireLog, Engine],
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store whose SQL cannot be made (a host model of an odd shape) still
    has its users checked, by :meth:`status`, in a second round trip."""
    from flask_tokenauth._builtin_store import BuiltinUserStore

    log, counted = wire

    def broken(self: Any, sub: Any, db: Any) -> Any:
        raise NotImplementedError("no SQL for this one")

    monkeypatch.setattr(BuiltinUserStore, "status_clause", broken)
    app = Flask(__name__)
    app.config.update(base_config())
    TokenAuth(engine=counted).init_app(app)
    app.register_blueprint(auth_bp)
    auth = Auth(app.test_client())
    auth.register()
    with caplog.at_level("WARNING", logger="flask_tokenauth"):
        response, sent = counted_refresh(log, auth.refresh)
    assert response.status_code == 200
    assert "status_clause failed" in caplog.text
    assert len(sent) == 2, sent  # the rotation, then status()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tokenauth_users"))
    assert_code(auth.refresh(), 401, "REFRESH_TOKEN_INVALID")
