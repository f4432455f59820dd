"""Changing the address of a host's users (:class:`SQLAlchemyUserStore` with
``email=``): the same flow through the host's model, on SQLite and
PostgreSQL, mail through the real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Boolean, DateTime, Engine, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import generate_password_hash

from flask_tokenauth import TokenAuth, auth_bp
from flask_tokenauth.userstore import SQLAlchemyUserStore

from . import test_change_email as base
from .conftest import PASSWORD, base_config, bearer
from .test_change_email import NEW, OLD, PREFIX, Account, Change, Mailbox

mailbox = base.mailbox


class Base(DeclarativeBase):
    pass


class Member(Base):
    """Logs in with a username; the address is a column of its own."""

    __tablename__ = "change_email_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


#: Where the store records verification: our own table, or the host's column.
RECORDS: dict[str, dict[str, Any]] = {
    "table": {},
    "column": {"email_verified": "confirmed_at"},
}


@pytest.fixture
def tables(engine: Engine) -> Iterator[None]:
    Base.metadata.create_all(engine)
    yield
    Base.metadata.drop_all(engine)


@pytest.fixture(params=sorted(RECORDS))
def host_flow(
    engine: Engine, tables: None, mailbox: Mailbox, request: pytest.FixtureRequest
) -> Change:
    store = SQLAlchemyUserStore(
        Member, login="username", email="email", **RECORDS[request.param]
    )
    app = Flask(__name__)
    config = mailbox.config(base.flow_config(TOKENAUTH_REGISTER_ENABLED=False))
    app.config.update(base_config(**config))
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)
    return Change(app, mailbox)


def member(flow: Change, engine: Engine, username: str, email: str) -> Account:
    with Session(engine) as session:
        session.add(
            Member(
                username=username,
                email=email,
                password_hash=generate_password_hash(PASSWORD),
            )
        )
        session.commit()
    client = flow.app.test_client()
    response = client.post(
        f"{PREFIX}/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert body is not None
    return Account(client, body["accessToken"], body["user"]["id"])


def address(flow: Change, engine: Engine, user_id: int) -> tuple[str | None, bool]:
    store = flow.app.extensions["tokenauth"].user_store
    with Session(engine) as session, flow.app.app_context():
        user = session.get(Member, user_id)
        assert user is not None
        return user.email, store.is_email_verified(user)


def test_confirm_then_cancel_with_host_users(host_flow: Change, engine: Engine) -> None:
    user = member(host_flow, engine, "ann", OLD)
    assert host_flow.ask(user).status_code == 202
    confirm_token, cancel_token = host_flow.links()
    assert host_flow.confirm(confirm_token).status_code == 200
    assert address(host_flow, engine, user.id) == (NEW, True)
    assert user.signed_in()  # sessions kept, identity binding intact

    response = host_flow.cancel(cancel_token)
    assert response.status_code == 200
    assert response.json["restored"] is True  # type: ignore[index]
    assert address(host_flow, engine, user.id) == (OLD, True)
    assert not user.signed_in()
    assert not user.refreshes()


def test_a_taken_host_address_gets_the_same_answer(
    host_flow: Change, engine: Engine
) -> None:
    user = member(host_flow, engine, "ann", OLD)
    member(host_flow, engine, "bob", "taken@example.com")
    taken = host_flow.ask(user, new="taken@example.com")
    free = host_flow.ask(user, new=NEW)
    assert (taken.status_code, taken.get_data()) == (free.status_code, free.get_data())
    (owner_mail,) = host_flow.mailbox.wait_for("taken@example.com")
    assert "token=" not in host_flow.mailbox.text(owner_mail)
    confirm_token = host_flow.mailbox.token(NEW)  # mailed before bob takes it
    # Taken meanwhile: refused, nothing changed.
    with Session(engine) as session:
        bob = session.scalars(select(Member).where(Member.username == "bob")).one()
        bob.email = NEW
        session.commit()
    response = host_flow.confirm(confirm_token)
    assert response.status_code == 409
    assert response.json["code"] == "EMAIL_TAKEN"  # type: ignore[index]
    assert address(host_flow, engine, user.id)[0] == OLD


def test_a_wrong_password_of_a_host_user(host_flow: Change, engine: Engine) -> None:
    user = member(host_flow, engine, "ann", OLD)
    response = user.client.post(
        f"{PREFIX}/change-email",
        json={"newEmail": NEW, "password": "not the password"},
        headers=bearer(user.access),
    )
    assert response.status_code == 403
    assert response.json["code"] == "WRONG_PASSWORD"  # type: ignore[index]
    assert host_flow.mailbox.delivered() == []
