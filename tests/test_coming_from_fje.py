"""Coming from Flask-JWT-Extended: an API written the FJE way
(``tests/fje_app.py``) and the same API moved to flask_tokenauth
(``tests/fje_converted_app.py``) answer the same requests the same way; where
they differ on purpose (docs/coming-from-fje.md says
why), each side's answer is asserted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.security import generate_password_hash

from flask_tokenauth._state import get_state

from . import fje_app, fje_converted_app
from .conftest import ACCESS_SECRET, REFRESH_SECRET
from .fje_models import Account, db

APPS = {"fje": fje_app.create_app, "converted": fje_converted_app.create_app}
PASSWORD = "alice's password"


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Flask]:
    """Each app on the test database (SQLite, PostgreSQL), with the host's
    ``fje_account`` table and its user alice (an admin)."""
    url = engine.url.render_as_string(hide_password=False)
    app = APPS[request.param](
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "JWT_SECRET_KEY": ACCESS_SECRET,
            "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
            "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
            "TOKENAUTH_BCRYPT_ROUNDS": 4,
        }
    )
    app.name = request.param
    with app.app_context():
        db.create_all()
        db.session.add(
            Account(
                username="alice",
                password_hash=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
                role="admin",
            )
        )
        db.session.commit()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
        if app.name == "converted":
            get_state(app).db.engine.dispose()


def log_in(client: FlaskClient, password: str = PASSWORD) -> Any:
    return client.post("/login", json={"username": "alice", "password": password})


def token_of(client: FlaskClient) -> str:
    response = log_in(client)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def test_the_same_requests_get_the_same_answers(app: Flask) -> None:
    client = app.test_client()
    assert log_in(client, "wrong").status_code == 401
    token = token_of(client)
    me = client.get("/api/me", headers={"Authorization": f"Token {token}"})
    assert me.status_code == 200
    assert me.get_json() == {"id": "1", "username": "alice", "role": "admin"}
    # Only the configured type: no header, or Bearer, is a 401.
    assert client.get("/api/me").status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=bearer).status_code == 401
    # An optional view: the user with a token, "nobody" (falsy) without.
    hello = client.get("/api/hello", headers={"Authorization": f"Token {token}"})
    assert hello.get_json() == {"hello": "alice"}
    assert client.get("/api/hello").get_json() == {"hello": "stranger"}


def test_where_they_differ_and_why(app: Flask) -> None:
    """Each difference docs/coming-from-fje.md lists, asserted on both sides."""
    client = app.test_client()
    token = token_of(client)
    fje = app.name == "fje"
    headers = {"Authorization": f"Token {token}"}

    # A token that does not verify: FJE answers 422, we answer 401 for every
    # token problem (told apart by ``code``), so a client has one rule.
    forged = client.get("/api/me", headers={"Authorization": f"Token {token}x"})
    assert forged.status_code == (422 if fje else 401)
    # Error bodies: FJE's {"msg"}, our {"error", "code"} with a stable code.
    missing = client.get("/api/me").get_json()
    assert set(missing) == ({"msg"} if fje else {"error", "code"})
    if not fje:
        assert missing["code"] == "TOKEN_MISSING"

    # current_user in a view without the decorator: FJE raises RuntimeError
    # (a 500); ours authenticates the request then (the user, or a 401).
    if fje:
        with pytest.raises(RuntimeError, match="jwt_required"):
            client.get("/api/undecorated", headers=headers)
    else:
        undecorated = client.get("/api/undecorated", headers=headers)
        assert undecorated.get_json() == {"username": "alice"}
        assert client.get("/api/undecorated").status_code == 401

    # The login also started a refresh session: /refresh gives a new token.
    refresh = client.post("/api/auth/refresh")
    assert refresh.status_code == (404 if fje else 200)
    if not fje:
        new = {"Authorization": f"Token {refresh.get_json()['accessToken']}"}
        assert client.get("/api/me", headers=new).get_json()["role"] == "admin"
