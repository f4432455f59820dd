"""The host's users are the identity: :class:`SQLAlchemyUserStore` over a
model of the host's own (here a table named ``users``, which the library's
own tables no longer collide with), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from flask import Blueprint, Flask, jsonify
from sqlalchemy import (
    Boolean,
    Engine,
    ForeignKey,
    Integer,
    String,
    Uuid,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from flask_tokenauth import (
    ConfigurationError,
    TokenAuth,
    auth_bp,
    current_claims,
    current_user,
    login_required,
    login_user,
    revoke_user_sessions,
)
from flask_tokenauth._passwords import hash_password
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD, base_config, bearer

NEW_PASSWORD = "a brand new passphrase"


def make_model(kind: str = "int") -> type[Any]:
    """A host ``User`` on a declarative base of its own (a fresh class per
    test: the store's ORM events are registered on the class)."""

    class Base(DeclarativeBase):
        pass

    id_column: Any
    if kind == "int":
        id_column = mapped_column(Integer, primary_key=True)
    elif kind == "uuid":
        id_column = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    else:
        id_column = mapped_column(String(40), primary_key=True)

    class User(Base):
        __tablename__ = "users"  # the 0.1 library's name: no collision now
        id: Mapped[Any] = id_column
        username: Mapped[str] = mapped_column(String(80), unique=True)
        password_hash: Mapped[str] = mapped_column(String(255))
        active: Mapped[bool] = mapped_column(Boolean, default=True)

    return User


@pytest.fixture
def host(engine: Engine) -> Iterator[type[Any]]:
    model = make_model()
    model.metadata.create_all(engine)
    yield model
    model.metadata.drop_all(engine)


def add_user(
    engine: Engine,
    model: type[Any],
    username: str = "alice",
    password_hash: str | None = None,
    **values: Any,
) -> Any:
    with Session(engine, expire_on_commit=False) as session:
        user = model(
            username=username,
            password_hash=password_hash or generate_password_hash(PASSWORD),
            **values,
        )
        session.add(user)
        session.commit()
        return user


def host_app(engine: Engine, store: SQLAlchemyUserStore, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(base_config(**{"TOKENAUTH_REGISTER_ENABLED": False, **config}))
    TokenAuth(engine=engine, user_store=store).init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/me")
    @login_required
    def me() -> Any:
        user = current_user._get_current_object()  # type: ignore[attr-defined]
        return {"username": user.username, "type": type(user).__name__}

    @app.get("/claims")
    @login_required
    def claims() -> Any:
        return {"sub": current_claims["sub"]}

    return app


def login(app: Flask, username: str = "alice", password: str = PASSWORD) -> Any:
    client = app.test_client()
    response = client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )
    return client, response


def sub_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def assert_code(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["code"] == code


@pytest.mark.parametrize(
    "password_hash",
    [
        generate_password_hash(PASSWORD, method="scrypt"),
        generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
        hash_password(PASSWORD, 4),
    ],
    ids=["scrypt", "pbkdf2", "bcrypt"],
)
def test_existing_user_logs_in_with_username_and_own_hash(
    engine: Engine, host: type[Any], password_hash: str
) -> None:
    user = add_user(engine, host, password_hash=password_hash)
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
    client, response = login(app)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user"] == {"id": user.id, "username": "alice"}
    token = body["accessToken"]
    assert sub_of(token) == str(user.id)
    me = client.get("/me", headers=bearer(token)).get_json()
    assert me == {"username": "alice", "type": "User"}
    assert client.post("/api/auth/refresh").status_code == 200

    _, wrong = login(app, password="not the password")
    _, unknown = login(app, username="nobody")
    for response in (wrong, unknown):
        assert_code(response, 401, "INVALID_CREDENTIALS")
    assert wrong.get_json() == unknown.get_json()


@pytest.mark.parametrize("kind", ["int", "uuid", "str"])
def test_sub_is_the_host_primary_key(engine: Engine, kind: str) -> None:
    model = make_model(kind)
    model.metadata.create_all(engine)
    try:
        values = {"id": "alice-key"} if kind == "str" else {}
        user = add_user(engine, model, **values)
        store = SQLAlchemyUserStore(model, login="username")
        app = host_app(engine, store)
        client, response = login(app)
        token = response.get_json()["accessToken"]
        assert sub_of(token) == str(user.id)
        assert client.get("/me", headers=bearer(token)).status_code == 200
        assert store.is_subject(str(user.id))
        not_canonical = {
            "int": ["01", "+1", "1.0", str(2**31), ""],
            "uuid": [str(user.id).upper(), str(user.id).replace("-", ""), "1"],
            "str": ["", "a\x00b", "x" * 41],
        }[kind]
        for sub in not_canonical:
            assert not store.is_subject(sub), sub
    finally:
        model.metadata.drop_all(engine)


def test_passlib_context_and_callable_verifiers(
    engine: Engine, host: type[Any]
) -> None:
    passlib = pytest.importorskip("passlib.context")
    context = passlib.CryptContext(schemes=["pbkdf2_sha256"])
    add_user(engine, host, password_hash=context.hash(PASSWORD))
    add_user(engine, host, "bob", password_hash="plain:" + PASSWORD)
    app = host_app(engine, SQLAlchemyUserStore(host, login="username", verify=context))
    assert login(app)[1].status_code == 200
    seen: list[str] = []

    def verify(user: Any, password: str) -> bool:
        seen.append(user.username)
        return bool(user.password_hash == "plain:" + password)

    app = host_app(
        engine,
        SQLAlchemyUserStore(host, login="username", verify=verify, hash=str.upper),
    )
    assert login(app, "bob")[1].status_code == 200
    assert_code(login(app, "bob", "wrong")[1], 401, "INVALID_CREDENTIALS")
    assert seen == ["bob", "bob"]


def test_a_verifier_that_raises_is_a_logged_500(
    engine: Engine, host: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    add_user(engine, host)

    def broken(user: Any, password: str) -> bool:
        raise RuntimeError("the host's verifier is broken")

    app = host_app(
        engine,
        SQLAlchemyUserStore(host, login="username", verify=broken, hash=str.upper),
    )
    with caplog.at_level(logging.ERROR):
        _, response = login(app)
    assert_code(response, 500, "INTERNAL_ERROR")
    assert "the host's verifier is broken" in caplog.text


def composite_model() -> type[Any]:
    class Base(DeclarativeBase):
        pass

    class Pair(Base):
        __tablename__ = "pairs"
        a: Mapped[int] = mapped_column(Integer, primary_key=True)
        b: Mapped[int] = mapped_column(Integer, primary_key=True)
        email: Mapped[str] = mapped_column(String(80), unique=True)
        password_hash: Mapped[str] = mapped_column(String(255))

    return Pair


def non_unique_model() -> type[Any]:
    class Base(DeclarativeBase):
        pass

    class Person(Base):
        __tablename__ = "people"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(80))
        password_hash: Mapped[str] = mapped_column(String(255))

    return Person


@pytest.mark.parametrize(
    ("make", "config", "says"),
    [
        (lambda m: SQLAlchemyUserStore(m, login="nick"), {}, "login="),
        (
            lambda m: SQLAlchemyUserStore(m, login="username", password="pw"),
            {},
            "password=",
        ),
        (
            lambda m: SQLAlchemyUserStore(m, login="username", is_active="enabled"),
            {},
            "is_active=",
        ),
        (lambda m: SQLAlchemyUserStore(m, login="username", verify=42), {}, "verify="),
        (
            lambda m: SQLAlchemyUserStore(m, login="username", verify="md5"),
            {},
            "verify=",
        ),
        (
            lambda m: SQLAlchemyUserStore(m, login="username", create="yes"),
            {},
            "create=",
        ),
        (lambda m: SQLAlchemyUserStore(object), {}, "mapped"),
        (lambda m: SQLAlchemyUserStore(composite_model()), {}, "primary key"),
        (
            lambda m: SQLAlchemyUserStore(non_unique_model(), login="name"),
            {},
            "unique",
        ),
        (
            lambda m: SQLAlchemyUserStore(m, login="username"),
            {"TOKENAUTH_REGISTER_ENABLED": True},
            "TOKENAUTH_REGISTER_ENABLED",
        ),
        (
            lambda m: SQLAlchemyUserStore(m, login="username", verify=lambda u, p: 1),
            {},
            "TOKENAUTH_PASSWORD_CHANGE_ENABLED",
        ),
    ],
)
def test_misconfiguration_stops_start_up(
    engine: Engine,
    host: type[Any],
    make: Callable[[type[Any]], SQLAlchemyUserStore],
    config: dict[str, Any],
    says: str,
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        host_app(engine, make(host), **config)


def revocation_config(request: pytest.FixtureRequest, mode: str) -> dict[str, Any]:
    if mode == "redis":
        return dict(request.getfixturevalue("redis_config"))
    return {"TOKENAUTH_REVOCATION": "database"}


@pytest.mark.parametrize("mode", ["database", "redis"])
@pytest.mark.parametrize("how", ["deleted", "disabled"])
@pytest.mark.requirement("ASVS-5.0-7.4.2")
def test_user_deleted_or_disabled_through_the_orm_loses_everything(
    engine: Engine,
    host: type[Any],
    request: pytest.FixtureRequest,
    mode: str,
    how: str,
) -> None:
    """Access tokens stop at the next request even on a view that never
    loads the user; refresh and login stop too."""
    user = add_user(engine, host)
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, **revocation_config(request, mode))
    client, response = login(app)
    token = response.get_json()["accessToken"]
    assert client.get("/claims", headers=bearer(token)).status_code == 200

    with Session(engine) as session:
        loaded = session.get(host, user.id)
        if how == "deleted":
            session.delete(loaded)
        else:
            loaded.active = False
        session.commit()

    assert_code(client.get("/claims", headers=bearer(token)), 401, "TOKEN_REVOKED")
    assert client.post("/api/auth/refresh").status_code == 401
    assert_code(login(app)[1], 401, "INVALID_CREDENTIALS")


def test_a_rolled_back_deletion_ends_nothing(engine: Engine, host: type[Any]) -> None:
    user = add_user(engine, host)
    app = host_app(
        engine,
        SQLAlchemyUserStore(host, login="username"),
        TOKENAUTH_REVOCATION="database",
    )
    client, response = login(app)
    token = response.get_json()["accessToken"]
    with Session(engine) as session:
        session.delete(session.get(host, user.id))
        session.flush()
        session.rollback()
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    assert client.post("/api/auth/refresh").status_code == 200


@pytest.mark.parametrize("how", ["deleted", "disabled"])
def test_a_savepoint_rolled_back_after_a_deletion_keeps_it(
    engine: Engine, host: type[Any], how: str
) -> None:
    """A savepoint that rolls back (``try: with session.begin_nested():``)
    forgets only what happened inside it: the user deleted or disabled
    before it, in the transaction that commits, still loses everything."""
    user = add_user(engine, host)
    add_user(engine, host, "bob")
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    client, response = login(app)
    token = response.get_json()["accessToken"]
    with Session(engine) as session:
        loaded = session.get(host, user.id)
        if how == "deleted":
            session.delete(loaded)
        else:
            loaded.active = False
        session.flush()
        savepoint = session.begin_nested()
        session.get(host, user.id + 1).username = "robert"
        session.flush()
        savepoint.rollback()
        session.commit()
    assert_code(client.get("/claims", headers=bearer(token)), 401, "TOKEN_REVOKED")


@pytest.mark.parametrize("how", ["deleted", "disabled"])
def test_changes_outside_the_orm_are_caught_at_refresh_and_current_user(
    engine: Engine, host: type[Any], how: str
) -> None:
    """Raw SQL fires no ORM event: the next refresh and ``current_user``
    find the user gone (or disabled)."""
    user = add_user(engine, host)
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION="database")
    client, response = login(app)
    token = response.get_json()["accessToken"]
    with engine.begin() as conn:
        if how == "deleted":
            conn.execute(delete(host).where(host.id == user.id))
        else:
            conn.execute(update(host).where(host.id == user.id).values(active=False))
    expected = "REFRESH_TOKEN_INVALID" if how == "deleted" else "REFRESH_TOKEN_REVOKED"
    # A view that loads the user sees it at once; one that does not, only
    # once a refresh has found the user gone and revoked the session.
    assert_code(client.get("/me", headers=bearer(token)), 401, "USER_NOT_FOUND")
    assert client.get("/claims", headers=bearer(token)).status_code == 200
    assert_code(client.post("/api/auth/refresh"), 401, expected)
    # The refresh revoked the session: its access tokens stop everywhere.
    assert_code(client.get("/claims", headers=bearer(token)), 401, "TOKEN_REVOKED")


def test_register_through_the_create_hook(engine: Engine, host: type[Any]) -> None:
    def create(username: str, password: str) -> Any:
        return add_user(engine, host, username, generate_password_hash(password))

    app = host_app(
        engine,
        SQLAlchemyUserStore(host, login="username", create=create),
        TOKENAUTH_REGISTER_ENABLED=True,
    )
    client = app.test_client()
    body = {"username": "carol", "password": PASSWORD}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["user"]["username"] == "carol"
    assert_code(client.post("/api/auth/register", json=body), 409, "EMAIL_TAKEN")
    with Session(engine) as session:
        assert session.scalar(select(host.username)) == "carol"


def test_password_change_writes_the_host_hash(engine: Engine, host: type[Any]) -> None:
    add_user(engine, host)
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
    client, response = login(app)
    token = response.get_json()["accessToken"]
    changed = client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(token),
    )
    assert changed.status_code == 200, changed.get_json()
    with Session(engine) as session:
        stored = session.scalar(select(host.password_hash))
    # werkzeug's scheme: the host's own login form keeps working.
    assert stored is not None and check_password_hash(stored, NEW_PASSWORD)
    assert_code(login(app)[1], 401, "INVALID_CREDENTIALS")
    assert login(app, password=NEW_PASSWORD)[1].status_code == 200


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("TOKENAUTH_REGISTER_ENABLED", "/api/auth/register"),
        ("TOKENAUTH_PASSWORD_CHANGE_ENABLED", "/api/auth/password"),
    ],
)
def test_endpoints_can_be_switched_off(make_app: Any, key: str, path: str) -> None:
    client = make_app(**{key: False}).test_client()
    assert_code(client.post(path, json={}), 404, "NOT_FOUND")
    # On by default: the endpoint answers (a 400/401, not a 404).
    assert make_app().test_client().post(path, json={}).status_code in {400, 401}


