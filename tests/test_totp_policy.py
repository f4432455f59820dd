"""TOTP with the assurance rules: confirming upgrades the session, changing
factors needs a fresh authentication (which ``/reauthenticate {code}``
gives), and ``TOKENAUTH_MFA = "required"`` lets a user reach only the
enrolment until they have confirmed one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, Table, insert, update

from flask_tokenauth.models import Passkey, Session

from .conftest import Auth, bearer
from .test_totp import PREFIX, Clock, Member, clock, code, member
from .test_totp_verify import LIMITS, claims_of, pending_login, verify, with_views

__all__ = ["clock"]  # a fixture of test_totp, used here too

_sessions: Table = Session.__table__  # type: ignore[assignment]
_passkeys: Table = Passkey.__table__  # type: ignore[assignment]


#: Passkeys on: a passkey row (``give_passkey``) is then a factor the
#: session can be asked to prove (with passkeys off it counts for nothing).
PASSKEYS = {
    "TOKENAUTH_PASSKEYS_ENABLED": True,
    "TOKENAUTH_WEBAUTHN_RP_ID": "localhost",
    "TOKENAUTH_WEBAUTHN_ORIGINS": "http://localhost",
}


@pytest.fixture
def app(make_app: Any) -> Flask:
    return with_views(make_app(**LIMITS, **PASSKEYS))


def give_passkey(engine: Engine, sub: str, credential_id: str = "cred") -> None:
    """A passkey row, as the passkeys flow leaves one (not checked here)."""
    with engine.begin() as conn:
        conn.execute(
            insert(_passkeys).values(
                id=credential_id,
                user_id=sub,
                public_key="pk",
                sign_count=0,
                name="Key",
                user_handle="handle",
                backed_up=False,
                created_at=datetime.now(timezone.utc),
            )
        )


def make_stale(engine: Engine, someone: Member) -> None:
    """Move the session's last authentication an hour back, and take the
    token a refresh then issues (which carries it)."""
    with engine.begin() as conn:
        conn.execute(
            update(_sessions)
            .where(_sessions.c.id == claims_of(someone.token)["sid"])
            .values(auth_time=datetime.now(timezone.utc) - timedelta(hours=1))
        )
    refreshed = Auth(someone.client).refresh()
    assert refreshed.status_code == 200, refreshed.json
    someone.token = refreshed.json["accessToken"]


def test_confirming_upgrades_the_session(app: Flask, clock: Clock) -> None:
    someone = member(app)
    before = claims_of(someone.token)
    secret = someone.enroll()
    response = someone.post("/mfa/totp/confirm", {"code": code(secret, clock.step)})
    assert response.status_code == 200
    assert set(response.json) >= {"user", "accessToken", "recoveryCodes"}
    after = claims_of(response.json["accessToken"])
    assert after["sid"] == before["sid"] and after["aal"] == 2
    assert {"otp", "mfa"} <= set(after["amr"])
    refreshed = Auth(someone.client).refresh()
    assert claims_of(refreshed.json["accessToken"])["aal"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/mfa/totp"),
        ("post", "/mfa/recovery-codes"),
        ("post", "/mfa/totp/enroll"),
    ],
)
def test_changing_factors_needs_a_fresh_authentication(
    app: Flask, clock: Clock, engine: Engine, method: str, path: str
) -> None:
    someone = member(app)
    secret, _ = someone.enable()
    if path == "/mfa/totp/enroll":
        # Enrolling again with a passkey left: a user with a factor.
        someone.delete("/mfa/totp")
        give_passkey(engine, claims_of(someone.token)["sub"])
    make_stale(engine, someone)
    stale = getattr(someone, method)(path)
    assert stale.status_code == 401, stale.json
    assert stale.json["code"] == "REAUTHENTICATION_REQUIRED"
    assert "max_age=" in stale.headers["WWW-Authenticate"]
    # A code renews the authentication.
    clock.step += 1
    renewed = someone.post("/reauthenticate", {"code": code(secret, clock.step)})
    if path == "/mfa/totp/enroll":
        # No authenticator left to ask: the password renews it.
        renewed = someone.post("/reauthenticate", {"password": "correct horse battery"})
    assert renewed.status_code == 200, renewed.json
    someone.token = renewed.json["accessToken"]
    assert getattr(someone, method)(path).status_code == 200


def test_a_first_enrolment_needs_no_fresh_authentication(
    app: Flask, clock: Clock, engine: Engine
) -> None:
    someone = member(app)
    make_stale(engine, someone)
    assert someone.post("/mfa/totp/enroll").status_code == 200


def test_reauthenticating_with_a_code_follows_the_code_rules(
    app: Flask, clock: Clock
) -> None:
    someone = member(app)
    secret, _ = someone.enable()
    # The code that confirmed is used: not again.
    used = someone.post("/reauthenticate", {"code": code(secret, clock.step)})
    assert used.status_code == 400 and used.json["code"] == "MFA_CODE_INVALID"
    wrong = someone.post("/reauthenticate", {"code": code(secret, clock.step + 9)})
    assert wrong.status_code == 400
    clock.step += 1
    good = someone.post("/reauthenticate", {"code": code(secret, clock.step)})
    assert good.status_code == 200
    assert "otp" in claims_of(good.json["accessToken"])["amr"]


def test_required_policy_lets_a_user_reach_only_the_enrolment(
    make_app: Any, clock: Clock
) -> None:
    app = with_views(make_app(TOKENAUTH_MFA="required", **LIMITS))
    someone = member(app)
    refused = someone.client.get("/api/me", headers=bearer(someone.token))
    assert refused.status_code == 403
    assert refused.json["code"] == "MFA_ENROLLMENT_REQUIRED"
    assert someone.get("/mfa").status_code == 200
    secret, codes = someone.enable()
    assert len(codes) == 10
    # The confirmation upgraded the session: on at once.
    assert (
        someone.client.get("/api/me", headers=bearer(someone.token)).status_code == 200
    )
    # The next login waits for a code.
    clock.step += 1
    client, token = pending_login(app)
    assert client.get("/api/me", headers=bearer(token)).json["code"] == "MFA_REQUIRED"
    response = verify(client, token, {"code": code(secret, clock.step)})
    assert response.status_code == 200
    assert (
        client.get("/api/me", headers=bearer(response.json["accessToken"])).status_code
        == 200
    )


def test_a_waiting_session_cannot_enrol_or_remove(app: Flask, clock: Clock) -> None:
    someone = member(app)
    someone.enable()
    client, token = pending_login(app)
    for method, path in [("post", "/mfa/totp/enroll"), ("delete", "/mfa/totp")]:
        response = getattr(client, method)(PREFIX + path, headers=bearer(token))
        assert response.status_code == 401 and response.json["code"] == "MFA_REQUIRED"


@pytest.mark.parametrize("mfa", ["optional", "required"])
@pytest.mark.parametrize("step", ["enroll", "confirm"])
def test_a_password_only_session_cannot_add_an_authenticator_once_the_user_has_a_factor(
    make_app: Any, clock: Clock, engine: Engine, mfa: str, step: str
) -> None:
    """A session that began before the user's first factor (aal 1, never
    restricted; under ``required`` an enrolment session) must not turn the
    password it was started with into a second factor: after the user got a
    passkey elsewhere, its own authenticator would pass every later login."""
    app = with_views(make_app(TOKENAUTH_MFA=mfa, **LIMITS, **PASSKEYS))
    thief = member(app)
    secret = thief.enroll() if step == "confirm" else None
    give_passkey(engine, claims_of(thief.token)["sub"])
    if mfa == "optional":
        # The password renews the authentication: fresh, no factor proved.
        # (An enrolment session is fresh from its login.)
        renewed = thief.post("/reauthenticate", {"password": "correct horse battery"})
        assert renewed.status_code == 200, renewed.json
        thief.token = renewed.json["accessToken"]
    if secret is None:
        response = thief.post("/mfa/totp/enroll")
    else:
        response = thief.post("/mfa/totp/confirm", {"code": code(secret, clock.step)})
    assert response.status_code == 401, response.json
    assert response.json["code"] == "MFA_REQUIRED"
    assert claims_of(thief.token)["aal"] == 1


def test_a_passkey_kept_while_passkeys_are_off_does_not_block_an_authenticator(
    make_app: Any, clock: Clock, engine: Engine
) -> None:
    """Passkeys switched off: a login asks for none, so the session cannot
    prove one; the user's passkey must not then count as the factor that
    adding an authenticator asks the session to have proved."""
    someone = member(with_views(make_app(**LIMITS)))
    give_passkey(engine, claims_of(someone.token)["sub"])
    secret = someone.enroll()
    response = someone.post("/mfa/totp/confirm", {"code": code(secret, clock.step)})
    assert response.status_code == 200, response.json


@pytest.mark.parametrize(
    ("method", "path"), [("delete", "/mfa/totp"), ("post", "/mfa/recovery-codes")]
)
def test_a_password_only_session_cannot_remove_the_factor_or_take_the_codes(
    app: Flask, clock: Clock, method: str, path: str
) -> None:
    """A session that began before the user's first factor (aal 1, kept
    fresh by the password) must not strip the authenticator that now guards
    every login, nor replace the recovery codes with its own."""
    thief = member(app)
    # The same account, signed in on the owner's own device.
    client = app.test_client()
    owner = Member(client, Auth(client).login().json["accessToken"])
    owner.enable()
    renewed = thief.post("/reauthenticate", {"password": "correct horse battery"})
    assert renewed.status_code == 200, renewed.json
    thief.token = renewed.json["accessToken"]
    response = getattr(thief, method)(path)
    assert response.status_code == 401, response.json
    assert response.json["code"] == "MFA_REQUIRED"
    status = owner.get("/mfa").json
    assert status["totp"]["enabled"] and status["recoveryCodesLeft"] == 10
