"""Sessions are bound to the identity they were issued to (a keyed
fingerprint of the stored password hash, see :mod:`flask_tokenauth._identity`):
a user table reset that hands an old id to a new user, or a password changed
by the app, ends the old sessions at their next refresh and wherever
``current_user`` loads the user; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import Engine, select, text, update
from werkzeug.security import generate_password_hash

from flask_tokenauth import current_user, login_required
from flask_tokenauth.models import Session as SessionRow
from flask_tokenauth.userstore import SQLAlchemyUserStore

from .conftest import PASSWORD, Auth, bearer
from .test_userstore import (
    add_user,
    assert_code,
    host,  # noqa: F401  (a fixture)
    host_app,
    login,
)

NEW_PASSWORD = "another long passphrase"


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def with_me(app: Flask) -> Flask:
    @app.get("/me")
    @login_required
    def me() -> Any:
        user = current_user._get_current_object()  # type: ignore[attr-defined]
        return {"id": user.id}

    return app


@pytest.mark.parametrize("revocation", ["off", "database"])
def test_a_reset_user_table_hands_no_session_to_the_next_user(
    engine: Engine,
    host: type[Any],  # noqa: F811
    revocation: str,
) -> None:
    """The tutorial's ``init-db``: the table dropped and created again, ids
    from 1 again.  The old cookie and access token do not act as the new
    user 1."""
    add_user(engine, host, "alice")
    store = SQLAlchemyUserStore(host, login="username", is_active="active")
    app = host_app(engine, store, TOKENAUTH_REVOCATION=revocation)
    old, response = login(app, "alice")
    token = response.get_json()["accessToken"]
    assert old.get("/me", headers=bearer(token)).status_code == 200

    host.metadata.drop_all(engine)
    host.metadata.create_all(engine)
    mallory = add_user(engine, host, "mallory")
    assert mallory.id == 1 == int(claims_of(token)["sub"])

    assert_code(old.get("/me", headers=bearer(token)), 401, "USER_NOT_FOUND")
    assert_code(old.post("/api/auth/refresh"), 401, "REFRESH_TOKEN_INVALID")
    # The new user's own sessions work.
    new, response = login(app, "mallory")
    new_token = response.get_json()["accessToken"]
    assert new.get("/me", headers=bearer(new_token)).json == {
        "username": "mallory",
        "type": "User",
    }
    assert new.post("/api/auth/refresh").status_code == 200


def test_a_custom_user_loader_gets_no_user_for_an_old_session(
    engine: Engine,
    host: type[Any],  # noqa: F811
) -> None:
    """``TokenAuth(user_loader=...)`` loads the user its own way; the session
    binding still holds: after a table reset the old access token's
    ``current_user`` is nobody, not the next user 1."""
    from sqlalchemy.orm import Session

    from flask_tokenauth import TokenAuth, auth_bp

    from .conftest import base_config

    add_user(engine, host, "alice")

    def load(sub: str) -> Any:
        with Session(engine, expire_on_commit=False) as session:
            return session.get(host, int(sub))

    app = Flask(__name__)
    app.config.update(base_config(TOKENAUTH_REGISTER_ENABLED=False))
    store = SQLAlchemyUserStore(host, login="username")
    TokenAuth(engine=engine, user_store=store, user_loader=load).init_app(app)
    app.register_blueprint(auth_bp)
    with_me(app)
    client, response = login(app, "alice")
    token = response.get_json()["accessToken"]
    assert client.get("/me", headers=bearer(token)).status_code == 200

    host.metadata.drop_all(engine)
    host.metadata.create_all(engine)
    add_user(engine, host, "mallory")
    assert_code(client.get("/me", headers=bearer(token)), 401, "USER_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth/sessions"),
        ("POST", "/api/auth/logout-others"),
        ("POST", "/api/auth/logout-all"),
    ],
)
def test_an_old_access_token_manages_no_session_of_the_next_user(
    engine: Engine,
    host: type[Any],  # noqa: F811
    method: str,
    path: str,
) -> None:
    """After a table reset, the old user's access token must not read the
    new user 1's sessions (their addresses and browsers) nor log them out;
    and the new user's list holds no session of the old one."""
    add_user(engine, host, "alice")
    app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
    _, response = login(app, "alice")
    old_token = response.get_json()["accessToken"]

    host.metadata.drop_all(engine)
    host.metadata.create_all(engine)
    add_user(engine, host, "mallory")
    new, response = login(app, "mallory")
    new_token = response.get_json()["accessToken"]
    assert claims_of(new_token)["sub"] == claims_of(old_token)["sub"]

    answer = new.open(path, method=method, headers=bearer(old_token))
    assert_code(answer, 401, "USER_NOT_FOUND")
    assert new.post("/api/auth/refresh").status_code == 200
    listed = new.get("/api/auth/sessions", headers=bearer(new_token))
    assert listed.status_code == 200, listed.get_json()
    [only] = listed.get_json()["sessions"]
    assert only["current"] is True


