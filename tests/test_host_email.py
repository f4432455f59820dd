"""The addresses of a host's users: :class:`SQLAlchemyUserStore` learns
where a user's address is (``email=``) and where its verification is
recorded (``email_verified=``, else ``tokenauth_email_verifications``), on
SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Boolean, DateTime, Engine, String, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from werkzeug.security import generate_password_hash

from flask_tokenauth import ConfigurationError, EmailTaken, TokenAuth, auth_bp
from flask_tokenauth.models import EmailVerification
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD, base_config, bearer
from .servers import wait_for


class Base(DeclarativeBase):
    pass


class Member(Base):
    """Logs in with a username; the address is a column of its own, and
    whether it is verified two columns of either kind."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_on: Mapped[datetime | None] = mapped_column(DateTime)  # naive UTC
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Open(Base):
    """Addresses in a column without a unique constraint."""

    __tablename__ = "open_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))


class Person(Base):
    """Logs in with the address (the login column is named ``email``)."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))


@pytest.fixture
def tables(engine: Engine) -> Iterator[None]:
    Base.metadata.create_all(engine)
    yield
    Base.metadata.drop_all(engine)


def add(engine: Engine, model: type[Any], **values: Any) -> Any:
    with Session(engine, expire_on_commit=False) as session:
        user = model(password_hash=generate_password_hash(PASSWORD), **values)
        session.add(user)
        session.commit()
        return user


def make_app(engine: Engine, store: SQLAlchemyUserStore, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_REGISTER_ENABLED=False, **config))
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)
    return app


#: The three places a store records verification.
RECORDS = {
    "table": {},
    "bool": {"email_verified": "confirmed"},
    "datetime": {"email_verified": "confirmed_at"},
    "naive datetime": {"email_verified": "confirmed_on"},
}


def member_store(record: str = "table", **options: Any) -> SQLAlchemyUserStore:
    return SQLAlchemyUserStore(
        Member, login="username", email="email", **RECORDS[record], **options
    )


def test_the_login_column_named_email_is_the_address(
    engine: Engine, tables: None
) -> None:
    user = add(engine, Person, email="ann@example.com")
    store = SQLAlchemyUserStore(Person)
    app = make_app(engine, store)
    with app.app_context():
        assert store.has_email
        assert store.email_of(user) == "ann@example.com"
        found = store.find_by_email("ann@example.com")
        assert found is not None and found.id == user.id
        assert store.find_by_email("bob@example.com") is None


def test_the_column_named_email_is_the_address_unless_told(
    engine: Engine, tables: None
) -> None:
    """By default the model's column named ``email``; ``email=None``: none."""
    user = add(engine, Member, username="ann", email="ann@example.com")
    assert SQLAlchemyUserStore(Member, login="username").has_email
    store = SQLAlchemyUserStore(Member, login="username", email=None)
    assert not store.has_email
    app = make_app(engine, store)
    with app.app_context():
        assert store.email_of(user) is None
        assert store.find_by_email("ann@example.com") is None
        assert not store.is_email_verified(user)


def test_lookup_by_address_whatever_its_stored_case(
    engine: Engine, tables: None
) -> None:
    user = add(engine, Member, username="ann", email="Ann.Lee@Example.COM")
    store = member_store()
    app = make_app(engine, store)
    with app.app_context():
        typed = store.normalize_email("  ANN.LEE@example.com ")
        assert typed == "ann.lee@example.com"
        found = store.find_by_email(typed)
        assert found is not None and found.id == user.id
        assert store.email_of(found) == "ann.lee@example.com"


@pytest.mark.parametrize("record", list(RECORDS))
def test_verified_is_recorded_for_the_current_address(
    engine: Engine, tables: None, record: str
) -> None:
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store(record)
    app = make_app(engine, store)
    with app.app_context():
        assert not store.is_email_verified(user)
        # A link to another address than the user's verifies nothing.
        with engine.begin() as conn:
            store.set_email_verified(user, "old@example.com", conn)
        assert not store.is_email_verified(store.get(str(user.id)))
        with engine.begin() as conn:
            store.set_email_verified(user, "ann@example.com", conn)
        assert store.is_email_verified(store.get(str(user.id)))
        assert store.is_email_verified(user)  # the caller's object learnt it


def test_the_library_table_keeps_the_verified_address_by_sub(
    engine: Engine, tables: None
) -> None:
    """Without a column of the host's, the verification is ours, keyed by
    ``sub``: the address changed by the host's own code is unverified."""
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store()
    app = make_app(engine, store)
    with app.app_context():
        with engine.begin() as conn:
            store.set_email_verified(user, "ann@example.com", conn)
        with engine.connect() as conn:
            rows = conn.execute(select(EmailVerification.__table__)).all()
        assert [(r.user_id, r.email) for r in rows] == [
            (str(user.id), "ann@example.com")
        ]
        with Session(engine) as session:
            session.get(Member, user.id).email = "ann@elsewhere.example"  # type: ignore[union-attr]
            session.commit()
        assert not store.is_email_verified(store.get(str(user.id)))


