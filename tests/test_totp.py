"""Authenticator apps (TOTP) over HTTP: enrol, confirm, remove, and the
codes' rules (window, replay, another user's secret), on SQLite and
PostgreSQL.  Codes are computed here from the secret with pyotp, for a
step the test chooses (``_totp.clock`` is set, never slept on)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, Table, select, update

from flask_tokenauth import _totp, signals
from flask_tokenauth.models import RecoveryCode, TotpSecret

from .conftest import PASSWORD, REFRESH_SECRET, Auth, bearer

_secrets: Table = TotpSecret.__table__  # type: ignore[assignment]
_codes: Table = RecoveryCode.__table__  # type: ignore[assignment]

PREFIX = "/api/auth"
EMAIL = "user@example.com"
#: A step well inside the window of the clock the tests set.
NOW_STEP = 60_000_000


class Clock:
    """``_totp.clock``, set by the test: the server's current step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.step = NOW_STEP
        monkeypatch.setattr(_totp, "clock", self)

    def __call__(self) -> float:
        # The middle of the step: no boundary a slow request could cross.
        return self.step * _totp.STEP_SECONDS + _totp.STEP_SECONDS / 2


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def code(secret: str, step: int = NOW_STEP) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


@dataclass
class Member:
    """A registered user with a logged-in client."""

    client: FlaskClient
    token: str

    def post(self, path: str, json: Any = None) -> Any:
        return self.client.post(PREFIX + path, json=json, headers=bearer(self.token))

    def get(self, path: str) -> Any:
        return self.client.get(PREFIX + path, headers=bearer(self.token))

    def delete(self, path: str) -> Any:
        return self.client.delete(PREFIX + path, headers=bearer(self.token))

    def enroll(self) -> str:
        response = self.post("/mfa/totp/enroll")
        assert response.status_code == 200, response.json
        return str(response.json["secret"])

    def enable(self, step: int = NOW_STEP) -> tuple[str, list[str]]:
        """Enrol and confirm: the secret and the recovery codes."""
        secret = self.enroll()
        response = self.post("/mfa/totp/confirm", {"code": code(secret, step)})
        assert response.status_code == 200, response.json
        # The session was upgraded: its new token.
        self.token = response.json["accessToken"]
        return secret, response.json["recoveryCodes"]


def member(app: Flask, email: str = EMAIL) -> Member:
    client = app.test_client()
    auth = Auth(client)
    assert auth.register(email).status_code == 201
    response = auth.login(email)
    return Member(client, str(response.get_json()["accessToken"]))


@pytest.fixture
def user(app: Flask, clock: Clock) -> Member:
    return member(app)


RECORDED = (
    "totp_enrolled",
    "totp_removed",
    "mfa_failed",
    "recovery_codes_generated",
    "recovery_code_used",
    "mfa_verified",
)


