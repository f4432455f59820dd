"""``POST /mfa/verify`` with an authenticator-app code, over HTTP, on SQLite
and PostgreSQL: a password login of a user with TOTP waits for it, the
code upgrades the same session (and the refresh keeps the level); replay,
window edges, another user's code, attempt limits and a race, each tried
as an attack."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask import Flask, Response, jsonify
from flask.testing import FlaskClient

from flask_tokenauth import _totp, current_claims, login_required

from .conftest import PASSWORD, Auth, bearer
from .test_totp import (
    EMAIL,
    NOW_STEP,
    PREFIX,
    Clock,
    clock,
    code,
    member,
    recorded,
)

__all__ = ["clock", "recorded"]  # fixtures of test_totp, used here too

LIMITS = {
    "TOKENAUTH_RATELIMIT_LOGIN": "1000/minute",
    "TOKENAUTH_RATELIMIT_LOGIN_FAILURES": "3/minute",
    "TOKENAUTH_RATELIMIT_ACCOUNT_FAILURES": "5/day",
    "TOKENAUTH_RATELIMIT_STORAGE_URI": "memory://",
}
_addresses = (f"203.0.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(decoded)  # type: ignore[no-any-return]


def with_views(app: Flask) -> Flask:
    """An ordinary view of the app's own, and one that opts in to ``aal=2``."""

    @app.get("/api/me")
    @login_required
    def me() -> Response:
        return jsonify(sub=current_claims["sub"])

    @app.get("/api/admin")
    @login_required(aal=2)
    def admin() -> Response:
        return jsonify(ok=True)

    return app


@pytest.fixture
def app(make_app: Any) -> Flask:
    return with_views(make_app(**LIMITS))


@pytest.fixture
def secret(app: Flask, clock: Clock) -> str:
    """The user's confirmed authenticator secret (at ``NOW_STEP``); the
    clock moves on a step, so that a new code is needed."""
    found, _ = member(app).enable()
    clock.step += 1
    return found


def pending_login(
    app: Flask, email: str = EMAIL, ip: str | None = None
) -> tuple[FlaskClient, str]:
    """A new client's password login: the client and its access token."""
    client = app.test_client()
    address = ip or next(_addresses)
    client.environ_base["REMOTE_ADDR"] = address
    response = Auth(client).login(email)
    assert response.status_code == 200, response.json
    return client, str(response.get_json()["accessToken"])


def verify(client: FlaskClient, token: str, body: Any) -> Any:
    return client.post(f"{PREFIX}/mfa/verify", json=body, headers=bearer(token))


# -- The upgrade ----------------------------------------------------------------


def test_a_password_login_waits_for_the_code(
    app: Flask, secret: str, clock: Clock
) -> None:
    client, token = pending_login(app)
    claims = claims_of(token)
    assert claims["aal"] == 1
    for path in ["/api/me", "/api/admin", f"{PREFIX}/sessions"]:
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 401, path
        assert response.json["code"] == "MFA_REQUIRED"
        assert (
            "insufficient_user_authentication" in response.headers["WWW-Authenticate"]
        )
    # The factor views answer it.
    assert client.get(f"{PREFIX}/mfa", headers=bearer(token)).status_code == 200


def test_the_code_upgrades_the_same_session(
    app: Flask, secret: str, clock: Clock, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    client, token = pending_login(app)
    cookie_before = client.get_cookie("refresh_token", path=PREFIX)
    response = verify(client, token, {"code": code(secret, clock.step)})
    assert response.status_code == 200, response.json
    assert set(response.json) >= {"user", "accessToken"}
    upgraded = response.json["accessToken"]
    claims = claims_of(upgraded)
    assert claims["aal"] == 2
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])
    assert claims["sid"] == claims_of(token)["sid"]
    # The refresh token was rotated.
    cookie_after = client.get_cookie("refresh_token", path=PREFIX)
    assert cookie_before is not None and cookie_after is not None
    assert cookie_after.value != cookie_before.value
    for path in ["/api/me", "/api/admin", f"{PREFIX}/sessions"]:
        assert client.get(path, headers=bearer(upgraded)).status_code == 200, path
    # A refresh keeps the level.
    refreshed = Auth(client).refresh()
    assert refreshed.status_code == 200
    assert claims_of(refreshed.json["accessToken"])["aal"] == 2
    assert [name for name, _ in recorded if name.startswith("mfa_")] == ["mfa_verified"]
    assert recorded[-1][1]["method"] == "totp"
    assert recorded[-1][1]["session_id"] == claims["sid"]


def test_a_user_without_a_factor_is_not_asked(app: Flask, clock: Clock) -> None:
    someone = member(app)
    assert (
        someone.client.get("/api/me", headers=bearer(someone.token)).status_code == 200
    )


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
@pytest.mark.requirement("RFC-6238-5.2")
def test_the_window_edges(
    app: Flask, secret: str, clock: Clock, offset: int, accepted: bool
) -> None:
    clock.step += 5  # every step of the window is after the one used to confirm
    client, token = pending_login(app)
    response = verify(client, token, {"code": code(secret, clock.step + offset)})
    assert response.status_code == (200 if accepted else 400), response.json
    if not accepted:
        assert response.json["code"] == "MFA_CODE_INVALID"


