"""Shared pieces of the assurance tests: an app with ordinary, opted-in,
``aal=2`` and step-up views, a way to give a user a second factor without
the factor views (a confirmed TOTP row, as the TOTP module writes it), and
the claims of a token read without verifying it."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy import Engine, insert, update

from flask_tokenauth import current_claims, current_user, login_required
from flask_tokenauth._assurance import OTP, complete_factor
from flask_tokenauth._state import get_state
from flask_tokenauth.models import Session, TotpSecret

from .conftest import bearer

#: The app's own views: every kind of protection, and a stand-in for a
#: factor view that completes the second factor once it is "verified".
ORDINARY = ["/api/me", "/api/optional", "/api/verified-free"]


def add_views(app: Flask) -> Flask:
    @app.get("/api/me")
    @login_required
    def me() -> Response:
        return jsonify(sub=current_claims["sub"], aal=current_claims["aal"])

    @app.get("/api/optional")
    @login_required(optional=True)
    def optional() -> Response:
        return jsonify(sub=current_claims.get("sub"))

    @app.get("/api/verified-free")
    def uses_current_user() -> Response:
        # No decorator: current_user authenticates the request itself.
        return jsonify(id=current_user.id)

    @app.get("/api/aal2")
    @login_required(aal=2)
    def aal2() -> Response:
        return jsonify(ok=True)

    @app.get("/api/fresh")
    @login_required(fresh=300)
    def fresh() -> Response:
        return jsonify(ok=True)

    @app.get("/api/fresh-default")
    @login_required(max_age=True)  # type: ignore[arg-type]
    def fresh_default() -> Response:
        return jsonify(ok=True)

    @app.post("/api/factor-done")
    @login_required(mfa_pending=True)
    def factor_done() -> Response:
        # What /mfa/verify does once a code is right.
        return complete_factor(
            get_state(), current_user, current_claims["sid"], [OTP], aal=2
        )

    @app.get("/api/pending-ok")
    @login_required(mfa_pending=True)
    def pending_ok() -> Response:
        return jsonify(state=current_claims.get("mfa_state"))

    @app.get("/api/enroll-ok")
    @login_required(mfa_enrollment=True)
    def enroll_ok() -> Response:
        return jsonify(state=current_claims.get("mfa_state"))

    return app


def give_totp(engine: Engine, sub: str, confirmed: bool = True) -> None:
    """A TOTP secret for ``sub`` as its enrolment leaves it (the secret's
    value does not matter here: no code is checked)."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            insert(TotpSecret.__table__).values(
                user_id=sub,
                secret="not-checked-here",
                created_at=now,
                confirmed_at=now if confirmed else None,
            )
        )


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def age_session(engine: Engine, sid: str, seconds: int) -> None:
    """Move the session's ``auth_time`` ``seconds`` into the past."""
    when = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    with engine.begin() as conn:
        conn.execute(
            update(Session.__table__)
            .where(Session.__table__.c.id == sid)
            .values(auth_time=when)
        )


def get(client: Any, path: str, token: str) -> Any:
    return client.get(path, headers=bearer(token))
