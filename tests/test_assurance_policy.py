"""``TOKENAUTH_MFA = "required"`` (a user without a factor reaches only the
enrolment views), the start-up check of the policy, what a protected
request costs (statements, whatever the token's level) and the refresh of
an upgraded session in one PostgreSQL statement."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask, Response
from sqlalchemy import Engine, event

from flask_tokenauth import (
    ConfigurationError,
    TokenAuth,
    auth_bp,
    current_claims,
    current_user,
    login_required,
)
from flask_tokenauth._assurance import OTP, complete_factor
from flask_tokenauth._state import get_state
from flask_tokenauth.models import RevocationEvent
from flask_tokenauth.testing import start_session

from .assurance_helpers import ORDINARY, add_views, claims_of, get, give_totp
from .coexist_app import create_app as create_host_app
from .conftest import Auth, base_config, bearer
from .test_refresh_round_trips import WireLog, counted_refresh


def with_enrolment_view(app: Flask) -> Flask:
    @app.post("/api/enrolled")
    @login_required(mfa_enrollment=True)
    def enrolled() -> Response:
        # What /mfa/totp/confirm may do once the first code is right.
        return complete_factor(
            get_state(), current_user, current_claims["sid"], [OTP], aal=2
        )

    return app


@pytest.fixture
def required_app(make_app: Any) -> Flask:
    return with_enrolment_view(add_views(make_app(TOKENAUTH_MFA="required")))


@pytest.mark.requirement("ASVS-5.0-6.3.3")
def test_required_user_without_factor_may_only_enrol(required_app: Flask) -> None:
    client = required_app.test_client()
    auth = Auth(client)
    for response in (auth.register(), auth.login(), auth.refresh()):
        assert response.status_code in (200, 201)
        token = response.json["accessToken"]
        assert claims_of(token)["mfa_state"] == "enroll"
    assert auth.login().json["mfaEnrollmentRequired"] is True
    for path in [*ORDINARY, "/api/aal2", "/api/pending-ok"]:
        refused = get(client, path, token)
        assert refused.status_code == 403, path
        assert refused.json == {
            "error": "Set up a second factor to continue",
            "code": "MFA_ENROLLMENT_REQUIRED",
        }
    assert get(client, "/api/enroll-ok", token).json == {"state": "enroll"}
    # Enrolled and confirmed: the session is upgraded and unrestricted.
    done = client.post("/api/enrolled", headers=bearer(token))
    assert done.status_code == 200
    upgraded = done.json["accessToken"]
    assert claims_of(upgraded)["aal"] == 2
    for path in ORDINARY:
        assert get(client, path, upgraded).status_code == 200
    assert "mfa_state" not in claims_of(auth.refresh().json["accessToken"])


@pytest.mark.requirement("ASVS-5.0-6.3.3")
def test_required_user_with_factor_is_pending_not_enrolling(
    required_app: Flask, engine: Engine
) -> None:
    client = required_app.test_client()
    auth = Auth(client)
    give_totp(engine, claims_of(auth.register().json["accessToken"])["sub"])
    token = auth.login().json["accessToken"]
    assert claims_of(token)["mfa_state"] == "pending"
    assert get(client, "/api/enroll-ok", token).json["code"] == "MFA_REQUIRED"


def test_enrolment_restriction_lapses_with_the_policy(
    make_app: Any, engine: Engine
) -> None:
    token = Auth(make_app(TOKENAUTH_MFA="required").test_client()).register()
    token = token.json["accessToken"]
    optional = add_views(make_app())  # the app restarted with MFA optional
    assert get(optional.test_client(), "/api/me", token).status_code == 200


def test_required_without_any_factor_kind_stops_start_up(engine: Engine) -> None:
    app = Flask(__name__)
    app.config.update(
        base_config(TOKENAUTH_MFA="required", TOKENAUTH_TOTP_ENABLED=False)
    )
    with pytest.raises(ConfigurationError, match="TOKENAUTH_TOTP_ENABLED"):
        TokenAuth(engine=engine).init_app(app)


@pytest.mark.parametrize("value", [dict(aal=0), dict(aal=4), dict(fresh=-1)])
def test_bad_decorator_values_fail_at_decoration(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        login_required(**value)


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    """The statements the requests (this thread) sent through ``engine``
    meanwhile."""
    statements: list[str] = []
    requests = threading.get_ident()

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        # Not the database store's listener (its own thread), nor its copy
        # of the revocation log catching up (see _dbmirror): they read when
        # they read, whatever the request.
        if (
            threading.get_ident() == requests
            and RevocationEvent.__tablename__ not in statement
        ):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("revocation", ["database", "off"])
def test_a_protected_request_costs_the_same_at_any_level(
    make_app: Any, engine: Engine, revocation: str
) -> None:
    """Claims only: an aal=2 or fresh= view, a token of any level, asks the
    database nothing but what a plain view asks of a plain token: the
    revocation store's own lookup (the database store, while its copy of
    the log is not current), or nothing."""
    app = add_views(make_app(TOKENAUTH_REVOCATION=revocation))
    client = app.test_client()
    with app.app_context():
        plain = start_session(Auth(client).register().json["user"]["id"], app)
        strong = start_session(plain.user_id, app, aal=2)
    sent: dict[str, list[str]] = {}
    with counted(engine) as statements:
        for name, path, session in [
            ("plain", "/api/me", plain),
            ("aal2", "/api/aal2", strong),
            ("fresh", "/api/fresh", strong),
            ("aal2 on plain view", "/api/me", strong),
        ]:
            assert client.get(path, headers=session.headers).status_code == 200
            mark = len(statements)
            for _ in range(3):
                assert client.get(path, headers=session.headers).status_code == 200
            sent[name] = statements[mark:]
    for name, texts in sent.items():
        if revocation == "off":
            assert texts == [], name
        for text in texts:  # the revocation check, which reads no level
            assert "revoked_at" in text and "amr" not in text, (name, text)
            assert "totp" not in text and "passkeys" not in text, (name, text)


@pytest.mark.postgresql
def test_an_upgraded_session_refreshes_in_one_round_trip(
    engine: Engine, database_url: str
) -> None:
    log = WireLog()
    counted = log.engine(database_url)
    try:
        app = Flask(__name__)
        # No revocation listener: its heartbeat would be counted too.
        app.config.update(base_config(TOKENAUTH_REVOCATION="off"))
        TokenAuth(engine=counted).init_app(app)
        app.register_blueprint(auth_bp)
        add_views(app)
        client = app.test_client()
        auth = Auth(client)
        give_totp(engine, claims_of(auth.register().json["accessToken"])["sub"])
        pending = auth.login().json["accessToken"]
        # Pending: one round trip, and the token stays pending.
        response, sent = counted_refresh(log, auth.refresh)
        assert len(sent) == 1, sent
        assert claims_of(response.json["accessToken"])["mfa_state"] == "pending"
        client.post("/api/factor-done", headers=bearer(pending))
        response, sent = counted_refresh(log, auth.refresh)
        assert len(sent) == 1, sent
        claims = claims_of(response.json["accessToken"])
        assert claims["aal"] == 2 and claims["amr"] == ["pwd", "otp", "mfa"]
    finally:
        counted.dispose()


@pytest.mark.parametrize("policy", ["optional", "required"])
def test_flask_login_sees_no_user_in_a_restricted_token(
    engine: Engine, policy: str
) -> None:
    """Through ``init_flask_login``, a pending or enrolment-only token is
    nobody (Flask-Login redirects to its login page), not an error."""
    app = create_host_app(engine, TOKENAUTH_MFA=policy)
    client = app.test_client()
    auth = Auth(client)
    give_totp(engine, claims_of(auth.register().json["accessToken"])["sub"])
    if policy == "required":  # a second user, with no factor
        auth = Auth(app.test_client())
        token = auth.register("second@example.com").json["accessToken"]
        assert claims_of(token)["mfa_state"] == "enroll"
    else:
        token = auth.login().json["accessToken"]
        assert claims_of(token)["mfa_state"] == "pending"
    response = client.get("/api/flask-login-protected", headers=bearer(token))
    assert response.status_code == 302
