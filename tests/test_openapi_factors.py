"""The API description of the second factor: every answer of ``/mfa``,
``/mfa/verify``, ``/mfa/recovery-codes``, the authenticator-app routes and
``/reauthenticate`` (success and the usual refusals, restricted sessions
included) is one the description documents, and the bodies the views take
are ones it accepts.  The passkeys' are in ``test_openapi_passkeys.py``."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import _step_up

from .conftest import PASSWORD
from .openapi_factor_helpers import (
    FULL_CONFIG,
    PREFIX,
    Caller,
    body_is_described,
    document_of,
    signed_in,
)
from .test_totp import NOW_STEP, Clock, clock, code

__all__ = ["clock"]  # a fixture, used by name

pytestmark = pytest.mark.sqlite

EMAIL = "factor@example.com"


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app(**FULL_CONFIG)  # type: ignore[no-any-return]


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    return document_of(app)


def wrong_code(secret: str, step: int = NOW_STEP) -> str:
    """A well-formed code that none of the window's steps gives."""
    valid = {code(secret, s) for s in range(step - 2, step + 3)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


def enable_totp(user: Caller, step: int = NOW_STEP) -> tuple[str, list[str]]:
    """Enrol and confirm an authenticator app: its secret, the recovery codes."""
    secret = user.call("POST", "/mfa/totp/enroll", expect=200).get_json()["secret"]
    confirmed = user.call("POST", "/mfa/totp/confirm", {"code": code(secret, step)})
    assert confirmed.status_code == 200
    user.keep_token(confirmed)
    return secret, list(confirmed.get_json()["recoveryCodes"])


def test_totp_enrolment_answers_conform(
    app: Flask, document: Any, clock: Clock
) -> None:
    user = signed_in(app, document, EMAIL)
    assert user.call("GET", "/mfa", expect=200).get_json()["totp"]["enabled"] is False
    user.call("POST", "/mfa/recovery-codes", expect=409, code="MFA_NOT_ENABLED")
    user.call("DELETE", "/mfa/totp", expect=409, code="TOTP_NOT_ENABLED")
    user.call("POST", "/mfa/totp/confirm", {"code": "123456"}, 409, "TOTP_NOT_ENABLED")

    enrolment = user.call("POST", "/mfa/totp/enroll", expect=200).get_json()
    secret = enrolment["secret"]
    assert enrolment["qrSvg"].startswith("<svg")
    user.call("POST", "/mfa/totp/confirm", {}, 400, "VALIDATION_ERROR")
    user.call("POST", "/mfa/totp/confirm", {"code": 123456}, 400, "VALIDATION_ERROR")
    bad = {"code": wrong_code(secret)}
    user.call("POST", "/mfa/totp/confirm", bad, 400, "MFA_CODE_INVALID")
    confirmed = user.call("POST", "/mfa/totp/confirm", {"code": code(secret)}, 200)
    assert len(confirmed.get_json()["recoveryCodes"]) == 10
    assert "refresh_token=" in confirmed.headers["Set-Cookie"]
    user.keep_token(confirmed)

    user.call("POST", "/mfa/totp/enroll", expect=409, code="TOTP_ALREADY_ENABLED")
    renewed = user.call("POST", "/mfa/recovery-codes", expect=200).get_json()
    assert renewed["recoveryCodesLeft"] == len(renewed["recoveryCodes"]) == 10
    status = user.call("GET", "/mfa", expect=200).get_json()
    assert status["totp"]["enabled"] is True and status["totp"]["confirmedAt"]
    user.call("DELETE", "/mfa/totp", expect=200)


def test_second_factor_answers_conform(app: Flask, document: Any, clock: Clock) -> None:
    """A session waiting for its second factor: what it may call and what
    it may not, each answer as described."""
    secret, recovery = enable_totp(signed_in(app, document, EMAIL))
    pending = signed_in(app, document, EMAIL, register=False)
    status = pending.call("GET", "/mfa", expect=200).get_json()
    assert status["recoveryCodesLeft"] == 10
    for method, path in (
        ("POST", "/mfa/recovery-codes"),
        ("POST", "/mfa/totp/enroll"),
        ("DELETE", "/mfa/totp"),
    ):
        pending.call(method, path, expect=401, code="MFA_REQUIRED")
    body = {"password": PASSWORD}
    pending.call("POST", "/reauthenticate", body, 401, "MFA_REQUIRED")

    pending.call("POST", "/mfa/verify", {}, 400, "VALIDATION_ERROR")
    pending.call("POST", "/mfa/verify", {"code": 1}, 400, "VALIDATION_ERROR")
    bad = {"code": wrong_code(secret)}
    pending.call("POST", "/mfa/verify", bad, 400, "MFA_CODE_INVALID")
    by_recovery = {"recoveryCode": recovery[0].upper()}
    done = pending.call("POST", "/mfa/verify", by_recovery, 200).get_json()
    assert not done.get("mfaRequired")

    again = signed_in(app, document, EMAIL, register=False)
    clock.step += 1
    typed = code(secret, clock.step)
    upgraded = again.call("POST", "/mfa/verify", {"code": f"{typed[:3]} {typed[3:]}"})
    assert upgraded.status_code == 200
    again.keep_token(upgraded)
    again.call("DELETE", "/mfa/totp", expect=200)


def test_spent_second_factor_budget_conforms(
    app: Flask, document: Any, clock: Clock
) -> None:
    secret, _ = enable_totp(signed_in(app, document, EMAIL))
    pending = signed_in(app, document, EMAIL, register=False)
    bad = {"code": wrong_code(secret)}
    for _ in range(5):  # TOKENAUTH_RATELIMIT_LOGIN_FAILURES: 5/minute
        pending.call("POST", "/mfa/verify", bad, 400, "MFA_CODE_INVALID")
    refused = pending.call("POST", "/mfa/verify", bad, 429, "RATE_LIMITED")
    assert int(refused.headers["Retry-After"]) >= 1


def test_reauthenticate_answers_conform(
    app: Flask, document: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = signed_in(app, document, EMAIL)
    user.call("POST", "/reauthenticate", {}, 400, "VALIDATION_ERROR")
    user.call("POST", "/reauthenticate", {"password": ""}, 400, "INVALID_PASSWORD")
    user.call("POST", "/reauthenticate", {"password": "n0t it"}, 403, "WRONG_PASSWORD")
    user.call("POST", "/reauthenticate", {"code": "123456"}, 400, "MFA_CODE_INVALID")
    user.call("POST", "/reauthenticate", {"credential": {}}, 401, "PASSKEY_INVALID")
    user.keep_token(user.call("POST", "/reauthenticate", {"password": PASSWORD}, 200))

    secret, _ = enable_totp(user)
    with monkeypatch.context() as later:
        # An hour on, for the freshness check only: the session is stale.
        hour_on = time.time() + 3600
        later.setattr(_step_up, "time", SimpleNamespace(time=lambda: hour_on))
        for method, path in (("DELETE", "/mfa/totp"), ("POST", "/mfa/recovery-codes")):
            stale = user.call(
                method, path, expect=401, code="REAUTHENTICATION_REQUIRED"
            )
            assert 'max_age="' in stale.headers["WWW-Authenticate"]
    clock.step += 1
    by_code = {"code": code(secret, clock.step)}
    user.keep_token(user.call("POST", "/reauthenticate", by_code, 200))
    user.call("DELETE", "/mfa/totp", expect=200)


def test_enrolment_restriction_answers_conform(make_app: Any, clock: Clock) -> None:
    """``TOKENAUTH_MFA = "required"``: a user without a factor may only enrol
    one; everything else is ``403 MFA_ENROLLMENT_REQUIRED``, described."""
    app = make_app(**FULL_CONFIG, TOKENAUTH_MFA="required")
    document = document_of(app)
    user = signed_in(app, document, EMAIL)
    user.call("GET", "/mfa", expect=200)
    user.call("GET", "/passkeys", expect=200)
    user.call("POST", "/passkeys/register/options", expect=200)
    user.call("POST", "/passkeys/verify/options", expect=404, code="PASSKEY_NOT_FOUND")
    refused = "MFA_ENROLLMENT_REQUIRED"
    user.call("POST", "/mfa/recovery-codes", expect=403, code=refused)
    user.call("DELETE", "/mfa/totp", expect=403, code=refused)
    user.call("POST", "/reauthenticate", {"password": PASSWORD}, 403, refused)
    user.call("PATCH", "/passkeys/none", {"name": "Phone"}, 403, refused)
    user.call("DELETE", "/passkeys/none", expect=403, code=refused)
    enable_totp(user)
    user.call("POST", "/mfa/recovery-codes", expect=200)


def _paths(make_app: Any, **config: Any) -> set[str]:
    document = document_of(make_app(**{**FULL_CONFIG, **config}))
    return {p.removeprefix(PREFIX) for p in document["paths"]}


def test_switches_decide_what_is_described(make_app: Any) -> None:
    """A switched-off flow answers 404 and is not in the description."""
    everything = _paths(make_app)
    totp = {"/mfa/totp", "/mfa/totp/enroll", "/mfa/totp/confirm"}
    factors = {"/mfa", "/mfa/verify", "/mfa/recovery-codes"}
    passkeys = {p for p in everything if p.startswith("/passkeys")}
    assert len(passkeys) == 8
    assert totp | factors | {"/reauthenticate"} <= everything

    no_totp = _paths(make_app, TOKENAUTH_TOTP_ENABLED=False)
    assert not totp & no_totp and factors | passkeys <= no_totp
    no_passkeys = _paths(make_app, TOKENAUTH_PASSKEYS_ENABLED=False)
    assert not passkeys & no_passkeys and factors | totp <= no_passkeys
    none = _paths(
        make_app, TOKENAUTH_TOTP_ENABLED=False, TOKENAUTH_PASSKEYS_ENABLED=False
    )
    assert not (totp | factors | passkeys) & none
    assert "/reauthenticate" in none


def test_request_schemas_take_what_the_views_take(document: Any) -> None:
    """The codes' patterns: what a user types (separators, any case) is
    described; what cannot be a code is not; one kind of proof at a time."""
    verify = PREFIX + "/mfa/verify"

    def ok(body: Any, path: str = verify) -> bool:
        return body_is_described(document, "POST", path, body)

    assert ok({"code": "123 456"}) and ok({"code": "123-456"})
    assert ok({"recoveryCode": "ABCDE-fgh23"})
    assert not ok({"code": "12345"}) and not ok({"code": "12a456"})
    assert not ok({"recoveryCode": "abcde-fgh21"})  # 1 is not base32
    assert not ok({}) and not ok({"code": "123456", "recoveryCode": "abcdefgh23"})
    reauth = PREFIX + "/reauthenticate"
    assert ok({"password": PASSWORD}, reauth) and ok({"credential": {}}, reauth)
    assert not ok({"password": ""}, reauth)
    assert not ok({"password": PASSWORD, "code": "123456"}, reauth)