@pytest.mark.requirement(
    "ASVS-5.0-6.5.1",
    "NIST-800-63B-4-3.1.4.2",
    "NIST-800-63B-4-3.2.7",
    "RFC-6238-5.2",
)
def test_a_code_is_never_accepted_twice(app: Flask, secret: str, clock: Clock) -> None:
    first_client, first = pending_login(app)
    used = code(secret, clock.step)
    assert verify(first_client, first, {"code": used}).status_code == 200
    # Replayed within its step, on another session (a shoulder-surfer).
    client, token = pending_login(app)
    replay = verify(client, token, {"code": used})
    assert replay.status_code == 400 and replay.json["code"] == "MFA_CODE_INVALID"
    # Nor an older code of the window, once a later one was used.
    assert (
        verify(client, token, {"code": code(secret, clock.step - 1)}).status_code == 400
    )
    # The next step's code works.
    clock.step += 1
    assert verify(client, token, {"code": code(secret, clock.step)}).status_code == 200


def test_a_code_of_another_users_secret_is_refused(
    app: Flask, secret: str, clock: Clock
) -> None:
    other_secret, _ = member(app, "other@example.com").enable(clock.step)
    clock.step += 1
    client, token = pending_login(app)
    response = verify(client, token, {"code": code(other_secret, clock.step)})
    assert response.status_code == 400 and response.json["code"] == "MFA_CODE_INVALID"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": 123456},
        {"code": ""},
        {"code": "12345a"},
        {"code": "1" * 1000},
        [],
        None,
    ],
)
def test_malformed_bodies_are_4xx_json(app: Flask, secret: str, body: Any) -> None:
    client, token = pending_login(app)
    response = verify(client, token, body)
    assert 400 <= response.status_code < 500
    assert response.json["code"]


def test_codes_with_spaces_are_read(app: Flask, secret: str, clock: Clock) -> None:
    client, token = pending_login(app)
    typed = code(secret, clock.step)
    assert (
        verify(client, token, {"code": f"{typed[:3]} {typed[3:]}"}).status_code == 200
    )


def test_a_user_without_totp_has_no_code_to_check(
    app: Flask, secret: str, clock: Clock
) -> None:
    someone = member(app, "nofactor@example.com")
    response = verify(someone.client, someone.token, {"code": "123456"})
    assert response.status_code == 400 and response.json["code"] == "MFA_CODE_INVALID"


# -- Attempt limits -------------------------------------------------------------


@pytest.mark.requirement("NIST-800-63B-4-3.1.4.2", "NIST-800-63B-4-3.2.2")
def test_wrong_codes_are_limited_per_client_then_per_account(
    app: Flask, secret: str, clock: Clock
) -> None:
    wrong = code(secret, clock.step + 7)
    client, token = pending_login(app)
    statuses = [verify(client, token, {"code": wrong}).status_code for _ in range(3)]
    assert statuses == [400, 400, 400]
    # The client's budget is spent: even the right code is not checked.
    limited = verify(client, token, {"code": code(secret, clock.step)})
    assert limited.status_code == 429 and limited.json["code"] == "RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) >= 1
    # Another client of the same account has its own per-client budget,
    # but the account's (5/day) is shared: 2 more and it is spent.
    other, other_token = pending_login(app)
    assert [
        verify(other, other_token, {"code": wrong}).status_code for _ in range(2)
    ] == [400, 400]
    third, third_token = pending_login(app)
    assert (
        verify(third, third_token, {"code": code(secret, clock.step)}).status_code
        == 429
    )


def test_the_owners_device_keeps_working_when_a_stranger_spends_the_budget(
    app: Flask, secret: str, clock: Clock
) -> None:
    """The owner's client passed a second factor before: it carries the
    second-factor device cookie and has a budget of its own."""
    owner, token = pending_login(app)
    assert verify(owner, token, {"code": code(secret, clock.step)}).status_code == 200
    assert owner.get_cookie("tokenauth_device_mfa", path=PREFIX) is not None
    # A stranger with the password spends the account's budget from many
    # addresses; the password's own device cookie would not help them.
    for _ in range(3):
        stranger, stranger_token = pending_login(app)
        for _ in range(2):
            verify(stranger, stranger_token, {"code": "000000"})
    late, late_token = pending_login(app)
    clock.step += 1
    assert (
        verify(late, late_token, {"code": code(secret, clock.step)}).status_code == 429
    )
    # The owner's device signs in again: its own budget.
    owner_token = Auth(owner).login(EMAIL).get_json()["accessToken"]
    response = verify(owner, owner_token, {"code": code(secret, clock.step)})
    assert response.status_code == 200, response.json


# -- Races ----------------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.requirement("ASVS-5.0-6.5.1", "NIST-800-63B-4-3.1.4.2")
def test_two_requests_with_one_code_one_wins(
    app: Flask, secret: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request reads the secret and matches the code before any of
    them writes: the conditional ``UPDATE`` lets exactly one through."""
    n = 4
    logins = [pending_login(app) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    matched: Callable[..., int | None] = _totp.matched_step

    def in_step(*args: Any, **kwargs: Any) -> int | None:
        found = matched(*args, **kwargs)
        barrier.wait()
        return found

    monkeypatch.setattr(_totp, "matched_step", in_step)
    the_code = code(secret, clock.step)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(client: FlaskClient, token: str) -> None:
        status = verify(client, token, {"code": the_code}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=login) for login in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] + [400] * (n - 1)


def test_pyotp_agrees_with_the_step_arithmetic() -> None:
    secret = pyotp.random_base32()
    at = NOW_STEP * 30 + 3
    assert pyotp.TOTP(secret).at(at) == code(secret, NOW_STEP)
    assert PASSWORD  # the conftest password logs the users in
