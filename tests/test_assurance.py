"""Assurance in the token: every access token carries ``amr``, ``aal`` and
``auth_time``; a password login of a user with a second factor starts a
session that reaches only the factor views (``401 MFA_REQUIRED``, RFC 9470
challenge) until a factor upgrades it, in place; a refresh keeps the level.
Over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update

from flask_tokenauth import login_user
from flask_tokenauth._assurance import HWK, OTP, USER, complete_factor, start_session
from flask_tokenauth._db import as_utc
from flask_tokenauth._state import get_state
from flask_tokenauth.errors import TokenAuthError
from flask_tokenauth.models import RefreshToken, Session

from .assurance_helpers import ORDINARY, add_views, claims_of, get, give_totp
from .conftest import PASSWORD, Auth, bearer


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


@pytest.mark.requirement("NIST-800-63B-4-2.2.1")
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


@pytest.mark.requirement("NIST-800-63B-4-2.2.1")
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


def test_pending_session_is_short_lived(make_app: Any, engine: Engine) -> None:
    app = add_views(make_app(TOKENAUTH_MFA_PENDING_EXPIRES="3m"))
    client = app.test_client()
    auth = Auth(client)
    token = signed_in_with_factor(auth, engine)["accessToken"]
    sid = claims_of(token)["sid"]
    row = session_row(engine, sid)
    lifetime = as_utc(row.expires_at) - as_utc(row.created_at)
    assert lifetime == timedelta(minutes=3)
    cookie = auth.login().headers["Set-Cookie"]
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 170 <= max_age <= 180, cookie
    # Its refresh token dies with it: move the session's end into the past.
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(
            update(Session.__table__)
            .where(Session.__table__.c.id == sid)
            .values(expires_at=past)
        )
        conn.execute(
            update(RefreshToken.__table__)
            .where(RefreshToken.__table__.c.family_id == sid)
            .values(expires_at=past, family_expires_at=past)
        )
    # The access token is still a valid JWT, but the session it names has
    # ended: the factor cannot upgrade it.
    late = client.post("/api/factor-done", headers=bearer(token))
    assert late.status_code == 401
    assert late.json["code"] == "TOKEN_REVOKED"


def test_upgrade_gives_the_full_lifetime(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    token = signed_in_with_factor(auth, engine)["accessToken"]
    sid = claims_of(token)["sid"]
    assert client.post("/api/factor-done", headers=bearer(token)).status_code == 200
    row = session_row(engine, sid)
    assert as_utc(row.expires_at) - as_utc(row.created_at) == timedelta(days=7)
    assert row.mfa_state is None and row.aal == 2 and row.amr == "pwd otp mfa"
    # One spendable token in the session: the one just issued.
    with engine.begin() as conn:
        live = conn.execute(
            select(RefreshToken.__table__).where(
                RefreshToken.__table__.c.family_id == sid,
                RefreshToken.__table__.c.used_at.is_(None),
                RefreshToken.__table__.c.revoked_at.is_(None),
            )
        ).all()
    assert len(live) == 1


def test_session_of_before_0009_reads_as_a_password_login(
    auth: Auth, engine: Engine
) -> None:
    sid = claims_of(auth.register().json["accessToken"])["sid"]
    created = datetime.now(timezone.utc) - timedelta(hours=3)
    with engine.begin() as conn:
        conn.execute(
            update(Session.__table__)
            .where(Session.__table__.c.id == sid)
            .values(
                amr=None, aal=None, auth_time=None, mfa_state=None, created_at=created
            )
        )
    claims = claims_of(auth.refresh().json["accessToken"])
    assert claims["amr"] == ["pwd"] and claims["aal"] == 1
    assert claims["auth_time"] == int(created.timestamp())
    assert "mfa_state" not in claims


@pytest.mark.parametrize("claim", ["amr", "aal", "auth_time", "mfa_state"])
def test_an_apps_claims_cannot_set_the_level(make_app: Any, claim: str) -> None:
    app = make_app()
    value = {"amr": ["hwk"], "aal": 3, "auth_time": 2**31, "mfa_state": None}[claim]
    app.extensions["tokenauth"].access_tokens = type(
        app.extensions["tokenauth"].access_tokens
    )(app.extensions["tokenauth"].settings, lambda sub: {claim: value})
    with pytest.raises(ValueError, match="reserved"):
        Auth(app.test_client()).register()


def test_login_user_says_how_the_app_authenticated(
    make_app: Any, engine: Engine
) -> None:
    app = add_views(make_app())

    @app.post("/sso")
    def sso() -> Any:
        body = request.get_json()
        if body.get("mfa"):
            return {
                "accessToken": login_user(body["id"], amr=["pwd", "otp", "mfa"], aal=2)
            }
        return {"accessToken": login_user(body["id"])}

    client = app.test_client()
    auth = Auth(client)
    user_id = auth.register().json["user"]["id"]
    plain = claims_of(client.post("/sso", json={"id": user_id}).json["accessToken"])
    assert plain["amr"] == ["pwd"] and plain["aal"] == 1 and "mfa_state" not in plain
    give_totp(engine, str(user_id))
    # A user with a factor: the app's one-factor login waits for it...
    pending = client.post("/sso", json={"id": user_id}).json["accessToken"]
    assert claims_of(pending)["mfa_state"] == "pending"
    assert get(client, "/api/me", pending).json["code"] == "MFA_REQUIRED"
    # ...unless the app vouches for the second factor itself.
    both = client.post("/sso", json={"id": user_id, "mfa": True}).json["accessToken"]
    assert claims_of(both)["aal"] == 2
    assert get(client, "/api/aal2", both).status_code == 200
    # Its refresh cookie carries the level.
    claims = claims_of(auth.refresh().json["accessToken"])
    assert claims["aal"] == 2 and claims["amr"] == ["pwd", "otp", "mfa"]


@pytest.mark.requirement("NIST-800-63B-4-2.2.1", "NIST-800-63B-4-2.2.2")
def test_passkey_sign_in_starts_an_aal2_session(make_app: Any, engine: Engine) -> None:
    app = add_views(make_app())

    @app.post("/passkey-done/<int:user_id>")
    def passkey_done(user_id: int) -> Any:
        # What /passkeys/login does once the assertion is verified.
        state = get_state()
        return start_session(state, state.user_store.get(str(user_id)), [HWK, USER])

    client = app.test_client()
    auth = Auth(client)
    user_id = auth.register().json["user"]["id"]
    give_totp(engine, str(user_id))  # a factor: still no pending session
    response = client.post(f"/passkey-done/{user_id}")
    assert response.status_code == 200
    claims = claims_of(response.json["accessToken"])
    assert claims["amr"] == ["hwk", "user"] and claims["aal"] == 2
    assert "mfa_state" not in claims
    assert get(client, "/api/aal2", response.json["accessToken"]).status_code == 200
    assert claims_of(auth.refresh().json["accessToken"])["amr"] == ["hwk", "user"]


def test_password_change_keeps_the_level(
    auth: Auth, client: FlaskClient, engine: Engine
) -> None:
    pending = signed_in_with_factor(auth, engine)["accessToken"]
    upgraded = client.post("/api/factor-done", headers=bearer(pending)).json
    before = claims_of(upgraded["accessToken"])
    response = client.post(
        "/api/auth/password",
        headers=bearer(upgraded["accessToken"]),
        json={"currentPassword": PASSWORD, "newPassword": "another fine passphrase"},
    )
    assert response.status_code == 200, response.json
    claims = claims_of(response.json["accessToken"])
    assert claims["sid"] != before["sid"]  # a new session...
    assert claims["aal"] == 2 and claims["amr"] == before["amr"]  # ...as strong
    assert "mfa_state" not in claims
    assert claims["auth_time"] >= before["auth_time"]
    assert claims_of(auth.refresh().json["accessToken"])["aal"] == 2


@pytest.mark.postgresql
def test_concurrent_upgrades_leave_one_live_token(
    app: Flask, auth: Auth, engine: Engine
) -> None:
    token = signed_in_with_factor(auth, engine)["accessToken"]
    sid = claims_of(token)["sid"]
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def upgrade() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(
            client.post("/api/factor-done", headers=bearer(token)).status_code
        )

    threads = [threading.Thread(target=upgrade) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    with engine.begin() as conn:
        live = conn.execute(
            select(RefreshToken.__table__).where(
                RefreshToken.__table__.c.family_id == sid,
                RefreshToken.__table__.c.used_at.is_(None),
                RefreshToken.__table__.c.revoked_at.is_(None),
            )
        ).all()
    assert len(live) == 1
    row = session_row(engine, sid)
    assert row.aal == 2 and row.amr == "pwd otp mfa" and row.mfa_state is None


def test_a_factor_cannot_upgrade_another_users_session(
    app: Flask, auth: Auth, engine: Engine
) -> None:
    """``complete_factor`` upgrades the session only for its own user: a
    factor view handed another user's ``sid`` (a bug of a custom factor
    view) answers ``401`` and changes nothing."""
    victim = signed_in_with_factor(auth, engine)["accessToken"]
    sid = claims_of(victim)["sid"]
    other = Auth(app.test_client()).register("other@example.com").json["user"]
    with app.test_request_context("/api/auth/mfa/verify", method="POST"):
        state = get_state()
        response = complete_factor_or_error(
            state, state.user_store.get(str(other["id"])), sid
        )
    assert response.status_code == 401
    assert response.json["code"] == "TOKEN_REVOKED"
    row = session_row(engine, sid)
    assert row.mfa_state == "pending" and row.aal == 1


def complete_factor_or_error(state: Any, user: Any, sid: str) -> Any:
    try:
        return complete_factor(state, user, sid, [OTP], aal=2)
    except TokenAuthError as error:
        return error.get_response()
