"""What the address-verification tests share: the config of an app with
verification on, a mailbox that records the verification mails as they are
handed to the sender, and reading the claims of an access token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest
from sqlalchemy import Engine, text, update

from flask_tokenauth import _outbox
from flask_tokenauth import _verification as verification
from flask_tokenauth.models import EmailToken

BASE_URL = "https://app.example"


def verify_config(mode: str = "optional", **overrides: Any) -> dict[str, Any]:
    """``TOKENAUTH_EMAIL_VERIFICATION = mode``, mail logged, links under
    :data:`BASE_URL`, the per-client mail limit out of the way (tested on
    its own)."""
    config: dict[str, Any] = {
        "TOKENAUTH_EMAIL_VERIFICATION": mode,
        "TOKENAUTH_MAIL_BACKEND": "log",
        "TOKENAUTH_LINK_BASE_URL": BASE_URL,
        "TOKENAUTH_RATELIMIT_MAIL": "1000/minute",
    }
    config.update(overrides)
    return config


@dataclass
class Mail:
    template: str
    to: str
    context: dict[str, Any]

    @property
    def token(self) -> str:
        link = str(self.context["link"])
        prefix = f"{BASE_URL}/verify-email#token="
        assert link.startswith(prefix), link
        return link[len(prefix) :]


class Mailbox:
    """The verification mails handed to the sender interface, in order."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    def settle(self) -> list[Mail]:
        """Every mail of the work deferred so far (the resend lookups run
        after the response)."""
        _outbox.wait_idle()
        return self.mails

    def to(self, address: str) -> list[Mail]:
        return [mail for mail in self.settle() if mail.to == address]

    def token_for(self, address: str) -> str:
        return self.to(address)[-1].token


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Mailbox:
    box = Mailbox()
    send = verification.send_mail

    def record(template: str, to: str, **context: Any) -> None:
        box.mails.append(Mail(template, to, context))
        send(template, to, **context)

    monkeypatch.setattr(verification, "send_mail", record)
    return box


def claims(access_token: str) -> dict[str, Any]:
    return dict(jwt.decode(access_token, options={"verify_signature": False}))


def session_column(engine: Engine) -> list[Any]:
    """``email_verified`` of every session, oldest first (SQLite's 0 and 1
    as booleans)."""
    query = text("SELECT email_verified FROM tokenauth_sessions ORDER BY created_at")
    with engine.connect() as conn:
        values = conn.execute(query).scalars()
        return [None if value is None else bool(value) for value in values]


def expire_links(engine: Engine) -> None:
    """Every link's lifetime over (its row says so: no waiting)."""
    past = datetime(2000, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(update(EmailToken.__table__).values(expires_at=past))
