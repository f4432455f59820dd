"""``TRUNCATE tokenauth_users`` on PostgreSQL fires no row trigger: a
statement trigger (migration 0006, and ``metadata.create_all``) revokes the
users' sessions and logs them, so each process's copy of the revocations
refuses their access tokens, and a user who gets a reused id after
``RESTART IDENTITY`` does not inherit the old sessions."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text

from flask_tokenauth import current_claims, login_required
from flask_tokenauth._migrate import downgrade, upgrade
from flask_tokenauth._state import get_state
from flask_tokenauth.models import metadata

from .conftest import Auth, bearer, throwaway_database
from .servers import wait_for

TRIGGER = "tokenauth_users_truncated"


def protected(app: Flask) -> Flask:
    @app.get("/claims")
    @login_required
    def claims() -> Any:
        return {"sub": current_claims["sub"]}

    return app


@pytest.mark.postgresql  # SQLite has no TRUNCATE (its DELETE fires the row trigger)
def test_truncating_the_builtin_users_ends_their_sessions(
    engine: Engine, make_app: Any
) -> None:
    app = protected(make_app(TOKENAUTH_REVOCATION="database"))
    old = Auth(app.test_client())
    registered = old.register("old@example.com").get_json()
    token = registered["accessToken"]
    assert registered["user"]["id"] == 1
    kept = Auth(app.test_client())
    assert old.client.get("/claims", headers=bearer(token)).status_code == 200
    copy = get_state(app).revocation.copy
    with app.app_context():
        sid = get_state(app).access_tokens.verify(token)["sid"]

    with engine.begin() as conn:
        conn.execute(text("TRUNCATE tokenauth_users RESTART IDENTITY"))

    # The copy of this process learns it from the log (not only the
    # database, which it asks while it is not current)...
    assert wait_for(lambda: sid in copy.sessions)
    response = old.client.get("/claims", headers=bearer(token))
    assert (response.status_code, response.get_json()["code"]) == (
        401,
        "TOKEN_REVOKED",
    )
    # ...and the next user, given id 1 again, inherits nothing.
    new = kept.register("new@example.com").get_json()
    assert new["user"]["id"] == 1
    assert old.refresh().status_code == 401
    assert (
        kept.client.get("/claims", headers=bearer(new["accessToken"])).status_code
        == 200
    )
    assert kept.refresh().status_code == 200


def trigger_exists(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_trigger WHERE tgname = :name"),
                {"name": TRIGGER},
            ).scalar()
        )


@pytest.mark.parametrize("how", ["migrations", "create_all"])
def test_the_trigger_is_created_and_dropped(postgres_url: str, how: str) -> None:
    with throwaway_database(postgres_url, "tokenauth_truncate_") as url:
        engine = create_engine(url)
        try:
            if how == "create_all":
                metadata.create_all(engine)
                assert trigger_exists(engine)
                return
            upgrade(engine)
            assert trigger_exists(engine)
            downgrade(engine, "0005")
            assert not trigger_exists(engine)
            with engine.begin() as conn:  # a TRUNCATE without it still works
                conn.execute(text("TRUNCATE tokenauth_users"))
            upgrade(engine)
            assert trigger_exists(engine)
        finally:
            engine.dispose()
