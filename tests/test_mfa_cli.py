"""``flask tokenauth mfa list | reset | rekey``: support staff's commands on
a user's second factors, and re-encryption after the refresh secret
changed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, Table, insert, select

from flask_tokenauth import _factor_crypto as crypto
from flask_tokenauth import signals
from flask_tokenauth.models import Passkey, TotpSecret

from .conftest import REFRESH_SECRET, bearer
from .test_totp import PREFIX, Clock, Member, clock, code, member
from .test_totp_verify import pending_login, verify

__all__ = ["clock"]  # a fixture of test_totp, used here too

_secrets: Table = TotpSecret.__table__  # type: ignore[assignment]
_passkeys: Table = Passkey.__table__  # type: ignore[assignment]


def run(app: Flask, *args: str, env: dict[str, str] | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["tokenauth", "mfa", *args], env=env)


@pytest.fixture
def user(app: Flask, clock: Clock) -> Member:
    return member(app)


@pytest.mark.parametrize("command", ["list", "reset", "rekey"])
def test_help(app: Flask, command: str) -> None:
    result = run(app, command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_list_shows_the_factors(app: Flask, user: Member) -> None:
    result = run(app, "list", "user@example.com")
    assert result.exit_code == 0, result.output
    assert "Authenticator app: none" in result.output
    user.enable()
    result = run(app, "list", "USER@example.com")
    assert "Authenticator app: since 20" in result.output
    assert "Passkeys: 0" in result.output
    assert "Recovery codes left: 10" in result.output


@pytest.mark.parametrize("command", ["list", "reset"])
def test_an_unknown_user_is_a_message(app: Flask, command: str) -> None:
    result = run(
        app, command, "nobody@example.com", *(["--yes"] * (command == "reset"))
    )
    assert result.exit_code == 1
    assert "No user with" in result.output and "Traceback" not in result.output


def test_reset_removes_every_factor_and_revokes_every_session(
    app: Flask, user: Member, engine: Engine
) -> None:
    user.enable()
    sub = user.get("/sessions").status_code  # the session works before
    assert sub == 200
    with engine.begin() as conn:
        user_id = conn.execute(select(_secrets.c.user_id)).scalar_one()
        conn.execute(
            insert(_passkeys).values(
                id="cred-1",
                user_id=user_id,
                public_key="pk",
                sign_count=0,
                name="Key",
                user_handle="handle",
                backed_up=False,
                created_at=datetime.now(timezone.utc),
            )
        )
    events: list[dict[str, Any]] = []

    def hook(sender: Any, **kw: Any) -> None:
        events.append(kw)

    signals.mfa_reset.connect(hook)
    try:
        result = run(app, "reset", "user@example.com", "--yes")
    finally:
        signals.mfa_reset.disconnect(hook)
    assert result.exit_code == 0, result.output
    assert "1 authenticator app(s), 1 passkey(s), 10 recovery code(s)" in result.output
    assert "revoked 2 session(s)" in result.output  # register, login
    assert len(events) == 1 and str(events[0]["user_id"]) == user_id
    with engine.connect() as conn:
        assert conn.execute(select(_secrets)).first() is None
        assert conn.execute(select(_passkeys)).first() is None
    # The access token of the session is refused now.
    response = user.client.get(PREFIX + "/mfa", headers=bearer(user.token))
    assert response.status_code == 401 and response.json["code"] == "TOKEN_REVOKED"


def test_reset_asks_first(app: Flask, user: Member) -> None:
    user.enable()
    result = app.test_cli_runner().invoke(
        args=["tokenauth", "mfa", "reset", "user@example.com"], input="n\n"
    )
    assert result.exit_code == 1
    assert user.get("/mfa").json["totp"]["enabled"] is True


def test_rekey_after_a_new_refresh_secret(
    make_app: Any, clock: Clock, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Secrets stored under the old refresh secret are refused under the
    new one (and the log says what to run) until ``rekey`` re-encrypts
    them; then the user's app works again."""
    someone = member(make_app())
    secret, _ = someone.enable()
    new_secret = "another-refresh-secret-" + "c" * 48
    new_app = make_app(TOKENAUTH_REFRESH_SECRET=new_secret)
    clock.step += 1
    client, token = pending_login(new_app)
    refused = verify(client, token, {"code": code(secret, clock.step)})
    assert refused.status_code == 400 and refused.json["code"] == "MFA_CODE_INVALID"
    assert "flask tokenauth mfa rekey" in caplog.text
    assert secret not in caplog.text
    missing = run(new_app, "rekey", env={"TOKENAUTH_PREVIOUS_REFRESH_SECRET": ""})
    assert missing.exit_code == 1
    assert "TOKENAUTH_PREVIOUS_REFRESH_SECRET" in missing.output
    previous = {"TOKENAUTH_PREVIOUS_REFRESH_SECRET": REFRESH_SECRET}
    result = run(new_app, "rekey", env=previous)
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 secret(s)." in result.output
    with engine.connect() as conn:
        stored = conn.execute(select(_secrets.c.secret)).scalar_one()
    assert crypto.key_id_of(stored) == crypto.key_id(
        crypto.derive_key(new_secret.encode())
    )
    assert "Re-encrypted 0 secret(s)." in run(new_app, "rekey", env=previous).output
    accepted = verify(client, token, {"code": code(secret, clock.step)})
    assert accepted.status_code == 200, accepted.json
