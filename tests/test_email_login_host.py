"""Sign in by email with the host's own users (:class:`SQLAlchemyUserStore`
with ``email=``, ``is_active=`` and ``email_verified=``), on SQLite and
PostgreSQL, through the real SMTP server process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import Boolean, Engine, String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import generate_password_hash

from flask_tokenauth import ConfigurationError, TokenAuth, auth_bp, signals
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import ACCESS_SECRET, PASSWORD, base_config
from .test_email_login import CONFIG, Mailbox, ask, by_code, by_link

EMAIL = "ann@example.com"


class Base(DeclarativeBase):
    pass


class Member(Base):
    """Logs in with a username; the address, whether it is verified and
    whether the account is active are columns of its own."""

    __tablename__ = "email_login_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


@pytest.fixture
def members(engine: Engine) -> Iterator[dict[str, int]]:
    """An active member, a disabled one; their ids by username."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for username, email, active in [
            ("ann", EMAIL, True),
            ("bob", "bob@example.com", False),
        ]:
            session.add(
                Member(
                    username=username,
                    email=email,
                    password_hash=generate_password_hash(PASSWORD),
                    active=active,
                )
            )
        session.commit()
        ids = {m.username: m.id for m in session.query(Member)}
    yield ids
    Base.metadata.drop_all(engine)


def host_app(engine: Engine, config: dict[str, Any], **store: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_REGISTER_ENABLED=False, **config))
    options: dict[str, Any] = {
        "login": "username",
        "email": "email",
        "email_verified": "confirmed",
        "is_active": "active",
        **store,
    }
    TokenAuth(
        engine=engine, user_store=SQLAlchemyUserStore(Member, **options)
    ).init_app(app)
    app.register_blueprint(auth_bp)
    return app


def by_ann_code(client: Any, token: str, code: str) -> Any:
    return by_code(client, token, code, EMAIL)


METHODS = [pytest.param(by_link, id="link"), pytest.param(by_ann_code, id="code")]


@pytest.fixture
def config(mail_config: dict[str, Any]) -> dict[str, Any]:
    return {**mail_config, **CONFIG}


@pytest.fixture
def app(engine: Engine, members: dict[str, int], config: dict[str, Any]) -> Flask:
    return host_app(engine, config)


@pytest.fixture
def mailbox(smtp_server: Any) -> Mailbox:
    return Mailbox(smtp_server)


def confirmed(engine: Engine, username: str) -> bool:
    with Session(engine) as session:
        member = session.query(Member).filter_by(username=username).one()
        return member.confirmed


@pytest.mark.parametrize("method", METHODS)
def test_a_host_user_signs_in_by_email(
    app: Flask,
    engine: Engine,
    members: dict[str, int],
    mailbox: Mailbox,
    method: Any,
) -> None:
    client = app.test_client()
    assert ask(client, EMAIL).status_code == 202
    token, code = mailbox.last(EMAIL)
    response = method(client, token, code)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["username"] == "ann"
    assert response.get_json()["user"]["id"] == members["ann"]
    # The mailbox is proved: recorded in the host's own column.
    assert confirmed(engine, "ann")
    assert client.post("/api/auth/refresh").status_code == 200


def test_the_first_token_says_the_address_is_verified(
    engine: Engine, members: dict[str, int], config: dict[str, Any], mailbox: Mailbox
) -> None:
    app = host_app(engine, {**config, "TOKENAUTH_EMAIL_VERIFICATION": "optional"})
    client = app.test_client()
    ask(client, EMAIL)
    _, code = mailbox.last(EMAIL)
    response = by_code(client, "", code, EMAIL)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["emailVerified"] is True
    claims = jwt.decode(
        response.get_json()["accessToken"],
        ACCESS_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False},
    )
    assert claims["email_verified"] is True


def test_a_disabled_user_gets_no_mail_and_the_same_answer(
    app: Flask, mailbox: Mailbox
) -> None:
    client = app.test_client()
    answers = {
        email: (r.status_code, r.data, sorted(h for h in r.headers if h[0] != "Date"))
        for email in (EMAIL, "bob@example.com", "nobody@example.com")
        for r in [ask(client, email)]
    }
    assert len(set(map(repr, answers.values()))) == 1, answers
    assert len(mailbox.to(EMAIL)) == 1
    assert mailbox.to("bob@example.com") == []


@pytest.mark.parametrize("method", METHODS)
def test_a_user_disabled_after_the_mail_is_refused_as_a_wrong_code(
    app: Flask, engine: Engine, mailbox: Mailbox, method: Any
) -> None:
    """The answer of a bogus link or a wrong code, byte for byte: not a
    ``403`` that would tell the account exists and is disabled."""
    client = app.test_client()
    ask(client, EMAIL)
    token, code = mailbox.last(EMAIL)
    with engine.begin() as conn:
        conn.execute(update(Member.__table__).values(active=False))
    bogus = method(client, "0" * 32 + ".bogus", "000000" if code != "000000" else "1")
    response = method(client, token, code)
    assert response.status_code == 400
    assert response.data == bogus.data


def test_a_store_without_addresses_cannot_switch_it_on(
    engine: Engine, members: dict[str, int], config: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="TOKENAUTH_EMAIL_LOGIN_ENABLED"):
        host_app(engine, config, email=None, email_verified=None)


def test_signals_name_the_host_user(
    app: Flask, members: dict[str, int], mailbox: Mailbox
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    for name in ("email_login_requested", "login_succeeded", "email_verified"):
        getattr(signals, name).connect(
            lambda _app, _n=name, **kw: events.append((_n, kw)), app, weak=False
        )
    client = app.test_client()
    ask(client, EMAIL)
    _, code = mailbox.last(EMAIL)
    by_code(client, "", code, EMAIL)
    ann = members["ann"]
    assert events[0] == ("email_login_requested", {"user_id": ann, "email": EMAIL})
    assert ("email_verified", {"user_id": ann, "email": EMAIL}) in events
    name, payload = events[-1]
    assert name == "login_succeeded" and payload["user_id"] == ann
    assert payload["method"] == "email"