def test_host_user_sessions_by_username_from_the_cli(
    engine: Engine, host: type[Any]
) -> None:
    add_user(engine, host)
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
    login(app)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["tokenauth", "sessions", "alice"])
    assert listed.exit_code == 0, listed.output
    assert len(listed.output.strip().splitlines()) == 1
    revoked = runner.invoke(args=["tokenauth", "revoke-sessions", "alice"])
    assert "Revoked 1 session(s)." in revoked.output
    missing = runner.invoke(args=["tokenauth", "sessions", "nobody"])
    assert "No user with username nobody" in missing.output


def test_flask_sqlalchemy_model(engine: Engine, tmp_path: Any) -> None:
    """A ``db.Model`` of Flask-SQLAlchemy: its session is found on its own,
    and ``db.session.delete`` ends the user's sessions."""
    fsa = pytest.importorskip("flask_sqlalchemy")

    class Base(DeclarativeBase):
        pass

    db = fsa.SQLAlchemy(model_class=Base)

    class Member(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        email: Mapped[str] = mapped_column(String(120), unique=True)
        password_hash: Mapped[str] = mapped_column(String(255))

    class Post(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        author_id: Mapped[int] = mapped_column(ForeignKey("member.id"))

    app = Flask(__name__)
    app.config.update(
        base_config(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'host.sqlite3'}",
            TOKENAUTH_REGISTER_ENABLED=False,
            TOKENAUTH_REVOCATION="database",
        )
    )
    db.init_app(app)
    TokenAuth(engine=engine, user_store=SQLAlchemyUserStore(Member)).init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"email": current_user.email}

    with app.app_context():
        db.create_all()
        member = Member(
            email="dora@example.com", password_hash=generate_password_hash(PASSWORD)
        )
        db.session.add(member)
        db.session.commit()
        member_id = member.id
    client = app.test_client()
    response = client.post(
        "/api/auth/login", json={"email": "dora@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["accessToken"]
    assert client.get("/me", headers=bearer(token)).get_json() == {
        "email": "dora@example.com"
    }
    with app.app_context():
        db.session.delete(db.session.get(Member, member_id))
        db.session.commit()
    assert_code(client.get("/me", headers=bearer(token)), 401, "TOKEN_REVOKED")
    with engine.connect() as conn:
        revoked = conn.execute(
            text("SELECT count(*) FROM tokenauth_sessions WHERE revoked_at IS NULL")
        ).scalar()
    assert revoked == 0


def sso_app(engine: Engine, host: type[Any], **config: Any) -> Flask:
    """A host that authenticates users its own way (an SSO callback)."""
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"), **config)

    @app.post("/sso/<username>")
    def sso(username: str) -> Any:
        with Session(engine) as session:
            user = session.scalars(select(host).where(host.username == username)).one()
        return {"accessToken": login_user(user)}

    @app.post("/sso-id/<int:user_id>")
    def sso_by_id(user_id: int) -> Any:
        response = jsonify(ok=True)
        response.headers["X-Token"] = login_user(user_id, response)
        return response

    @app.post("/logout-user/<int:user_id>")
    def logout_user(user_id: int) -> Any:
        return {"revoked": len(revoke_user_sessions(user_id))}

    return app


def refresh_cookie_path(response: Any) -> str:
    cookies = [h for h in response.headers.getlist("Set-Cookie") if "refresh" in h]
    assert len(cookies) == 1, cookies
    return next(
        part.split("=", 1)[1]
        for part in cookies[0].split("; ")
        if part.lower().startswith("path=")
    )


def test_login_user_starts_a_session_for_a_host_authenticated_user(
    engine: Engine, host: type[Any]
) -> None:
    user = add_user(engine, host)
    app = sso_app(engine, host, TOKENAUTH_REVOCATION="database")
    client = app.test_client()
    response = client.post("/sso/alice")
    assert response.status_code == 200, response.get_json()
    # The cookie is the blueprint's, not the SSO view's.
    assert refresh_cookie_path(response) == "/api/auth"
    token = response.get_json()["accessToken"]
    assert sub_of(token) == str(user.id)
    assert client.get("/me", headers=bearer(token)).status_code == 200
    assert client.post("/api/auth/refresh").status_code == 200

    by_id = client.post(f"/sso-id/{user.id}")
    assert refresh_cookie_path(by_id) == "/api/auth"
    assert sub_of(by_id.headers["X-Token"]) == str(user.id)

    assert client.post(f"/logout-user/{user.id}").get_json() == {"revoked": 2}
    assert_code(client.get("/claims", headers=bearer(token)), 401, "TOKEN_REVOKED")


def test_login_user_follows_the_mount_path(engine: Engine, host: type[Any]) -> None:
    add_user(engine, host)
    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_REGISTER_ENABLED=False))
    TokenAuth(
        engine=engine, user_store=SQLAlchemyUserStore(host, login="username")
    ).init_app(app)
    api = Blueprint("api", __name__, url_prefix="/v2")
    api.register_blueprint(auth_bp, url_prefix="/tokens", name="tokens")
    app.register_blueprint(api)

    @app.post("/sso")
    def sso() -> Any:
        return {"accessToken": login_user(1)}

    client = app.test_client()
    response = client.post("/sso")
    assert refresh_cookie_path(response) == "/v2/tokens"
    assert client.post("/v2/tokens/refresh").status_code == 200
    # A configured path wins.
    fixed = sso_app(engine, host, TOKENAUTH_COOKIE_PATH="/v2/tokens/")
    assert refresh_cookie_path(fixed.test_client().post("/sso/alice")) == "/v2/tokens/"