@pytest.mark.parametrize("record", list(RECORDS))
def test_set_email_changes_the_address_verified(
    engine: Engine, tables: None, record: str
) -> None:
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store(record)
    app = make_app(engine, store)
    with app.app_context():
        with engine.begin() as conn:
            store.set_email(user, "ann@new.example", conn)
        fresh = store.get(str(user.id))
        assert store.email_of(fresh) == "ann@new.example"
        assert store.is_email_verified(fresh)
        assert store.email_of(user) == "ann@new.example"
        assert store.find_by_email("ann@example.com") is None
        assert store.find_by_email("ann@new.example").id == user.id


@pytest.mark.parametrize("spelling", ["bob@example.com", "Bob@Example.com"])
def test_set_email_to_another_users_address_is_refused(
    engine: Engine, tables: None, spelling: str
) -> None:
    ann = add(engine, Member, username="ann", email="ann@example.com")
    add(engine, Member, username="bob", email=spelling)
    store = member_store()
    app = make_app(engine, store)
    with app.app_context():
        with pytest.raises(EmailTaken), engine.begin() as conn:
            store.set_email(ann, "bob@example.com", conn)
        assert store.email_of(store.get(str(ann.id))) == "ann@example.com"


def test_set_email_in_a_transaction_rolled_back_changes_nothing(
    engine: Engine, tables: None
) -> None:
    """In the caller's transaction: a link whose spending rolls back leaves
    the address (and its verification) as it was."""
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store()
    app = make_app(engine, store)
    with app.app_context():
        with pytest.raises(RuntimeError), engine.begin() as conn:
            store.set_email(user, "ann@new.example", conn)
            raise RuntimeError("the flow failed after the change")
        fresh = store.get(str(user.id))
        assert store.email_of(fresh) == "ann@example.com"
        assert not store.is_email_verified(fresh)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"email": "mail"}, "has no column 'mail'"),
        ({"email": "email", "email_verified": "username"}, "Boolean or a DateTime"),
        ({"email": None, "email_verified": "confirmed"}, "pass email= too"),
        ({"email": lambda user: user.email}, "find_by_email="),
    ],
)
def test_address_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SQLAlchemyUserStore(Member, login="username", **options)


@pytest.mark.parametrize(
    "config",
    [
        {"TOKENAUTH_EMAIL_VERIFICATION": "required"},
        {"TOKENAUTH_EMAIL_VERIFICATION": "optional"},
        {"TOKENAUTH_PASSWORD_RESET_ENABLED": True},
        {"TOKENAUTH_EMAIL_LOGIN_ENABLED": True},
    ],
)
def test_a_flow_switched_on_without_addresses_stops_the_app(
    engine: Engine, config: dict[str, Any]
) -> None:
    store = SQLAlchemyUserStore(Member, login="username", email=None)
    mail = {
        "TOKENAUTH_MAIL_BACKEND": "log",
        "TOKENAUTH_LINK_BASE_URL": "https://a.test",
    }
    with pytest.raises(ConfigurationError, match="pass email="):
        make_app(engine, store, **mail, **config)


#: The endpoints of the flows that are on once mail is set up, with a body
#: each would otherwise take.
DEFAULT_ON = [
    ("/forgot-password", {"email": "ann@example.com"}),
    ("/reset-password", {"token": "x.y", "password": "a new passphrase"}),
    ("/change-email", {"newEmail": "ann@new.example", "password": PASSWORD}),
    ("/change-email/confirm", {"token": "x.y"}),
    ("/change-email/cancel", {"token": "x.y"}),
]


@pytest.mark.parametrize("email", ["email", None])
@pytest.mark.parametrize(("path", "body"), DEFAULT_ON)
def test_flows_on_by_default_answer_404_without_addresses(
    engine: Engine, tables: None, path: str, body: dict[str, Any], email: str | None
) -> None:
    """Mail set up for the host's own needs turns the reset and change flows
    on by default: a store without addresses then starts, and each of
    their endpoints answers 404 (with addresses: they exist)."""
    store = SQLAlchemyUserStore(Member, login="username", email=email)
    app = make_app(
        engine,
        store,
        MAIL_SERVER="localhost",
        MAIL_DEFAULT_SENDER="app@example.com",
        TOKENAUTH_LINK_BASE_URL="https://a.test",
    )
    response = app.test_client().post(f"/api/auth{path}", json=body)
    if email is None:
        assert response.status_code == 404
        assert response.get_json()["code"] == "NOT_FOUND"
    else:
        assert response.status_code != 404, response.get_json()


