"""Password reset with a host's users (``SQLAlchemyUserStore``, addresses
in the host's own ``email`` column), on SQLite and PostgreSQL, with the
host's table in our database (the new password is written in our
transaction) and in a database of its own (the host's session commits it
on its own: written before any write of ours, with the link's row held so
that two requests with one link never both write a password)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Boolean, Engine, Integer, String, create_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    scoped_session,
    sessionmaker,
)
from werkzeug.security import generate_password_hash

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth._state import get_state
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD, POSTGRES_URL, base_config, bearer, throwaway_database
from .smtp import token_in
from .test_password_reset import Mailbox, flow_config, mailbox

__all__ = ["flow_config", "mailbox"]

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


def make_model() -> type[Any]:
    """A host ``User`` on a base of its own (a fresh class per test: the
    store's ORM events are registered on the class)."""

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "reset_host_users"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        email: Mapped[str] = mapped_column(String(254), unique=True)
        password_hash: Mapped[str] = mapped_column(String(255))
        active: Mapped[bool] = mapped_column(Boolean, default=True)

    return User


@pytest.fixture(params=["our-database", "own-database"])
def host_engine(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path
) -> Iterator[Engine | None]:
    """``None``: the host's table is in our database; else the engine of
    the host's own database."""
    if request.param == "our-database":
        yield None
    elif engine.dialect.name == "sqlite":
        own = create_engine(f"sqlite:///{tmp_path / 'host.sqlite3'}")
        yield own
        own.dispose()
    else:
        with throwaway_database(POSTGRES_URL, "tokenauth_host_") as url:
            own = create_engine(url)
            yield own
            own.dispose()


@pytest.fixture
def host(engine: Engine, host_engine: Engine | None) -> Iterator[type[Any]]:
    model = make_model()
    where = host_engine or engine
    model.metadata.create_all(where)
    with Session(where) as session:
        session.add(model(email=EMAIL, password_hash=generate_password_hash(PASSWORD)))
        session.commit()
    yield model
    model.metadata.drop_all(where)


@pytest.fixture
def app(
    engine: Engine,
    host_engine: Engine | None,
    host: type[Any],
    flow_config: dict[str, Any],
) -> Flask:
    # As Flask-SQLAlchemy's ``db.session``: one per thread and app context,
    # removed (its transaction ended) when the context ends.
    session = None if host_engine is None else scoped_session(sessionmaker(host_engine))
    store = SQLAlchemyUserStore(host, is_active="active", session=session)
    app = Flask(__name__)
    if session is not None:
        app.teardown_appcontext(lambda error: session.remove())
    app.config.update(base_config(**flow_config, TOKENAUTH_REGISTER_ENABLED=False))
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/me")
    def me() -> Any:
        from flask_tokenauth import current_user, login_required

        @login_required
        def view() -> Any:
            return {"email": current_user.email}

        return view()

    return app


def link_token(app: Flask, mailbox: Mailbox) -> str:
    """A reset link mailed to alice through the real SMTP server."""
    mailbox.clear()
    response = app.test_client().post(
        "/api/auth/forgot-password", json={"email": EMAIL}
    )
    assert response.status_code == 202, response.text
    mails = mailbox.to(EMAIL, "Reset your password")
    assert len(mails) == 1
    return token_in(mails[0])


def login(app: Flask, password: str) -> Any:
    return app.test_client().post(
        "/api/auth/login", json={"email": EMAIL, "password": password}
    )


def reset(app: Flask, token: str, password: str = NEW_PASSWORD) -> Any:
    return app.test_client().post(
        "/api/auth/reset-password", json={"token": token, "password": password}
    )


def test_a_host_users_password_is_reset(app: Flask, mailbox: Mailbox) -> None:
    before = login(app, PASSWORD)
    assert before.status_code == 200
    response = reset(app, link_token(app, mailbox))
    assert response.status_code == 200, response.text
    assert login(app, PASSWORD).status_code == 401
    assert login(app, NEW_PASSWORD).status_code == 200
    old = app.test_client().get("/me", headers=bearer(before.json["accessToken"]))
    assert old.status_code == 401
    assert old.json["code"] == "TOKEN_REVOKED"
    assert mailbox.to(EMAIL, "Your password was changed")
    with app.app_context():
        store = get_state(app).user_store
        assert store.is_email_verified(store.find_by_email(EMAIL))


def test_a_host_users_link_dies_when_the_host_changes_the_password(
    app: Flask, mailbox: Mailbox, host: type[Any], host_engine: Engine | None
) -> None:
    token = link_token(app, mailbox)
    # The host's own form, in its own session.
    where = host_engine or get_state(app).db.engine
    with Session(where) as session:
        user = session.query(host).one()
        user.password_hash = generate_password_hash("set by the host's form")
        session.commit()
    assert reset(app, token).json["code"] == "LINK_INVALID"
    assert login(app, "set by the host's form").status_code == 200


def test_a_disabled_host_users_link_is_refused(
    app: Flask, mailbox: Mailbox, host: type[Any], host_engine: Engine | None
) -> None:
    token = link_token(app, mailbox)
    where = host_engine or get_state(app).db.engine
    with Session(where) as session:
        session.query(host).update({"active": False})
        session.commit()
    assert reset(app, token).json["code"] == "LINK_INVALID"


@pytest.mark.postgresql
def test_concurrent_resets_of_a_host_user_one_wins(
    app: Flask, mailbox: Mailbox
) -> None:
    """Where the host's session commits its password before our transaction
    does, the link's row is held from the start: the losers wait, then find
    it spent, and never write their password after the winner's."""
    token = link_token(app, mailbox)
    n = 6
    barrier = threading.Barrier(n)
    results: dict[str, int] = {}

    def attempt(index: int) -> None:
        password = f"racing passphrase {index} {uuid.uuid4().hex[:6]}"
        barrier.wait()
        results[password] = reset(app, token, password).status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results.values()) == [200] + [400] * (n - 1), results
    # The stored hash is the winner's (asked of the store: six logins would
    # spend the wrong-password limits).
    with app.app_context():
        store = get_state(app).user_store
        user = store.find_by_email(EMAIL)
        for password, status in results.items():
            assert store.verify_password(user, password) == (status == 200)
