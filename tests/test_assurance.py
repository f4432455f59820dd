"""Assurance in the token: every access token carries ``amr``, ``aal`` and
``auth_time``; a password login of a user with a second factor starts a
session that reaches only the factor views (``401 MFA_REQUIRED``, RFC 9470
challenge) until a factor upgrades it, in place; a refresh keeps the level.
Over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from flask_tokenauth.models import Session

from .assurance_helpers import ORDINARY, add_views, claims_of, get, give_totp
from .conftest import Auth, bearer


@pytest.fixture
def app(make_app: Any) -> Flask:
    return add_views(make_app())


def signed_in_with_factor(auth: Auth, engine: Engine) -> dict[str, Any]:
    """Register, give the user a confirmed TOTP, and log in again: the
    login's body."""
    sub = claims_of(auth.register().json["accessToken"])["sub"]
    give_totp(engine, sub)
    response = auth.login()
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def session_row(engine: Engine, sid: str) -> Any:
    with engine.begin() as conn:
        return conn.execute(
            select(Session.__table__).where(Session.__table__.c.id == sid)
        ).one()


def test_tokens_carry_amr_aal_auth_time(auth: Auth) -> None:
    before = int(time.time())
    for response in (auth.register(), auth.login(), auth.refresh()):
        claims = claims_of(response.json["accessToken"])
        assert claims["amr"] == ["pwd"]
        assert claims["aal"] == 1
        assert before - 1 <= claims["auth_time"] <= int(time.time())
        assert "mfa_state" not in claims
        assert "mfaRequired" not in response.json


def test_user_without_factor_is_unaffected(auth: Auth, client: FlaskClient) -> None:
    token = auth.register().json["accessToken"]
    for path in ORDINARY:
        assert get(client, path, token).status_code == 200, path
    # ...but an aal=2 view wants a second factor.
    response = get(client, "/api/aal2", token)
    assert response.status_code == 401
    assert response.json["code"] == "MFA_REQUIRED"


def test_password_login_with_factor_is_pending(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    body = signed_in_with_factor(auth, engine)
    assert body["mfaRequired"] is True
    token = body["accessToken"]
    claims = claims_of(token)
    assert claims["aal"] == 1 and claims["amr"] == ["pwd"]
    assert claims["mfa_state"] == "pending"
    row = session_row(engine, claims["sid"])
    assert row.mfa_state == "pending" and row.aal == 1 and row.amr == "pwd"


@pytest.mark.parametrize("path", [*ORDINARY, "/api/aal2", "/api/fresh"])
def test_pending_token_refused_on_every_ordinary_view(
    auth: Auth, client: FlaskClient, engine: Engine, path: str
) -> None:
    token = signed_in_with_factor(auth, engine)["accessToken"]
    response = get(client, path, token)
    assert response.status_code == 401
    assert response.json == {
        "error": "A second factor is required",
        "code": "MFA_REQUIRED",
    }
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api"')
    assert 'error="insufficient_user_authentication"' in challenge


@pytest.mark.parametrize("path", ["/api/auth/sessions", "/api/auth/reauthenticate"])
def test_pending_token_refused_by_the_blueprint(
    auth: Auth, client: FlaskClient, engine: Engine, path: str
) -> None:
    token = signed_in_with_factor(auth, engine)["accessToken"]
    method = client.get if path.endswith("sessions") else client.post
    response = method(path, headers=bearer(token), json={"password": "x"})
    assert response.status_code == 401
    assert response.json["code"] == "MFA_REQUIRED"


def test_pending_token_reaches_opted_in_view(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    token = signed_in_with_factor(auth, engine)["accessToken"]
    response = get(client, "/api/pending-ok", token)
    assert response.status_code == 200
    assert response.json == {"state": "pending"}
    # An enrolment view is not a verification view.
    assert get(client, "/api/enroll-ok", token).json["code"] == "MFA_REQUIRED"


def test_unconfirmed_totp_is_no_factor(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    sub = claims_of(auth.register().json["accessToken"])["sub"]
    give_totp(engine, sub, confirmed=False)
    token = auth.login().json["accessToken"]
    assert "mfa_state" not in claims_of(token)
    assert get(client, "/api/me", token).status_code == 200


def test_totp_switched_off_is_no_factor(make_app: Any, engine: Engine) -> None:
    app = add_views(make_app(TOKENAUTH_TOTP_ENABLED=False))
    auth = Auth(app.test_client())
    sub = claims_of(auth.register().json["accessToken"])["sub"]
    give_totp(engine, sub)
    token = auth.login().json["accessToken"]
    assert "mfa_state" not in claims_of(token)


def test_factor_upgrades_the_same_session(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    pending = signed_in_with_factor(auth, engine)["accessToken"]
    sid = claims_of(pending)["sid"]
    old_cookie = auth.refresh_cookie()
    response = client.post("/api/factor-done", headers=bearer(pending))
    assert response.status_code == 200, response.json
    assert set(response.json) == {"user", "accessToken"}
    token = response.json["accessToken"]
    claims = claims_of(token)
    assert claims["sid"] == sid
    assert claims["aal"] == 2
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert "mfa_state" not in claims
    # The refresh token was rotated: a new cookie, the old one dead.
    new_cookie = auth.refresh_cookie()
    assert new_cookie and new_cookie != old_cookie
    for path in [*ORDINARY, "/api/aal2"]:
        assert get(client, path, token).status_code == 200, path
    # The old (pending) token is still only a pending token.
    assert get(client, "/api/me", pending).json["code"] == "MFA_REQUIRED"
    auth.set_refresh_cookie(old_cookie or "")
    refused = auth.refresh()
    assert refused.status_code == 401
    assert refused.json["code"] == "REFRESH_TOKEN_REVOKED"
    # ...and refusing it did not end the session.
    auth.set_refresh_cookie(new_cookie)
    assert auth.refresh().status_code == 200


def test_refresh_keeps_the_level(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    pending = signed_in_with_factor(auth, engine)["accessToken"]
    # A pending session refreshes into a pending token.
    refreshed = auth.refresh()
    assert refreshed.status_code == 200
    claims = claims_of(refreshed.json["accessToken"])
    assert claims["mfa_state"] == "pending" and claims["aal"] == 1
    upgraded = client.post(
        "/api/factor-done", headers=bearer(refreshed.json["accessToken"])
    ).json["accessToken"]
    upgraded_claims = claims_of(upgraded)
    for _ in range(2):
        token = auth.refresh().json["accessToken"]
        claims = claims_of(token)
        assert claims["aal"] == 2
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert claims["auth_time"] == upgraded_claims["auth_time"]
        assert "mfa_state" not in claims
        assert get(client, "/api/aal2", token).status_code == 200
    assert claims_of(pending)["sid"] == claims["sid"]
