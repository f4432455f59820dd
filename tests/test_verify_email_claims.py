"""The ``email_verified`` claim: where every session gets it (register,
login, ``login_user``, ``/password``, the test helpers), how refreshes carry
it without a query (one statement on PostgreSQL still), sessions that were
there before verification was turned on, ``@login_required(verified=True)``
(from the claim alone), ``is_email_verified()`` and
``flask tokenauth users verify``."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text

from flask_tokenauth import (
    TokenAuth,
    auth_bp,
    auth_headers,
    current_user,
    is_email_verified,
    login_required,
    login_user,
    signals,
)
from flask_tokenauth._state import get_state

from .conftest import PASSWORD, Auth, base_config, bearer
from .test_refresh_round_trips import WireLog, counted_refresh, wire
from .test_userstore import assert_code
from .test_verify_email import RESEND, VERIFY, recorder
from .verify_email_app import Mailbox, claims, mailbox, session_column, verify_config

__all__ = ["mailbox", "wire"]  # fixtures, used by name

ADA = "ada@example.com"


def add_views(app: Flask) -> Flask:
    @app.get("/plain")
    @login_required
    def plain() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/verified")
    @login_required(verified=True)
    def verified() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/maybe")
    @login_required(optional=True, verified=True)
    def maybe() -> dict[str, Any]:
        return {"user": current_user.is_authenticated}

    @app.get("/am-i")
    @login_required
    def am_i() -> dict[str, Any]:
        return {"helper": is_email_verified(), "attribute": current_user.email_verified}

    return app


@pytest.fixture
def app(make_app: Any) -> Flask:
    return add_views(make_app(**verify_config()))


def verify(app: Flask, mailbox: Mailbox, email: str = ADA) -> None:
    response = app.test_client().post(VERIFY, json={"token": mailbox.token_for(email)})
    assert response.status_code == 200, response.get_data(as_text=True)


# -- @login_required(verified=True) -------------------------------------------


def test_verified_views_take_only_tokens_that_say_so(
    app: Flask, mailbox: Mailbox
) -> None:
    auth = Auth(app.test_client())
    access = auth.register(ADA).get_json()["accessToken"]
    client = app.test_client()
    assert client.get("/plain", headers=bearer(access)).status_code == 200
    assert_code(
        client.get("/verified", headers=bearer(access)), 403, "EMAIL_NOT_VERIFIED"
    )
    assert_code(client.get("/maybe", headers=bearer(access)), 403, "EMAIL_NOT_VERIFIED")
    assert client.get("/maybe").get_json() == {"user": False}  # anonymous passes
    assert client.get("/am-i", headers=bearer(access)).get_json() == {
        "helper": False,
        "attribute": False,
    }

    verify(app, mailbox)
    # The token in hand still says false (no query); the next refresh's says true.
    assert_code(
        client.get("/verified", headers=bearer(access)), 403, "EMAIL_NOT_VERIFIED"
    )
    assert client.get("/am-i", headers=bearer(access)).get_json() == {
        "helper": True,
        "attribute": True,
    }
    fresh = auth.refresh().get_json()["accessToken"]
    assert client.get("/verified", headers=bearer(fresh)).status_code == 200
    assert client.get("/maybe", headers=bearer(fresh)).get_json() == {"user": True}
    assert_code(client.get("/verified"), 401, "TOKEN_MISSING")


def test_verified_views_refuse_everyone_while_verification_is_off(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = add_views(make_app())
    access = Auth(app.test_client()).register(ADA).get_json()["accessToken"]
    with caplog.at_level(logging.WARNING, "flask_tokenauth"):
        response = app.test_client().get("/verified", headers=bearer(access))
    assert_code(response, 403, "EMAIL_NOT_VERIFIED")
    assert "TOKENAUTH_EMAIL_VERIFICATION is 'off'" in caplog.text


def count_statements(engine: Engine, call: Any) -> tuple[Any, int]:
    """The statements ``call`` sends from this thread (the revocation
    listener's and mirror's own threads are not the request's)."""
    sent: list[str] = []
    me = threading.get_ident()

    def count(*args: Any) -> None:
        if threading.get_ident() == me:
            sent.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return result, len(sent)


@pytest.mark.parametrize("revocation", ["off", "database"])
def test_a_verified_view_costs_what_a_plain_one_costs(
    make_app: Any, engine: Engine, mailbox: Mailbox, revocation: str
) -> None:
    # A copy of the revocations refreshed by a request when it is stale would
    # count in one request and not the other: not stale within this test.
    app = add_views(
        make_app(
            **verify_config(
                TOKENAUTH_REVOCATION=revocation, TOKENAUTH_REVOCATION_STALENESS="1h"
            )
        )
    )
    auth = Auth(app.test_client())
    auth.register(ADA)
    verify(app, mailbox)
    headers = bearer(auth.refresh().get_json()["accessToken"])
    client = app.test_client()
    client.get("/plain", headers=headers)  # the token verified and cached once
    plain, plain_count = count_statements(
        engine, lambda: client.get("/plain", headers=headers)
    )
    verified, verified_count = count_statements(
        engine, lambda: client.get("/verified", headers=headers)
    )
    assert plain.status_code == verified.status_code == 200
    assert verified_count == plain_count
    if revocation == "off":
        assert verified_count == 0  # the claim alone decided


# -- every session start, every refresh ----------------------------------------


def test_every_way_to_start_a_session_carries_the_stores_answer(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    @app.post("/own-login")
    def own_login() -> dict[str, Any]:
        user = get_state().user_store.find_by_email(ADA)
        return {"accessToken": login_user(user)}

    auth = Auth(app.test_client())
    register = auth.register(ADA).get_json()["accessToken"]
    before = {
        "register": register,
        "login_user": app.test_client().post("/own-login").get_json()["accessToken"],
        "helper": auth_headers(_sub(app), app)["Authorization"][7:],
    }
    assert {name: claims(t)["email_verified"] for name, t in before.items()} == {
        "register": False,
        "login_user": False,
        "helper": False,
    }
    verify(app, mailbox)
    password = auth.client.post(
        "/api/auth/password",
        headers=bearer(register),
        json={"currentPassword": PASSWORD, "newPassword": "another long passphrase"},
    )
    after = {
        "login": auth.login(ADA, "another long passphrase").get_json()["accessToken"],
        "password": password.get_json()["accessToken"],
        "login_user": app.test_client().post("/own-login").get_json()["accessToken"],
        "helper": auth_headers(_sub(app), app)["Authorization"][7:],
    }
    assert {
        name: claims(t)["email_verified"] for name, t in after.items()
    } == dict.fromkeys(after, True)


def _sub(app: Flask) -> str:
    with app.app_context():
        store = get_state().user_store
        return store.sub_of(store.find_by_email(ADA))


def test_the_grace_answer_carries_the_claim(make_app: Any, mailbox: Mailbox) -> None:
    app = make_app(**verify_config(TOKENAUTH_REUSE_INTERVAL="60s"))
    auth = Auth(app.test_client())
    auth.register(ADA)
    verify(app, mailbox)
    cookie = auth.refresh_cookie()
    assert cookie is not None
    first = auth.refresh().get_json()["accessToken"]
    auth.set_refresh_cookie(cookie)  # the same token again: a second tab
    repeat = auth.refresh()
    assert repeat.status_code == 200
    assert (
        claims(first)["email_verified"]
        is claims(repeat.get_json()["accessToken"])["email_verified"]
        is True
    )


@pytest.mark.postgresql
def test_a_refresh_with_verification_on_is_still_one_round_trip(
    wire: tuple[WireLog, Engine], mailbox: Mailbox
) -> None:
    log, counted = wire
    app = Flask(__name__)
    app.config.update(base_config(**verify_config()))
    TokenAuth(engine=counted).init_app(app)
    app.register_blueprint(auth_bp)
    auth = Auth(app.test_client())
    auth.register(ADA)
    verify(app, mailbox)
    response, sent = counted_refresh(log, auth.refresh)
    assert response.status_code == 200
    assert len(sent) == 1, sent
    assert claims(response.get_json()["accessToken"])["email_verified"] is True


# -- sessions from before verification was on -----------------------------------


def moved(auth: Auth, app: Flask) -> Auth:
    """The same browser (its refresh cookie) on ``app``."""
    cookie = auth.refresh_cookie()
    assert cookie is not None
    there = Auth(app.test_client())
    there.set_refresh_cookie(cookie)
    return there


def both_apps(make_app: Any, mode: str) -> tuple[Flask, Flask]:
    """The same database, before and after the app turned verification on."""
    return add_views(make_app()), add_views(make_app(**verify_config(mode)))


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_sessions_from_before_keep_working_and_learn_their_claim_once(
    make_app: Any, engine: Engine, mailbox: Mailbox, mode: str
) -> None:
    before, after = both_apps(make_app, mode)
    ada, bob = Auth(before.test_client()), Auth(before.test_client())
    ada.register(ADA)
    bob.register("bob@example.com")
    assert session_column(engine) == [None, None]
    # Bob's address was verified by other means (support staff) meanwhile.
    runner = after.test_cli_runner()
    assert (
        runner.invoke(
            args=["tokenauth", "users", "verify", "bob@example.com"]
        ).exit_code
        == 0
    )
    assert session_column(engine) == [None, True]

    # Now on: Ada's session is not ended (her tokens carry false), Bob's true.
    ada, bob = moved(ada, after), moved(bob, after)
    ada_token = ada.refresh().get_json()["accessToken"]
    assert claims(ada_token)["email_verified"] is False
    assert session_column(engine)[0] is False  # remembered: no lookup next time
    assert claims(bob.refresh().get_json()["accessToken"])["email_verified"] is True
    client = after.test_client()
    assert client.get("/plain", headers=bearer(ada_token)).status_code == 200
    assert_code(
        client.get("/verified", headers=bearer(ada_token)), 403, "EMAIL_NOT_VERIFIED"
    )
    # Her session can ask for the link that ``required`` login would need.
    assert client.post(RESEND, headers=bearer(ada_token)).status_code == 202
    verify(after, mailbox)
    assert claims(ada.refresh().get_json()["accessToken"])["email_verified"] is True


def test_login_user_starts_a_session_for_an_unverified_user_under_required(
    make_app: Any, mailbox: Mailbox
) -> None:
    app = add_views(make_app(**verify_config("required")))

    @app.post("/sso")
    def sso() -> dict[str, Any]:
        user = get_state().user_store.find_by_email(ADA)
        return {"accessToken": login_user(user), "verified": is_email_verified(user)}

    Auth(app.test_client()).register(ADA)
    answer = app.test_client().post("/sso").get_json()
    assert answer["verified"] is False
    assert claims(answer["accessToken"])["email_verified"] is False
    headers = bearer(answer["accessToken"])
    assert_code(
        app.test_client().get("/verified", headers=headers), 403, "EMAIL_NOT_VERIFIED"
    )


# -- the app's own claims, is_email_verified ----------------------------------


@pytest.mark.parametrize("mode", ["off", "optional"])
def test_an_apps_own_email_verified_claim_is_its_own_only_while_off(
    engine: Engine, mode: str
) -> None:
    app = Flask(__name__)
    config = base_config() if mode == "off" else base_config(**verify_config(mode))
    app.config.update(config)
    TokenAuth(
        engine=engine, additional_claims=lambda sub: {"email_verified": "theirs"}
    ).init_app(app)
    app.register_blueprint(auth_bp)
    auth = Auth(app.test_client())
    if mode == "off":
        token = auth.register(ADA).get_json()["accessToken"]
        assert claims(token)["email_verified"] == "theirs"
    else:
        app.testing = False  # the loader's bug is a 500, as for any reserved claim
        assert auth.register(ADA).status_code == 500


def test_is_email_verified_by_id_and_for_no_such_user(
    app: Flask, mailbox: Mailbox
) -> None:
    Auth(app.test_client()).register(ADA)
    sub = _sub(app)
    with app.app_context():
        assert is_email_verified(sub) is False
        with pytest.raises(LookupError):
            is_email_verified("999999")
    verify(app, mailbox)
    with app.app_context():
        assert is_email_verified(int(sub)) is True


# -- flask tokenauth users verify ---------------------------------------------


def test_cli_verify_marks_the_address_ends_its_links_and_tells(
    app: Flask, engine: Engine, mailbox: Mailbox
) -> None:
    auth = Auth(app.test_client())
    auth.register(ADA)
    seen: list[Any] = []
    receiver = recorder(seen)
    signals.email_verified.connect(receiver, app)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["tokenauth", "users", "verify", " Ada@Example.com "])
    assert result.exit_code == 0, result.output
    assert "ada@example.com is now verified." in result.output
    assert [kw["email"] for kw in seen] == [ADA]
    assert session_column(engine) == [True]
    assert claims(auth.refresh().get_json()["accessToken"])["email_verified"] is True
    # The link mailed at registration is spent.
    response = app.test_client().post(VERIFY, json={"token": mailbox.token_for(ADA)})
    assert_code(response, 400, "LINK_INVALID")

    again = runner.invoke(args=["tokenauth", "users", "verify", ADA])
    assert again.exit_code == 0
    assert "already verified" in again.output
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("nobody@example.com", "No user with the address"),
        ("not an address", "Invalid email"),
    ],
)
def test_cli_verify_refuses_unknown_and_malformed_addresses(
    app: Flask, email: str, message: str
) -> None:
    result = app.test_cli_runner().invoke(args=["tokenauth", "users", "verify", email])
    assert result.exit_code == 1
    assert message in result.output
    with app.app_context(), get_state().db.begin() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM tokenauth_users")).scalar_one() == 0
        )