def _recorder(events: list[tuple[str, dict[str, Any]]], name: str) -> Any:
    def hook(sender: Any, **kw: Any) -> None:
        events.append((name, kw))

    return hook


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The second-factor signals sent, in order."""
    events: list[tuple[str, dict[str, Any]]] = []
    hooks = {name: _recorder(events, name) for name in RECORDED}
    for name, hook in hooks.items():
        getattr(signals, name).connect(hook)
    yield events
    for name, hook in hooks.items():
        getattr(signals, name).disconnect(hook)


# -- Enrolment ---------------------------------------------------------------


def test_enroll_answers_a_secret_its_uri_and_a_qr_code(user: Member) -> None:
    response = user.post("/mfa/totp/enroll")
    assert response.status_code == 200
    body = response.json
    secret = body["secret"]
    assert len(secret) == 32 and pyotp.TOTP(secret).now().isdigit()
    parsed = pyotp.parse_uri(body["otpauthUri"])
    assert parsed.secret == secret and parsed.name == EMAIL
    assert body["otpauthUri"].startswith("otpauth://totp/")
    assert body["qrSvg"].startswith("<svg") and "</svg>" in body["qrSvg"]
    assert response.headers["Cache-Control"] == "no-store"  # a secret
    # Not on until confirmed.
    assert user.get("/mfa").json["totp"] == {"enabled": False, "confirmedAt": None}


def test_issuer_is_the_configured_one(make_app: Any, clock: Clock) -> None:
    app = make_app(TOKENAUTH_TOTP_ISSUER="Acme Corp")
    uri = member(app).post("/mfa/totp/enroll").json["otpauthUri"]
    assert pyotp.parse_uri(uri).issuer == "Acme Corp"


@pytest.mark.requirement("ASVS-5.0-6.5.4")
def test_confirm_turns_it_on_and_answers_ten_recovery_codes(
    user: Member, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    secret = user.enroll()
    response = user.post("/mfa/totp/confirm", {"code": code(secret)})
    assert response.status_code == 200
    codes = response.json["recoveryCodes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    for one in codes:
        # 10 base32 characters, 50 bits, read in two groups.
        assert len(one) == 11 and one[5] == "-"
        assert all(
            c in "abcdefghijklmnopqrstuvwxyz234567" for c in one.replace("-", "")
        )
    assert response.json["recoveryCodesLeft"] == 10
    assert response.headers["Cache-Control"] == "no-store"
    status = user.get("/mfa").json
    assert status["totp"]["enabled"] is True and status["totp"]["confirmedAt"]
    assert status == {**status, "passkeys": 0, "recoveryCodesLeft": 10}
    assert [name for name, _ in recorded] == [
        "totp_enrolled",
        "recovery_codes_generated",
    ]


def test_a_wrong_code_does_not_confirm(
    user: Member, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    secret = user.enroll()
    for wrong in [code(secret, NOW_STEP + 5), "12345", "abcdef", "1234567"]:
        response = user.post("/mfa/totp/confirm", {"code": wrong})
        assert response.status_code == 400
        assert response.json["code"] == "MFA_CODE_INVALID"
    assert user.get("/mfa").json["totp"]["enabled"] is False
    assert {name for name, _ in recorded} == {"mfa_failed"}
    assert all(kw["method"] == "totp" and "code" not in kw for _, kw in recorded)


def test_confirm_without_enrolment_is_refused(user: Member) -> None:
    response = user.post("/mfa/totp/confirm", {"code": "123456"})
    assert response.status_code == 409
    assert response.json["code"] == "TOTP_NOT_ENABLED"


def test_enrolling_again_replaces_an_unconfirmed_secret(user: Member) -> None:
    first = user.enroll()
    second = user.enroll()
    assert first != second
    response = user.post("/mfa/totp/confirm", {"code": code(first)})
    assert response.json["code"] == "MFA_CODE_INVALID"
    assert user.post("/mfa/totp/confirm", {"code": code(second)}).status_code == 200


def test_enrolling_over_a_confirmed_secret_is_refused(user: Member) -> None:
    user.enable()
    response = user.post("/mfa/totp/enroll")
    assert response.status_code == 409
    assert response.json["code"] == "TOTP_ALREADY_ENABLED"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/mfa/totp/enroll"),
        ("post", "/mfa/totp/confirm"),
        ("delete", "/mfa/totp"),
        ("get", "/mfa"),
        ("post", "/mfa/recovery-codes"),
    ],
)
def test_the_endpoints_need_a_token(
    client: FlaskClient, method: str, path: str
) -> None:
    response = getattr(client, method)(PREFIX + path, json={})
    assert response.status_code == 401
    assert response.json["code"] == "TOKEN_MISSING"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/mfa/totp/enroll"),
        ("get", "/mfa/totp/confirm"),
        ("post", "/mfa/totp"),
        ("post", "/mfa"),
        ("get", "/mfa/recovery-codes"),
        ("get", "/mfa/verify"),
    ],
)
def test_wrong_methods_answer_405_in_json(user: Member, method: str, path: str) -> None:
    response = getattr(user.client, method)(PREFIX + path, headers=bearer(user.token))
    assert response.status_code == 405
    assert response.json["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("body", [None, {}, {"code": 123456}, {"code": None}, []])
def test_malformed_confirm_bodies_are_4xx_json(user: Member, body: Any) -> None:
    user.enroll()
    response = user.post("/mfa/totp/confirm", body)
    assert 400 <= response.status_code < 500 and response.json["code"]


def test_switched_off_every_totp_endpoint_is_404(make_app: Any, clock: Clock) -> None:
    someone = member(make_app(TOKENAUTH_TOTP_ENABLED=False))
    for response in [
        someone.post("/mfa/totp/enroll"),
        someone.post("/mfa/totp/confirm", {"code": "123456"}),
        someone.delete("/mfa/totp"),
    ]:
        assert response.status_code == 404
        assert response.json["code"] == "NOT_FOUND"


@pytest.mark.parametrize("token", [True, False], ids=["token", "no-token"])
def test_every_factor_off_every_second_factor_endpoint_is_404(
    make_app: Any, clock: Clock, token: bool
) -> None:
    """Nothing to enrol or verify (``TOKENAUTH_TOTP_ENABLED`` off, passkeys
    off by default): the endpoints do not exist, before any other check."""
    someone = member(make_app(TOKENAUTH_TOTP_ENABLED=False))
    if not token:
        someone.token = ""
    for method, path, body in [
        ("get", "/mfa", None),
        ("post", "/mfa/verify", {"recoveryCode": "aaaaa-bbbbb"}),
        ("post", "/mfa/recovery-codes", None),
        ("post", "/mfa/totp/enroll", None),
        ("post", "/passkeys/register/options", None),
        ("get", "/passkeys", None),
        ("post", "/passkeys/login", {}),
    ]:
        response = getattr(someone.client, method)(
            PREFIX + path, json=body, headers=bearer(someone.token) if token else {}
        )
        assert response.status_code == 404, (path, response.json)
        assert response.json["code"] == "NOT_FOUND"


# -- At rest ------------------------------------------------------------------


def test_the_secret_is_not_in_the_database_in_clear(
    user: Member, engine: Engine
) -> None:
    secret, codes = user.enable()
    with engine.connect() as conn:
        stored = conn.execute(select(_secrets.c.secret)).scalar_one()
        hashes = conn.execute(select(_codes.c.code_hash)).scalars().all()
    assert secret not in stored and secret.lower() not in stored.lower()
    assert stored.startswith("v1.")
    for one in codes:
        for form in (one, one.replace("-", "")):
            assert all(form not in h for h in hashes)
    assert len(hashes) == 10 and all(len(h) == 64 for h in hashes)


def test_a_secret_moved_to_another_user_does_not_work(
    app: Flask, user: Member, engine: Engine
) -> None:
    """The user's ``sub`` is the ciphertext's associated data: an attacker
    who can write the table cannot give their own secret to a victim."""
    attacker_secret, _ = user.enable()
    victim = member(app, "victim@example.com")
    victim.enroll()
    with engine.begin() as conn:
        stolen = conn.execute(
            select(_secrets.c.secret).where(_secrets.c.confirmed_at.is_not(None))
        ).scalar_one()
        conn.execute(
            update(_secrets)
            .where(_secrets.c.confirmed_at.is_(None))
            .values(secret=stolen)
        )
    response = victim.post(
        "/mfa/totp/confirm", {"code": code(attacker_secret, NOW_STEP + 1)}
    )
    assert response.status_code == 400
    assert response.json["code"] == "MFA_CODE_INVALID"


# -- Removal ------------------------------------------------------------------


def test_remove_turns_it_off_with_the_recovery_codes(
    user: Member, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    user.enable()
    response = user.delete("/mfa/totp")
    assert response.status_code == 200
    assert response.json == {
        "totp": {"enabled": False, "confirmedAt": None},
        "passkeys": 0,
        "recoveryCodesLeft": 0,
    }
    assert recorded[-1][0] == "totp_removed"
    again = user.delete("/mfa/totp")
    assert again.status_code == 409 and again.json["code"] == "TOTP_NOT_ENABLED"
    # And it can be set up again, with new recovery codes.
    assert len(user.enable()[1]) == 10


def test_a_pending_enrolment_is_not_removable(user: Member) -> None:
    user.enroll()
    assert user.delete("/mfa/totp").json["code"] == "TOTP_NOT_ENABLED"


# -- Unit: the step arithmetic -------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
@pytest.mark.requirement("RFC-6238-5.2")
def test_the_window_is_one_step_either_side(offset: int, accepted: bool) -> None:
    secret = pyotp.random_base32()
    now = NOW_STEP * 30 + 1
    found = _totp.matched_step(secret, code(secret, NOW_STEP + offset), now)
    assert (found == NOW_STEP + offset) if accepted else found is None


def test_refresh_secret_is_the_encryption_key() -> None:
    from flask_tokenauth import _factor_crypto as crypto

    stored = crypto.encrypt(REFRESH_SECRET.encode(), "SECRET", "7")
    assert crypto.decrypt(REFRESH_SECRET.encode(), stored, "7") == "SECRET"
    with pytest.raises(crypto.KeyUnknown):
        crypto.decrypt(b"x" * 48, stored, "7")
    with pytest.raises(crypto.Unreadable):
        crypto.decrypt(REFRESH_SECRET.encode(), stored, "8")
    tampered = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    with pytest.raises(crypto.Unreadable):
        crypto.decrypt(REFRESH_SECRET.encode(), tampered, "7")
    assert PASSWORD not in stored
