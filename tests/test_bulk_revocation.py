"""ORM bulk statements that delete or disable users end their sessions
(:mod:`flask_tokenauth._bulk_revocation`), for the host's model and the
built-in ``User``, with each revocation store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.orm import Session

from flask_tokenauth._state import get_state
from flask_tokenauth.models import Passkey, RecoveryCode, TotpSecret, User
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import Auth, bearer
from .test_totp_policy import give_passkey
from .test_userstore import (
    add_user,
    assert_code,
    host,  # noqa: F401  (a fixture)
    host_app,
    login,
    revocation_config,
)


def alice_id(session: Session, model: type[Any]) -> Any:
    return session.scalar(select(model.id).where(model.username == "alice"))


#: Each way the ORM offers to delete or disable users in one statement,
#: applied to the user named ``alice``.
BULK: dict[str, Callable[[Session, type[Any]], Any]] = {
    "delete": lambda s, m: s.execute(delete(m).where(m.username == "alice")),
    "query-delete": lambda s, m: s.query(m).filter_by(username="alice").delete(),
    "core-delete": lambda s, m: s.execute(
        delete(m.__table__).where(m.__table__.c.username == "alice")
    ),
    "update": lambda s, m: s.execute(
        update(m).where(m.username == "alice").values(active=False)
    ),
    "query-update": lambda s, m: (
        s.query(m).filter(m.username == "alice").update({"active": False})
    ),
    "update-by-key": lambda s, m: s.execute(
        update(m), [{"id": alice_id(s, m), "active": False}]
    ),
}


def two_users(
    engine: Engine, model: type[Any], app: Flask
) -> tuple[Any, str, Any, str]:
    """alice and bob, each logged in: (client, token) of each."""
    add_user(engine, model, "alice")
    add_user(engine, model, "bob")
    alice, response = login(app, "alice")
    bob, bob_response = login(app, "bob")
    return (
        alice,
        response.get_json()["accessToken"],
        bob,
        bob_response.get_json()["accessToken"],
    )


@pytest.mark.parametrize("mode", ["database", "redis"])
@pytest.mark.parametrize("how", list(BULK))
@pytest.mark.requirement("ASVS-5.0-7.4.2", "ASVS-5.0-7.4.5")
def test_a_bulk_statement_ends_the_users_sessions(
    engine: Engine,
    host: type[Any],  # noqa: F811
    request: pytest.FixtureRequest,
    mode: str,
    how: str,
) -> None:
    """On a view that never loads the user, the access token stops at the
    next request; the refresh is refused; the other user keeps working."""
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, **revocation_config(request, mode))
    alice, token, bob, bob_token = two_users(engine, host, app)
    assert alice.get("/claims", headers=bearer(token)).status_code == 200

    with Session(engine) as session:
        BULK[how](session, host)
        # Nothing before the commit: it could still roll back.
        assert alice.get("/claims", headers=bearer(token)).status_code == 200
        session.commit()

    assert_code(alice.get("/claims", headers=bearer(token)), 401, "TOKEN_REVOKED")
    assert alice.post("/api/auth/refresh").status_code == 401
    assert bob.get("/claims", headers=bearer(bob_token)).status_code == 200
    assert bob.post("/api/auth/refresh").status_code == 200


@pytest.mark.parametrize("how", ["delete", "update"])
def test_a_rolled_back_bulk_statement_ends_nothing(
    engine: Engine,
    host: type[Any],  # noqa: F811
    how: str,
) -> None:
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    alice, token, _, _ = two_users(engine, host, app)
    with Session(engine) as session:
        BULK[how](session, host)
        session.rollback()
    assert alice.get("/claims", headers=bearer(token)).status_code == 200
    assert alice.post("/api/auth/refresh").status_code == 200


@pytest.mark.parametrize("how", ["delete", "update"])
def test_a_statement_in_a_rolled_back_savepoint_ends_nothing(
    engine: Engine,
    host: type[Any],  # noqa: F811
    how: str,
) -> None:
    """The transaction commits, the savepoint that held the statement did
    not: alice keeps her sessions; bob, removed outside it, does not."""
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    alice, token, bob, bob_token = two_users(engine, host, app)
    with Session(engine) as session:
        session.execute(delete(host).where(host.username == "bob"))
        savepoint = session.begin_nested()
        BULK[how](session, host)
        savepoint.rollback()
        session.commit()
    assert alice.get("/claims", headers=bearer(token)).status_code == 200
    assert alice.post("/api/auth/refresh").status_code == 200
    assert_code(bob.get("/claims", headers=bearer(bob_token)), 401, "TOKEN_REVOKED")


@pytest.mark.parametrize(
    "statement",
    [
        # Another column: no user is disabled.
        lambda m: update(m).where(m.username == "alice").values(username="alicia"),
        # Made active (again): nothing ends.
        lambda m: update(m).where(m.username == "alice").values(active=True),
    ],
    ids=["other-column", "activated"],
)
def test_a_bulk_update_that_disables_nobody_ends_nothing(
    engine: Engine,
    host: type[Any],  # noqa: F811
    statement: Callable[[type[Any]], Any],
) -> None:
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    alice, token, _, _ = two_users(engine, host, app)
    with Session(engine) as session:
        session.execute(statement(host))
        session.commit()
    assert alice.get("/claims", headers=bearer(token)).status_code == 200
    assert alice.post("/api/auth/refresh").status_code == 200


@pytest.mark.parametrize("mode", ["database", "redis"])
@pytest.mark.parametrize("how", ["bulk", "object"])
def test_an_orm_delete_of_builtin_users_ends_their_sessions(
    make_app: Any, engine: Engine, request: pytest.FixtureRequest, mode: str, how: str
) -> None:
    """The built-in table: its trigger logs the deletion for the database
    store's copies; an ORM deletion (a bulk statement or one object) also
    tells Redis and revokes the sessions (with Redis the token lived on
    before)."""
    app = make_app(**revocation_config(request, mode))

    @app.get("/claims")
    def claims() -> Any:
        from flask_tokenauth import current_claims, login_required

        return login_required(lambda: {"sub": current_claims["sub"]})()

    client = app.test_client()
    auth = Auth(client)
    token = auth.register("gone@example.com").get_json()["accessToken"]
    other = Auth(app.test_client())
    other_token = other.register("kept@example.com").get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200

    with Session(engine) as session:
        if how == "bulk":
            session.execute(delete(User).where(User.email == "gone@example.com"))
        else:
            user = session.scalars(select(User).where(User.email == "gone@example.com"))
            session.delete(user.one())
        session.commit()

    response = client.get("/claims", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["code"] in {"TOKEN_REVOKED", "USER_NOT_FOUND"}
    assert auth.refresh().status_code == 401
    assert other.client.get("/claims", headers=bearer(other_token)).status_code == 200


def test_every_app_on_the_database_hears_of_the_sessions(
    make_app: Any, engine: Engine, redis_config: dict[str, str], redis_server: Any
) -> None:
    """Two apps on one database, each with its own store: the first to
    revoke marks the sessions revoked, and the second (with Redis) is still
    told of them, not only of the user's cutoff (one-second resolution: a
    token issued in the same second would pass it)."""
    first = make_app(TOKENAUTH_REVOCATION="database")  # watches, revokes first
    app = make_app(**redis_config)
    auth = Auth(app.test_client())
    token = auth.register("gone@example.com").get_json()["accessToken"]
    with app.app_context():
        sid = get_state(app).access_tokens.verify(token)["sid"]
    with Session(engine) as session:
        session.execute(delete(User).where(User.email == "gone@example.com"))
        session.commit()
    prefix = redis_config["TOKENAUTH_REDIS_PREFIX"]
    assert redis_server.exists(f"{prefix}revoked-session:{sid}")
    del first  # kept alive until the deletion: its store had to watch too


def test_a_table_of_the_same_name_on_other_metadata_is_not_watched() -> None:
    """A Core DELETE names its ``Table`` object: another model's table that
    only shares the name (another ``MetaData``) is not the watched one; and
    a key the store cannot name never breaks the host's statement."""
    from sqlalchemy import Column, Integer, MetaData, Table, create_engine, delete
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    from flask_tokenauth import _bulk_revocation as bulk

    class Base(DeclarativeBase):
        pass

    class Person(Base):
        __tablename__ = "people"
        id = mapped_column(Integer, primary_key=True)

    revoked: list[list[str]] = []

    def to_sub(key: object) -> str:
        if key == 7:
            raise ValueError(f"{key!r} is no id of this store")
        return str(key)

    def revoke(subs: list[str]) -> None:
        revoked.append(sorted(subs))

    bulk.watch(Person, to_sub=to_sub, revoke=revoke)
    other = Table("people", MetaData(), Column("id", Integer, primary_key=True))
    engine = create_engine("sqlite://")
    other.metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(other.insert(), [{"id": 1}, {"id": 2}])
        assert session.execute(delete(other).where(other.c.id == 1)).rowcount == 1
        session.commit()
        assert revoked == []  # not the watched table, though of its name
        # The watched table (the same one in the database): its keys are
        # revoked, but 7, which the store cannot name, is skipped.
        session.add(Person(id=7))
        session.commit()
        assert session.execute(delete(Person.__table__)).rowcount == 2
        session.commit()
    assert revoked == [["2"]]