def test_login_user_refuses_unknown_and_inactive_users(
    engine: Engine, host: type[Any]
) -> None:
    add_user(engine, host, "eve", active=False)
    app = host_app(
        engine, SQLAlchemyUserStore(host, login="username", is_active="active")
    )
    with app.test_request_context("/"):
        with pytest.raises(LookupError):
            login_user(999)
        with pytest.raises(LookupError):
            login_user(1)


def test_wrong_password_limits_key_by_the_normalized_login(
    engine: Engine, host: type[Any]
) -> None:
    """The per-account limit counts wrong passwords of one username, however
    it is spelled (``normalize``), and a right password then waits too."""
    add_user(engine, host)
    app = host_app(
        engine,
        SQLAlchemyUserStore(host, login="username", normalize=str.lower),
        TOKENAUTH_RATELIMIT_LOGIN="1000/minute",
        TOKENAUTH_RATELIMIT_LOGIN_FAILURES="3/minute",
        TOKENAUTH_RATELIMIT_STORAGE_URI="memory://",
    )
    for spelling in ("alice", "ALICE", " Alice "):
        assert_code(login(app, spelling, "wrong")[1], 401, "INVALID_CREDENTIALS")
    assert_code(login(app, "alice")[1], 429, "RATE_LIMITED")