def test_a_naive_datetime_column_gets_utc_without_a_zone(
    engine: Engine, tables: None
) -> None:
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store("naive datetime")
    app = make_app(engine, store)
    with app.app_context(), engine.begin() as conn:
        store.set_email_verified(user, "ann@example.com", conn)
    with Session(engine) as session:
        stamp = session.get(Member, user.id).confirmed_on  # type: ignore[union-attr]
    assert stamp is not None and stamp.tzinfo is None
    assert abs((datetime.now(timezone.utc).replace(tzinfo=None) - stamp).seconds) < 600


def test_callable_address_with_the_hosts_lookup_and_change(
    engine: Engine, tables: None
) -> None:
    """``email=`` a callable: the host's ``find_by_email`` finds users and
    its ``set_email`` stores a new address; we record it verified."""
    ann = add(engine, Member, username="ann", email="ann@example.com")
    add(engine, Member, username="bob", email="bob@example.com")
    calls: list[tuple[int, str]] = []

    def find(email: str) -> Member | None:
        with Session(engine, expire_on_commit=False) as session:
            return session.scalars(select(Member).where(Member.email == email)).first()

    def set_email(user: Member, email: str) -> None:
        calls.append((user.id, email))
        with Session(engine) as session:
            session.get(Member, user.id).email = email  # type: ignore[union-attr]
            session.commit()

    store = SQLAlchemyUserStore(
        Member,
        login="username",
        email=lambda user: user.email,
        find_by_email=find,
        set_email=set_email,
    )
    app = make_app(engine, store)
    with app.app_context():
        assert store.has_email
        assert store.find_by_email("bob@example.com").username == "bob"
        with pytest.raises(EmailTaken):
            store.set_email(ann, "bob@example.com")
        assert calls == []
        store.set_email(ann, "ann@new.example")
        assert calls == [(ann.id, "ann@new.example")]
        assert store.is_email_verified(store.get(str(ann.id)))


def test_callable_address_without_set_email_needs_the_change_flow_off(
    engine: Engine,
) -> None:
    store = SQLAlchemyUserStore(
        Member,
        login="username",
        email=lambda user: user.email,
        find_by_email=lambda email: None,
    )
    mail = {
        "TOKENAUTH_MAIL_BACKEND": "log",
        "TOKENAUTH_LINK_BASE_URL": "https://a.test",
    }
    with pytest.raises(ConfigurationError, match="set_email=lambda user, email"):
        make_app(engine, store, **mail)
    make_app(engine, store, **mail, TOKENAUTH_CHANGE_EMAIL_ENABLED=False)


def test_a_model_in_another_database_is_written_through_its_session(
    engine: Engine, tmp_path: Any
) -> None:
    """The host's rows elsewhere: ``set_email`` commits in the host's
    session; the verification is ours, in the caller's transaction."""
    from sqlalchemy import create_engine

    elsewhere = create_engine(f"sqlite:///{tmp_path / 'host.sqlite3'}")
    Base.metadata.create_all(elsewhere)
    try:
        user = add(elsewhere, Member, username="ann", email="ann@example.com")
        sessions = sessionmaker(elsewhere)
        session = sessions()
        store = member_store(session=lambda: session)
        app = make_app(engine, store)
        with app.app_context():
            with engine.begin() as conn:
                store.set_email(user, "ann@new.example", conn)
            with Session(elsewhere) as other:
                assert other.get(Member, user.id).email == "ann@new.example"  # type: ignore[union-attr]
            assert store.is_email_verified(store.get(str(user.id)))
            with engine.begin() as conn, pytest.raises(EmailTaken):
                add(elsewhere, Member, username="bob", email="bob@example.com")
                store.set_email(user, "bob@example.com", conn)
        session.close()
    finally:
        Base.metadata.drop_all(elsewhere)
        elsewhere.dispose()


def test_the_models_validators_run_on_set_email(engine: Engine, tables: None) -> None:
    """Written through an ORM session (ours, on the caller's connection):
    the host's ``@validates`` and mapper events see the change."""
    seen: list[str] = []

    @event.listens_for(Member, "before_update")
    def before_update(mapper: Any, connection: Any, target: Member) -> None:
        seen.append(str(target.email))

    try:
        user = add(engine, Member, username="ann", email="ann@example.com")
        store = member_store()
        app = make_app(engine, store)
        with app.app_context(), engine.begin() as conn:
            store.set_email(user, "ann@new.example", conn)
    finally:
        event.remove(Member, "before_update", before_update)
    assert seen == ["ann@new.example"]


