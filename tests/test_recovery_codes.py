"""Recovery codes over HTTP, on SQLite and PostgreSQL: each works once in
place of an authenticator code, the count left is visible, using one mails
a notice (through the real SMTP server process) and sends a signal, and
regenerated codes (fresh authentication) replace the old ones."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, Table, update

from flask_tokenauth import _recovery_codes
from flask_tokenauth.models import Session

from .conftest import Auth, bearer
from .smtp import SMTPServer, text_of
from .test_totp import EMAIL, PREFIX, Clock, Member, clock, member, recorded
from .test_totp_verify import LIMITS, claims_of, pending_login, verify

__all__ = ["clock", "recorded"]  # fixtures of test_totp, used here too

_sessions: Table = Session.__table__  # type: ignore[assignment]


@pytest.fixture
def app(make_app: Any, mail_config: dict[str, Any]) -> Flask:
    return make_app(**LIMITS, **mail_config)  # type: ignore[no-any-return]


@pytest.fixture
def enrolled(app: Flask, clock: Clock) -> tuple[Member, list[str]]:
    """A user with an authenticator app, and their recovery codes."""
    someone = member(app)
    _, codes = someone.enable()
    clock.step += 1
    return someone, codes


def left(client: FlaskClient, token: str) -> int:
    response = client.get(f"{PREFIX}/mfa", headers=bearer(token))
    return int(response.get_json()["recoveryCodesLeft"])


@pytest.mark.requirement("ASVS-5.0-6.5.1")
def test_a_recovery_code_completes_the_factor_once(
    app: Flask,
    enrolled: tuple[Member, list[str]],
    smtp_server: SMTPServer,
    recorded: list[tuple[str, dict[str, Any]]],
) -> None:
    _, codes = enrolled
    client, token = pending_login(app)
    assert left(client, token) == 10
    response = verify(client, token, {"recoveryCode": codes[0]})
    assert response.status_code == 200, response.json
    upgraded = response.json["accessToken"]
    assert claims_of(upgraded)["aal"] == 2
    assert client.get(f"{PREFIX}/sessions", headers=bearer(upgraded)).status_code == 200
    assert left(client, upgraded) == 9
    used = [kw for name, kw in recorded if name == "recovery_code_used"]
    assert len(used) == 1 and used[0]["remaining"] == 9
    assert all(codes[0] not in repr(kw) for _, kw in recorded)
    # The owner is told, after the response.
    from flask_tokenauth.testing import wait_for_mail

    wait_for_mail()
    mails = smtp_server.messages(EMAIL)
    assert len(mails) == 1
    assert "recovery code" in mails[0]["Subject"].lower()
    assert "9 unused recovery codes left" in " ".join(text_of(mails[0]).split())
    assert codes[0] not in text_of(mails[0])
    # Used: never again, on any session.
    other, other_token = pending_login(app)
    again = verify(other, other_token, {"recoveryCode": codes[0]})
    assert again.status_code == 400 and again.json["code"] == "MFA_CODE_INVALID"


@pytest.mark.parametrize(
    "form", [str.upper, lambda c: c.replace("-", ""), lambda c: f" {c[:5]} {c[6:]} "]
)
def test_a_code_is_read_as_typed(
    app: Flask, enrolled: tuple[Member, list[str]], form: Any
) -> None:
    _, codes = enrolled
    client, token = pending_login(app)
    assert verify(client, token, {"recoveryCode": form(codes[3])}).status_code == 200


@pytest.mark.parametrize("wrong", ["aaaaa-aaaaa", "", "x" * 500, "00000-00000"])
def test_wrong_codes_are_refused(
    app: Flask, enrolled: tuple[Member, list[str]], wrong: str
) -> None:
    client, token = pending_login(app)
    response = verify(client, token, {"recoveryCode": wrong})
    assert response.status_code == 400 and response.json["code"] == "MFA_CODE_INVALID"
    assert left(client, token) == 10


def test_another_users_code_is_refused(
    app: Flask, enrolled: tuple[Member, list[str]], clock: Clock
) -> None:
    _, other_codes = member(app, "other@example.com").enable(clock.step)
    client, token = pending_login(app)
    response = verify(client, token, {"recoveryCode": other_codes[0]})
    assert response.status_code == 400 and response.json["code"] == "MFA_CODE_INVALID"


def test_regenerated_codes_replace_the_old_ones(
    app: Flask,
    enrolled: tuple[Member, list[str]],
    recorded: list[tuple[str, dict[str, Any]]],
) -> None:
    _, old = enrolled
    client, token = pending_login(app)
    token = verify(client, token, {"recoveryCode": old[0]}).json["accessToken"]
    response = client.post(f"{PREFIX}/mfa/recovery-codes", headers=bearer(token))
    assert response.status_code == 200, response.json
    new = response.json["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert response.json["recoveryCodesLeft"] == 10
    assert recorded[-1][0] == "recovery_codes_generated"
    other, other_token = pending_login(app)
    assert verify(other, other_token, {"recoveryCode": old[1]}).status_code == 400
    assert verify(other, other_token, {"recoveryCode": new[0]}).status_code == 200


def test_regenerating_needs_a_fresh_authentication(
    app: Flask, enrolled: tuple[Member, list[str]], engine: Engine
) -> None:
    _, codes = enrolled
    client, token = pending_login(app)
    token = verify(client, token, {"recoveryCode": codes[0]}).json["accessToken"]
    with engine.begin() as conn:
        conn.execute(
            update(_sessions)
            .where(_sessions.c.id == claims_of(token)["sid"])
            .values(auth_time=datetime.now(timezone.utc) - timedelta(hours=1))
        )
    stale = Auth(client).refresh().json["accessToken"]
    response = client.post(f"{PREFIX}/mfa/recovery-codes", headers=bearer(stale))
    assert response.status_code == 401
    assert response.json["code"] == "REAUTHENTICATION_REQUIRED"
    assert 'max_age="600"' in response.headers["WWW-Authenticate"]
    assert left(client, stale) == 9  # nothing changed


def test_a_user_without_a_factor_has_no_codes_to_regenerate(
    app: Flask, clock: Clock
) -> None:
    someone = member(app)
    response = someone.post("/mfa/recovery-codes")
    assert response.status_code == 409 and response.json["code"] == "MFA_NOT_ENABLED"


def test_a_pending_session_cannot_regenerate(
    app: Flask, enrolled: tuple[Member, list[str]]
) -> None:
    client, token = pending_login(app)
    response = client.post(f"{PREFIX}/mfa/recovery-codes", headers=bearer(token))
    assert response.status_code == 401 and response.json["code"] == "MFA_REQUIRED"


@pytest.mark.postgresql
@pytest.mark.requirement("ASVS-5.0-6.5.1")
def test_two_requests_with_one_code_one_wins(
    app: Flask, enrolled: tuple[Member, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the unused code and match it before either writes: the
    conditional ``UPDATE`` lets one through."""
    _, codes = enrolled
    n = 3
    logins = [pending_login(app) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    match = _recovery_codes._match

    def in_step(*args: Any) -> int | None:
        found = match(*args)
        barrier.wait()
        return found

    monkeypatch.setattr(_recovery_codes, "_match", in_step)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(client: FlaskClient, token: str) -> None:
        status = verify(client, token, {"recoveryCode": codes[0]}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=login) for login in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] + [400] * (n - 1)