# -- Second factors of deleted users ------------------------------------------------

_FACTOR_TABLES = (TotpSecret.__table__, RecoveryCode.__table__, Passkey.__table__)


def give_factors(engine: Engine, sub: str) -> None:
    """An authenticator app, a recovery code and a passkey for ``sub``, as
    the flows leave them (not checked here)."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            insert(TotpSecret.__table__).values(
                user_id=sub, secret="x", created_at=now, confirmed_at=now
            )
        )
        conn.execute(
            insert(RecoveryCode.__table__).values(
                user_id=sub, code_hash="h" + sub, created_at=now
            )
        )
    give_passkey(engine, sub, "cred-" + sub)


def factors_of(engine: Engine, sub: str) -> list[int]:
    with engine.connect() as conn:
        return [
            len(conn.execute(select(t).where(t.c.user_id == sub)).all())
            for t in _FACTOR_TABLES
        ]


def _delete_object(s: Session, m: type[Any]) -> None:
    s.delete(s.scalars(select(m).where(m.username == "alice")).one())


@pytest.mark.parametrize("how", [*BULK, "object"])
def test_a_deleted_users_second_factors_go_with_them(
    engine: Engine,
    host: type[Any],  # noqa: F811
    how: str,
) -> None:
    """A host's table may give a deleted user's id to the next user, who
    must not inherit the old user's authenticator app, recovery codes and
    passkeys (a passkey would sign the old owner in as them).  A disabled
    user keeps theirs (they may be enabled again)."""
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    two_users(engine, host, app)
    with Session(engine) as session:
        alice = str(alice_id(session, host))
        bob = str(session.scalar(select(host.id).where(host.username == "bob")))
    give_factors(engine, alice)
    give_factors(engine, bob)
    with Session(engine) as session:
        (_delete_object if how == "object" else BULK[how])(session, host)
        session.commit()
    deleted = "delete" in how or how == "object"
    assert factors_of(engine, alice) == ([0, 0, 0] if deleted else [1, 1, 1])
    assert factors_of(engine, bob) == [1, 1, 1]


def test_a_refresh_that_finds_its_user_deleted_removes_their_factors(
    engine: Engine,
    host: type[Any],  # noqa: F811
) -> None:
    """Deleted where no event sees it (raw SQL): the next refresh of one of
    the user's sessions finds no user and removes their factors."""
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    alice, _, _, _ = two_users(engine, host, app)
    with Session(engine) as session:
        sub = str(alice_id(session, host))
    give_factors(engine, sub)
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {host.__table__.name} WHERE id = {int(sub)}"))
    assert factors_of(engine, sub) == [1, 1, 1]
    assert alice.post("/api/auth/refresh").status_code == 401
    assert factors_of(engine, sub) == [0, 0, 0]