@pytest.mark.postgresql
def test_two_changes_to_one_address_at_once_one_wins(
    engine: Engine, tables: None
) -> None:
    """Two users' changes to one address, in transactions that overlap: the
    second waits for the first's lock on the address, then finds it taken.
    On a column without a unique constraint, so that only the lock stands
    between them."""
    ann = add(engine, Open, username="ann", email="ann@example.com")
    bob = add(engine, Open, username="bob", email="bob@example.com")
    store = SQLAlchemyUserStore(Open, login="username", email="email")
    app = make_app(engine, store)
    first_done = threading.Event()
    release = threading.Event()
    results: dict[str, Any] = {}

    def change(name: str, user: Any, hold: bool) -> None:
        try:
            with app.app_context(), engine.begin() as conn:
                store.set_email(user, "new@example.com", conn)
                if hold:
                    first_done.set()
                    release.wait(30)
            results[name] = "changed"
        except EmailTaken:
            results[name] = "taken"

    first = threading.Thread(target=change, args=("ann", ann, True))
    first.start()
    assert first_done.wait(30)
    second = threading.Thread(target=change, args=("bob", bob, False))
    second.start()
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    with engine.connect() as conn:
        assert wait_for(lambda: conn.execute(text(waiting)).scalar() == 1)
    release.set()
    first.join(30)
    second.join(30)
    assert results == {"ann": "changed", "bob": "taken"}
    with Session(engine) as session:
        owners = session.scalars(
            select(Open.username).where(Open.email == "new@example.com")
        ).all()
    assert owners == ["ann"]


@pytest.mark.parametrize("end", ["deactivate", "delete"])
def test_an_address_change_keeps_the_sessions_and_the_orm_watchers(
    engine: Engine, tables: None, end: str
) -> None:
    """Sessions are bound to the password hash, not the address: they live
    on after a change; and the host's ORM deactivation or deletion of the
    user still ends them."""
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store(is_active="active")
    app = make_app(engine, store)
    client = app.test_client()
    login = client.post(
        "/api/auth/login", json={"username": "ann", "password": PASSWORD}
    )
    assert login.status_code == 200
    with app.app_context(), engine.begin() as conn:
        store.set_email(user, "ann@new.example", conn)
    refreshed = client.post("/api/auth/refresh")
    assert refreshed.status_code == 200
    token = refreshed.get_json()["accessToken"]
    assert client.get("/api/auth/sessions", headers=bearer(token)).status_code == 200
    with Session(engine) as session:
        row = session.get(Member, user.id)
        assert row is not None
        if end == "delete":
            session.delete(row)
        else:
            row.active = False
        session.commit()
    assert client.post("/api/auth/refresh").status_code == 401
    assert client.get("/api/auth/sessions", headers=bearer(token)).status_code == 401


def test_set_password_belongs_to_the_callers_transaction(
    engine: Engine, tables: None
) -> None:
    """A reset link spent in a transaction that rolls back leaves the old
    password (the host's rows are in our database: written in it)."""
    user = add(engine, Member, username="ann", email="ann@example.com")
    store = member_store()
    app = make_app(engine, store)
    with app.app_context():
        with pytest.raises(RuntimeError), engine.begin() as conn:
            store.set_password(user, "a brand new passphrase", conn)
            raise RuntimeError("the flow failed after the change")
        assert store.verify_password(store.get(str(user.id)), PASSWORD)
        with engine.begin() as conn:
            store.set_password(user, "a brand new passphrase", conn)
        assert store.verify_password(store.get(str(user.id)), "a brand new passphrase")


def test_an_address_two_users_share_finds_neither(
    engine: Engine, tables: None, caplog: pytest.LogCaptureFixture
) -> None:
    """On a column without a unique constraint (warned about): the exact
    spelling wins; two spellings of one address, neither exact, find
    nobody (no mail to a mailbox that cannot be told apart)."""
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        store = SQLAlchemyUserStore(Open, login="username", email="email")
    assert "not unique" in caplog.text
    add(engine, Open, username="ann", email="ann@example.com")
    add(engine, Open, username="ann2", email="Ann@Example.com")
    add(engine, Open, username="bob", email="Bob@Example.com")
    add(engine, Open, username="bob2", email="BOB@example.com")
    app = make_app(engine, store)
    caplog.clear()
    with app.app_context(), caplog.at_level(logging.WARNING, "flask_tokenauth"):
        assert store.find_by_email("ann@example.com").username == "ann"
        assert caplog.text == ""
        assert store.find_by_email("bob@example.com") is None
        assert "two users have one address" in caplog.text
