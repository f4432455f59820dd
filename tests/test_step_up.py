"""Step-up: ``@login_required(fresh=...)`` / ``max_age=`` refuse a token
whose ``auth_time`` is older with ``401 REAUTHENTICATION_REQUIRED`` (RFC
9470 challenge with ``max_age``), and ``POST /reauthenticate`` renews it
in the same session.  Old authentications are made by moving ``auth_time``
into the past (in the database, or in a test session), never by sleeping."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from flask_tokenauth import login_required, signals
from flask_tokenauth._assurance import OTP, REAUTH_FACTORS
from flask_tokenauth.errors import InvalidPassword
from flask_tokenauth.models import Session
from flask_tokenauth.testing import start_session

from .assurance_helpers import add_views, age_session, claims_of, get, give_totp
from .conftest import PASSWORD, Auth, bearer
from .test_change_email import Account, Change, flow_config
from .test_change_email import Mailbox as ChangeMailbox

REAUTH = "/api/auth/reauthenticate"


@pytest.fixture
def app(make_app: Any) -> Flask:
    return add_views(make_app(TOKENAUTH_REAUTHENTICATION_MAX_AGE="2m"))


def sessions(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(Session)).scalar_one())


def old_token(app: Flask, user_id: Any, seconds: int, **kwargs: Any) -> str:
    when = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    with app.app_context():
        return start_session(user_id, app, auth_time=when, **kwargs).access_token


def assert_reauth_required(response: Any, max_age: int) -> None:
    assert response.status_code == 401
    assert response.json == {
        "error": "Please authenticate again",
        "code": "REAUTHENTICATION_REQUIRED",
    }
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert challenge.endswith(f', max_age="{max_age}"')


@pytest.mark.parametrize(
    ("path", "max_age"), [("/api/fresh", 300), ("/api/fresh-default", 120)]
)
def test_fresh_window_edges(
    app: Flask, auth: Auth, client: FlaskClient, path: str, max_age: int
) -> None:
    user_id = auth.register().json["user"]["id"]
    # Well inside the window, and past its end (a few seconds of margin
    # either way: the clock runs between issuing and checking).
    inside = old_token(app, user_id, max_age - 5)
    assert get(client, path, inside).status_code == 200
    outside = old_token(app, user_id, max_age + 5)
    assert_reauth_required(get(client, path, outside), max_age)
    # The ordinary views do not care how old the authentication is.
    assert get(client, "/api/me", outside).status_code == 200


def test_reauthenticate_renews_auth_time_in_the_same_session(
    app: Flask, auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    token = auth.register().json["accessToken"]
    sid = claims_of(token)["sid"]
    age_session(engine, sid, 3600)
    stale = auth.refresh().json["accessToken"]
    assert claims_of(stale)["auth_time"] <= claims_of(token)["auth_time"] - 3590
    assert_reauth_required(get(client, "/api/fresh", stale), 300)
    count = sessions(engine)
    events: list[dict[str, Any]] = []
    signals.reauthenticated.connect(
        lambda _app, **kw: events.append(kw), app, weak=False
    )

    response = client.post(REAUTH, headers=bearer(stale), json={"password": PASSWORD})
    assert response.status_code == 200, response.json
    assert set(response.json) == {"accessToken"}
    fresh = response.json["accessToken"]
    claims = claims_of(fresh)
    assert claims["sid"] == sid and claims["amr"] == ["pwd"] and claims["aal"] == 1
    assert get(client, "/api/fresh", fresh).status_code == 200
    assert sessions(engine) == count  # no new session
    cookies = response.headers.getlist("Set-Cookie")
    assert not any(c.startswith("refresh_token=") for c in cookies)
    assert events == [
        {"user_id": int(claims["sub"]), "session_id": sid, "method": "pwd"}
    ]
    assert PASSWORD not in repr(events)
    # The session row holds it: a refresh carries the renewed auth_time.
    refreshed = claims_of(auth.refresh().json["accessToken"])
    assert refreshed["auth_time"] == claims["auth_time"]
    assert (
        get(client, "/api/fresh", auth.refresh().json["accessToken"]).status_code == 200
    )


def test_reauthenticate_keeps_the_level(
    app: Flask, auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    give_totp(engine, claims_of(auth.register().json["accessToken"])["sub"])
    pending = auth.login().json["accessToken"]
    upgraded = client.post("/api/factor-done", headers=bearer(pending)).json
    sid = claims_of(upgraded["accessToken"])["sid"]
    age_session(engine, sid, 3600)
    stale = auth.refresh().json["accessToken"]
    response = client.post(REAUTH, headers=bearer(stale), json={"password": PASSWORD})
    claims = claims_of(response.json["accessToken"])
    assert claims["aal"] == 2 and claims["amr"] == ["pwd", "otp", "mfa"]
    assert get(client, "/api/aal2", response.json["accessToken"]).status_code == 200


def test_pending_session_cannot_step_up(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    give_totp(engine, claims_of(auth.register().json["accessToken"])["sub"])
    pending = auth.login().json["accessToken"]
    response = client.post(REAUTH, headers=bearer(pending), json={"password": PASSWORD})
    assert response.status_code == 401
    assert response.json["code"] == "MFA_REQUIRED"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"password": "wrong password!"}, 403, "WRONG_PASSWORD"),
        ({"password": ""}, 400, "INVALID_PASSWORD"),
        ({}, 400, "VALIDATION_ERROR"),
        ({"password": PASSWORD + "\x00"}, 403, "WRONG_PASSWORD"),
        ({"password": 7}, 400, "VALIDATION_ERROR"),
    ],
)
def test_reauthenticate_refusals_leave_auth_time(
    app: Flask,
    auth: Auth,
    client: FlaskClient,
    engine: Engine,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    token = auth.register().json["accessToken"]
    age_session(engine, claims_of(token)["sid"], 3600)
    stale = auth.refresh().json["accessToken"]
    response = client.post(REAUTH, headers=bearer(stale), json=body)
    assert response.status_code == status, response.json
    assert response.json["code"] == code
    assert "accessToken" not in response.json
    # Nothing was renewed: the next refresh is as stale.
    again = auth.refresh().json["accessToken"]
    assert claims_of(again)["auth_time"] == claims_of(stale)["auth_time"]


def test_wrong_reauthentications_spend_the_password_budget(make_app: Any) -> None:
    app = add_views(make_app(TOKENAUTH_RATELIMIT_LOGIN_FAILURES="2/minute"))
    registering = Auth(app.test_client())
    user_id = registering.register().json["user"]["id"]
    # A stolen access token, on a client that never entered the password.
    thief = app.test_client()
    with app.app_context():
        stolen = start_session(user_id, app).access_token
    for _ in range(2):
        wrong = thief.post(
            REAUTH, headers=bearer(stolen), json={"password": "guess 1234"}
        )
        assert wrong.status_code == 403
    limited = thief.post(REAUTH, headers=bearer(stolen), json={"password": PASSWORD})
    assert limited.status_code == 429
    assert limited.json["code"] == "RATE_LIMITED"
    # The same budget as /login's, for this client...
    assert Auth(thief).login().status_code == 429
    # ...but not for the owner's device, which entered the password before.
    assert registering.login().status_code == 200


@pytest.fixture
def totp_reauth(monkeypatch: pytest.MonkeyPatch) -> list[Mapping[str, Any]]:
    """A stand-in for the TOTP module's verifier (the real one is put back
    after the test): ``{"code": "123456"}`` is right, any other code is
    refused with a 400."""
    seen: list[Mapping[str, Any]] = []

    def verify(state: Any, user: Any, body: Mapping[str, Any]) -> str:
        seen.append(body)
        if body.get("code") != "123456":
            raise InvalidPassword("Wrong code")
        return OTP

    monkeypatch.setitem(REAUTH_FACTORS, "code", verify)
    return seen


def test_reauthenticate_with_a_factor(
    app: Flask,
    auth: Auth,
    client: FlaskClient,
    engine: Engine,
    totp_reauth: list[Mapping[str, Any]],
) -> None:
    token = auth.register().json["accessToken"]
    age_session(engine, claims_of(token)["sid"], 3600)
    stale = auth.refresh().json["accessToken"]
    wrong = client.post(REAUTH, headers=bearer(stale), json={"code": "000000"})
    assert wrong.status_code == 400
    right = client.post(REAUTH, headers=bearer(stale), json={"code": "123456"})
    assert right.status_code == 200
    claims = claims_of(right.json["accessToken"])
    assert claims["amr"] == ["pwd", "otp"]
    assert get(client, "/api/fresh", right.json["accessToken"]).status_code == 200
    # A body with a password is a password re-authentication.
    both = client.post(
        REAUTH, headers=bearer(stale), json={"code": "000000", "password": PASSWORD}
    )
    assert both.status_code == 200
    assert len(totp_reauth) == 2


def test_password_change_needs_no_other_step_up(
    app: Flask, client: FlaskClient, auth: Auth
) -> None:
    """``/password`` takes the current password: that is the fresh
    authentication, whatever the token's ``auth_time``."""
    user_id = auth.register().json["user"]["id"]
    stale = old_token(app, user_id, 86400)
    response = client.post(
        "/api/auth/password",
        headers=bearer(stale),
        json={"currentPassword": PASSWORD, "newPassword": "another fine passphrase"},
    )
    assert response.status_code == 200
    claims = claims_of(response.json["accessToken"])
    assert get(client, "/api/fresh", response.json["accessToken"]).status_code == 200
    assert claims["amr"] == ["pwd"]


def test_optional_fresh_view_without_token(app: Flask, client: FlaskClient) -> None:
    @app.get("/api/optional-fresh")
    @login_required(optional=True, fresh=60, aal=2)
    def optional_fresh() -> Any:
        return {"ok": True}

    assert client.get("/api/optional-fresh").status_code == 200


def test_change_email_needs_no_other_step_up(
    make_app: Any, smtp_server: Any, mail_config: dict[str, Any], engine: Engine
) -> None:
    """``/change-email`` takes the password too: with a token authenticated
    a day ago it is accepted (the password is the step-up), and a wrong
    password is still refused."""
    mailbox = ChangeMailbox(smtp_server, mail_config)
    app = make_app(**mailbox.config(flow_config()))
    flow = Change(app, mailbox)
    account = flow.user()
    stale = Account(account.client, old_token(app, account.id, 86400), account.id)
    assert claims_of(stale.access)["auth_time"] < claims_of(account.access)["auth_time"]
    assert flow.ask(stale, password="not the password").status_code == 403
    assert flow.ask(stale).status_code == 202