def test_create_user_from_the_cli_needs_the_create_hook(
    engine: Engine, host: type[Any]
) -> None:
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
    result = app.test_cli_runner().invoke(
        args=["tokenauth", "create-user", "zed", "--password", PASSWORD]
    )
    assert result.exit_code == 1
    assert "create=" in result.output


def test_one_store_serves_several_apps_each_on_its_own_database(
    tmp_path: Any,
) -> None:
    """A store made once (at module level, as in an app factory) and
    attached to two apps queries each app's own database: a plain
    declarative model without ``session=`` is read through the current
    app's engine, never through the last app's."""
    from flask_tokenauth._engine import make_engine
    from flask_tokenauth._migrate import upgrade

    model = make_model()
    store = SQLAlchemyUserStore(model, login="username")
    engines = []
    for name in ("a", "b"):
        engine = make_engine(f"sqlite:///{tmp_path / name}.sqlite3", {})
        upgrade(engine)
        model.metadata.create_all(engine)
        add_user(engine, model, username=f"user-{name}")
        engines.append(engine)
    first, second = (host_app(engine, store) for engine in engines)
    try:
        for app, own, other in (
            (first, "user-a", "user-b"),
            (second, "user-b", "user-a"),
        ):
            assert login(app, own)[1].status_code == 200
            assert_code(login(app, other)[1], 401, "INVALID_CREDENTIALS")
    finally:
        for engine in engines:
            engine.dispose()
