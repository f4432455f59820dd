"""Who a host user is, however it is spelled: wrong-password limits and
device cookies per matched user on a case-insensitive login column
(SQLite ``COLLATE NOCASE``, PostgreSQL ``citext``), and ids canonicalised or
refused wherever the public API takes one (``revoke_user_sessions``,
``login_user``, the test helpers)."""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, Integer, String, text, update
from sqlalchemy.dialects.postgresql import CITEXT
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import generate_password_hash

from flask_tokenauth import (
    TokenAuthClient,
    auth_headers,
    login_user,
    revoke_user_sessions,
)
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD, Auth, bearer
from .test_userstore import add_user, assert_code, host, host_app, make_model

__all__ = ["host"]  # a fixture of test_userstore, used here too

LIMITS = {
    "TOKENAUTH_RATELIMIT_LOGIN": "1000/minute",
    "TOKENAUTH_RATELIMIT_LOGIN_FAILURES": "3/minute",
    "TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES": "5/day",
    "TOKENAUTH_RATELIMIT_STORAGE_URI": "memory://",
}
_addresses = (f"203.0.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def ci_model(engine: Engine, declared: bool) -> type[Any]:
    """A host ``User`` over a table whose login column compares
    case-insensitively; the model says so (``declared``) or, as with a
    table made by the host's own SQL, does not."""

    class Base(DeclarativeBase):
        pass

    login_type: Any = String(80)
    if declared:
        postgresql = engine.dialect.name == "postgresql"
        login_type = CITEXT() if postgresql else String(80, collation="NOCASE")

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        username: Mapped[str] = mapped_column(login_type, unique=True)
        password_hash: Mapped[str] = mapped_column(String(255))

    return User


@pytest.fixture(params=["declared", "undeclared"])
def ci_host(engine: Engine, request: pytest.FixtureRequest) -> Iterator[type[Any]]:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS citext"))
            login = "CITEXT"
            key = "SERIAL"
        else:
            login = "VARCHAR(80) COLLATE NOCASE"
            key = "INTEGER"
        conn.execute(
            text(
                f"CREATE TABLE users (id {key} PRIMARY KEY,"
                f" username {login} NOT NULL UNIQUE,"
                " password_hash VARCHAR(255) NOT NULL)"
            )
        )
    model = ci_model(engine, request.param == "declared")
    add_user(
        engine, model, "Alice", generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
    )
    yield model
    model.metadata.drop_all(engine)


def attempt(app: Flask, username: str, password: str = "wrong") -> Any:
    """A login from a client never seen before, from an address of its own."""
    return app.test_client().post(
        "/api/auth/login",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": next(_addresses)},
    )


def test_every_spelling_spends_one_budget(
    engine: Engine, ci_host: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        app = host_app(engine, SQLAlchemyUserStore(ci_host, login="username"), **LIMITS)
        spellings = ["alice", "ALICE", "aLiCe", "AlIcE", "alicE"]
        assert [attempt(app, s).status_code for s in spellings] == [401] * 5
        # The account's five a day are spent, whichever spelling comes next.
        assert_code(attempt(app, "aliCE", PASSWORD), 429, "RATE_LIMITED")
    # This test's own records: a Redis listener left by an earlier test may
    # log from its thread meanwhile.
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.thread == threading.get_ident()
    ]
    assert len(warned) == 1 and "normalize=" in warned[0], warned


def test_unknown_logins_are_limited_as_known_ones(
    engine: Engine, ci_host: type[Any]
) -> None:
    """An unknown login's spellings share a budget too, or a spent
    spelling that blocks another would tell that the login exists."""
    app = host_app(engine, SQLAlchemyUserStore(ci_host, login="username"), **LIMITS)

    def statuses(spellings: list[str]) -> list[int]:
        return [attempt(app, s).status_code for s in spellings]

    known = statuses(["alice", "ALICE", "aLiCe", "AlIcE", "alicE", "aliCE"])
    unknown = statuses(["nobody", "NOBODY", "noBody", "NoBoDy", "nobodY", "nobODY"])
    assert known == unknown == [401] * 5 + [429]


@pytest.mark.parametrize(
    ("stored", "known", "unknown"),
    [
        # casefold() makes these one; neither database does.
        ("straße", ("STRASSE", "straße"), ("FUSSBALL", "fußball")),
        # lower() makes these one; PostgreSQL's citext too, SQLite's NOCASE
        # (ASCII letters only) does not.
        ("émile", ("ÉMILE", "émile"), ("ÉTIENNE", "étienne")),
    ],
    ids=["sharp-s", "accent"],
)
def test_unknown_logins_are_folded_as_the_database_folds_them(
    engine: Engine,
    ci_host: type[Any],
    stored: str,
    known: tuple[str, str],
    unknown: tuple[str, str],
) -> None:
    """An unknown login's spellings share a counter exactly when the column
    would find one row by both: folded any further (or less), spending one
    spelling and trying the other answers 429 for a login that does not
    exist and 401 for one that does."""
    add_user(engine, ci_host, stored)
    app = host_app(engine, SQLAlchemyUserStore(ci_host, login="username"), **LIMITS)

    def spend_then_try(spend: str, then: str) -> int:
        for _ in range(5):
            attempt(app, spend)
        return int(attempt(app, then).status_code)

    assert spend_then_try(*known) == spend_then_try(*unknown)


def test_the_device_cookie_follows_the_user_not_the_spelling(
    engine: Engine, ci_host: type[Any]
) -> None:
    app = host_app(engine, SQLAlchemyUserStore(ci_host, login="username"), **LIMITS)
    owner = app.test_client()
    login = {"username": "alice", "password": PASSWORD}
    assert owner.post("/api/auth/login", json=login).status_code == 200
    for _ in range(6):
        attempt(app, "ALICE")
    assert_code(attempt(app, "ALICE", PASSWORD), 429, "RATE_LIMITED")
    # The owner's device is exempt from the spent budget, however it types.
    login["username"] = "ALICE"
    assert owner.post("/api/auth/login", json=login).status_code == 200


def test_counters_and_device_cookie_follow_the_user_through_a_rename(
    engine: Engine, host: type[Any]
) -> None:
    """Keyed by the user, not by the login: a budget spent on ``alice`` is
    still spent once she is ``alicia``, and her device stays trusted."""
    user = add_user(engine, host, "alice")
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"), **LIMITS)
    owner = app.test_client()
    body = {"username": "alice", "password": PASSWORD}
    assert owner.post("/api/auth/login", json=body).status_code == 200
    assert [attempt(app, "alice").status_code for _ in range(6)][-1] == 429
    with Session(engine) as session:
        session.execute(
            update(host).where(host.id == user.id).values(username="alicia")
        )
        session.commit()
    assert_code(attempt(app, "alicia", PASSWORD), 429, "RATE_LIMITED")
    body["username"] = "alicia"
    assert owner.post("/api/auth/login", json=body).status_code == 200


@pytest.mark.parametrize("normalize", [None, str.lower])
def test_a_declared_case_insensitive_column_is_warned_about_at_start_up(
    engine: Engine, caplog: pytest.LogCaptureFixture, normalize: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        SQLAlchemyUserStore(
            ci_model(engine, declared=True), login="username", normalize=normalize
        )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == (1 if normalize is None else 0), warned


def test_a_case_sensitive_column_is_not_warned_about(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model()
    model.metadata.create_all(engine)
    try:
        add_user(engine, model, "Alice")
        with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
            app = host_app(engine, SQLAlchemyUserStore(model, login="username"))
            assert_code(attempt(app, "alice", PASSWORD), 401, "INVALID_CREDENTIALS")
            assert attempt(app, "Alice", PASSWORD).status_code == 200
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        model.metadata.drop_all(engine)


# -- ids, canonical or refused ----------------------------------------------------

NOT_IDS = ["0{id}", " {id}", "{id} ", "{id}.0", "+{id}", "", True, 1.0, "\uff11"]


@pytest.mark.parametrize("value", NOT_IDS, ids=repr)
def test_builtin_store_refuses_ids_it_does_not_have(
    app: Flask, auth: Auth, value: Any
) -> None:
    registered = auth.register("user@example.com", PASSWORD)
    user_id = registered.get_json()["user"]["id"]
    if isinstance(value, str):
        value = value.format(id=user_id)
    with app.app_context():
        with pytest.raises(ValueError):
            revoke_user_sessions(value)
        assert len(revoke_user_sessions(str(user_id))) == 1
    with pytest.raises((ValueError, TypeError)):
        auth_headers(value, app)


@pytest.fixture
def uuid_host(engine: Engine) -> Iterator[type[Any]]:
    model = make_model("uuid")
    model.metadata.create_all(engine)
    yield model
    model.metadata.drop_all(engine)


def uuid_forms(key: uuid.UUID) -> list[Any]:
    return [
        key,
        str(key),
        str(key).upper(),
        "{" + str(key) + "}",
        key.hex,
        key.urn,
    ]


def test_uuid_ids_in_any_form_revoke_the_users_sessions(
    engine: Engine, uuid_host: type[Any]
) -> None:
    user = add_user(engine, uuid_host)
    app = host_app(engine, SQLAlchemyUserStore(uuid_host, login="username"))
    for form in uuid_forms(user.id):
        client = app.test_client()
        body = {"username": "alice", "password": PASSWORD}
        token = client.post("/api/auth/login", json=body).get_json()["accessToken"]
        with app.app_context():
            assert len(revoke_user_sessions(form)) == 1, form
        assert_code(client.get("/me", headers=bearer(token)), 401, "TOKEN_REVOKED")
    with app.app_context():
        for value in ["not-a-uuid", str(user.id)[:-1], 1, ""]:
            with pytest.raises(ValueError):
                revoke_user_sessions(value)
        with app.test_request_context("/"), pytest.raises(ValueError):
            login_user(str(user.id)[:-1])


def test_int_keys_refuse_non_canonical_ids(engine: Engine, host: type[Any]) -> None:
    user = add_user(engine, host)
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
    with app.test_request_context("/"):
        for value in ["01", " 1", "1.0", str(uuid.uuid4()), uuid.uuid4(), -1]:
            with pytest.raises(ValueError):
                revoke_user_sessions(value)
            with pytest.raises(ValueError):
                login_user(value)
        assert login_user(str(user.id))


class FlaskLoginUser:
    """A Flask-Login user object: ``get_id()`` returns the id as a string."""

    def __init__(self, user_id: uuid.UUID) -> None:
        self.id = user_id

    def get_id(self) -> str:
        return str(self.id)


def test_test_helpers_take_uuid_keys(engine: Engine, uuid_host: type[Any]) -> None:
    user = add_user(engine, uuid_host)
    app = host_app(engine, SQLAlchemyUserStore(uuid_host, login="username"))
    for form in [user, FlaskLoginUser(user.id), *uuid_forms(user.id)]:
        me = app.test_client().get("/me", headers=auth_headers(form, app))
        assert me.status_code == 200, (form, me.get_json())
    app.test_client_class = TokenAuthClient
    client = app.test_client(user=user)
    assert client.get("/me").get_json()["username"] == "alice"
    assert client.tokenauth_session is not None
    assert client.tokenauth_session.user_id == user.id