@pytest.mark.parametrize("store", ["builtin", "host"])
def test_a_password_changed_by_the_app_ends_the_sessions(
    engine: Engine,
    host: type[Any],  # noqa: F811
    make_app: Any,
    store: str,
) -> None:
    """As Django does: a new hash written by the app itself (a reset form, an
    admin tool) ends the sessions started with the old one."""
    if store == "host":
        add_user(engine, host, "alice")
        app = host_app(engine, SQLAlchemyUserStore(host, login="username"))
        client, response = login(app, "alice")
        table, where = host.__table__, host.username == "alice"
        relogin = lambda: login(app, "alice", NEW_PASSWORD)[1]  # noqa: E731
        new_hash = generate_password_hash(NEW_PASSWORD)
    else:
        app = with_me(make_app())
        auth = Auth(app.test_client())
        client, response = auth.client, auth.register()
        from flask_tokenauth._passwords import hash_password
        from flask_tokenauth.models import User

        table, where = User.__table__, User.email == "user@example.com"
        relogin = lambda: Auth(app.test_client()).login(  # noqa: E731
            password=NEW_PASSWORD
        )
        new_hash = hash_password(NEW_PASSWORD, 4)
    token = response.get_json()["accessToken"]
    assert "idf" in claims_of(token)
    assert client.get("/me", headers=bearer(token)).status_code == 200

    with engine.begin() as conn:
        conn.execute(update(table).where(where).values(password_hash=new_hash))

    assert_code(client.get("/me", headers=bearer(token)), 401, "USER_NOT_FOUND")
    assert_code(client.post("/api/auth/refresh"), 401, "REFRESH_TOKEN_INVALID")
    fresh = relogin()
    assert fresh.status_code == 200, fresh.get_json()


def test_the_password_endpoint_binds_its_new_session_to_the_new_hash(
    make_app: Any,
) -> None:
    app = with_me(make_app())
    auth = Auth(app.test_client())
    token = auth.register().get_json()["accessToken"]
    changed = auth.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(token),
    )
    assert changed.status_code == 200, changed.get_json()
    new_token = changed.get_json()["accessToken"]
    assert "idf" in claims_of(new_token)
    assert auth.client.get("/me", headers=bearer(new_token)).status_code == 200
    assert auth.refresh().status_code == 200


def test_a_login_that_rehashes_binds_the_session_to_the_new_hash(
    make_app: Any,
) -> None:
    """A login at a new bcrypt cost rewrites the hash: its session is bound
    to the hash stored after that, not the one the login read."""
    Auth(make_app().test_client()).register()
    app = with_me(make_app(TOKENAUTH_BCRYPT_ROUNDS=5))
    auth = Auth(app.test_client())
    token = auth.login().get_json()["accessToken"]
    assert auth.client.get("/me", headers=bearer(token)).status_code == 200
    assert auth.refresh().status_code == 200


def test_a_session_of_before_the_binding_is_bound_at_its_next_refresh(
    make_app: Any, engine: Engine
) -> None:
    """Sessions started before migration 0007 have no fingerprint: accepted
    (their access tokens carry none either), and bound at their next
    refresh, after which a changed identity ends them."""
    app = with_me(make_app())
    auth = Auth(app.test_client())
    auth.register()
    with engine.begin() as conn:
        conn.execute(update(SessionRow).values(user_identity=None))
    refreshed = auth.refresh()
    assert refreshed.status_code == 200
    assert "idf" in claims_of(refreshed.get_json()["accessToken"])
    with engine.begin() as conn:
        bound = conn.execute(select(SessionRow.user_identity)).scalar_one()
        assert bound is not None and len(bound) == 32
        conn.execute(text("UPDATE tokenauth_users SET password_hash = 'other'"))
    assert_code(auth.refresh(), 401, "REFRESH_TOKEN_INVALID")
