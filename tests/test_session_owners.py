"""A session acts only for the user who logged in.

* Ids are never reused: a deleted user's credentials never name a newcomer.
* A rotation refuses a session whose user no longer exists (a deletion
  made without the foreign keys enforced leaves the sessions behind).
* An access token whose ``sid`` is not its ``sub``'s session is refused,
  whatever the revocation store (session ids are bound to their user).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import Engine, text

from flask_tokenauth import current_user, login_required
from flask_tokenauth._sid import new_session_id, session_belongs_to

from .conftest import ACCESS_SECRET, REFRESH_SECRET, Auth, bearer

SECRET = REFRESH_SECRET.encode()


@pytest.fixture(params=["database", "redis", "off"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config of each revocation store."""
    config: dict[str, Any] = {"TOKENAUTH_REVOCATION": request.param}
    if request.param == "redis":
        config.update(request.getfixturevalue("redis_config"))
    return config


def protect(app: Flask) -> Flask:
    @app.get("/me")
    @login_required
    def me() -> Any:
        return {"id": current_user.id, "email": current_user.email}

    return app


@pytest.fixture
def sapp(make_app: Any, store: dict[str, Any]) -> Flask:
    return protect(make_app(**store))


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def delete_without_foreign_keys(engine: Engine, user_id: int) -> None:
    """Delete a user as a host could, bypassing ``ON DELETE CASCADE``: on
    SQLite from a plain sqlite3 connection (foreign keys off, as in the
    sqlite3 shell), on PostgreSQL with the foreign-key triggers off."""
    if engine.dialect.name == "sqlite":
        assert engine.url.database
        raw = sqlite3.connect(engine.url.database)
        try:
            raw.execute("DELETE FROM tokenauth_users WHERE id = ?", (user_id,))
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(
                text("DELETE FROM tokenauth_users WHERE id = :id"), {"id": user_id}
            )
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM tokenauth_sessions WHERE user_id = :id"),
            {"id": str(user_id)},
        ).scalar()
    assert left, "the deletion should have left the sessions behind"


def test_a_deleted_users_credentials_never_name_a_newcomer(
    sapp: Flask, engine: Engine
) -> None:
    old = Auth(sapp.test_client())
    body = old.register("old@example.com").get_json()
    old_id, old_token = body["user"]["id"], body["accessToken"]
    delete_without_foreign_keys(engine, old_id)  # the newest user

    new = Auth(sapp.test_client()).register("new@example.com").get_json()
    assert new["user"]["id"] != old_id

    refused = old.refresh()
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "REFRESH_TOKEN_INVALID"
    response = sapp.test_client().get("/me", headers=bearer(old_token))
    assert response.status_code == 401
    # The refresh revoked the session of the missing user: a store that is
    # told (Redis) refuses its tokens as revoked before any user lookup.
    assert response.get_json()["code"] in {"USER_NOT_FOUND", "TOKEN_REVOKED"}


def test_rotation_refuses_a_session_whose_user_is_gone(
    app: Flask, engine: Engine
) -> None:
    gone, kept = Auth(app.test_client()), Auth(app.test_client())
    gone_id = gone.register("gone@example.com").get_json()["user"]["id"]
    kept.register("kept@example.com")
    delete_without_foreign_keys(engine, gone_id)

    response = gone.refresh()
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_INVALID"
    assert kept.refresh().status_code == 200


def test_a_token_naming_another_users_session_is_refused(sapp: Flask) -> None:
    mine = Auth(sapp.test_client()).register("me@example.com").get_json()
    theirs = Auth(sapp.test_client()).register("them@example.com").get_json()
    claims = claims_of(mine["accessToken"])
    claims["sid"] = claims_of(theirs["accessToken"])["sid"]  # a live session
    forged = jwt.encode(
        claims, ACCESS_SECRET, algorithm="HS256", headers={"typ": "at+jwt"}
    )

    client = sapp.test_client()
    assert client.get("/me", headers=bearer(mine["accessToken"])).status_code == 200
    response = client.get("/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.get_json()["code"] == "TOKEN_INVALID"


def test_session_ids_are_bound_to_their_user() -> None:
    sid = new_session_id(SECRET, 7)
    assert len(sid) == 32 and sid == sid.lower() and int(sid, 16) >= 0
    assert new_session_id(SECRET, 7) != sid
    assert session_belongs_to(SECRET, sid, "7")
    assert not session_belongs_to(SECRET, sid, "8")
    assert not session_belongs_to(b"another secret" * 3, sid, "7")
    flipped = sid[:-1] + ("0" if sid[-1] != "0" else "1")
    assert not session_belongs_to(SECRET, flipped, "7")


@pytest.mark.parametrize(
    ("sid", "sub"),
    [
        ("", "7"),
        ("0" * 31, "7"),
        ("0" * 33, "7"),
        ("A" * 32, "7"),
        ("g" * 32, "7"),
        ("\u0660" * 32, "7"),  # Arabic-Indic digits
        ("0" * 32 + "\n", "7"),
        ("0" * 32, "\ud800"),  # a lone surrogate, as JSON can carry
        ("0" * 32, ""),
    ],
)
def test_malformed_session_ids_belong_to_no_one(sid: str, sub: str) -> None:
    assert session_belongs_to(SECRET, sid, sub) is False
