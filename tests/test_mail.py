"""The sender interface through a real SMTP server process (tests/smtp.py):
rendering, the ``smtp`` backend, the app's own templates."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import signals
from flask_tokenauth._mail import send_mail
from flask_tokenauth.testing import wait_for_mail

from .smtp import html_of, link_in, recipients, text_of, token_in

# The database plays no part in sending mail.
pytestmark = pytest.mark.sqlite

LINK = "http://app.test/reset-password#token=abc.DEF-123_x"


def add_send_route(app: Flask, template: str = "test") -> Flask:
    """``POST /send?to=...`` mails ``template`` with :data:`LINK`."""
    from flask import request

    @app.post("/send")
    def send() -> dict[str, Any]:
        send_mail(
            template, request.args["to"], link=LINK, name=request.args.get("name")
        )
        return {"message": "sent"}

    return app


@pytest.fixture
def mail_app(make_app: Any, mail_config: dict[str, Any]) -> Flask:
    return add_send_route(make_app(TOKENAUTH_MAIL_BACKEND="smtp", **mail_config))


def test_smtp_backend_delivers_text_and_html_through_the_real_server(
    mail_app: Flask, smtp_server: Any
) -> None:
    response = mail_app.test_client().post("/send?to=alice@example.com")
    assert response.status_code == 200

    (message,) = smtp_server.wait_for("alice@example.com")
    assert recipients(message) == ["alice@example.com"]
    assert message["To"] == "alice@example.com"
    assert message["From"] == "Example App <no-reply@app.test>"
    assert message["Subject"] == "Test mail from http://app.test"
    assert message["Message-ID"].endswith("@app.test>")
    assert message.get_content_type() == "multipart/alternative"
    assert link_in(message) == "http://app.test"
    assert "http://app.test" in html_of(message)
    assert "alice@example.com" in text_of(message)


def test_link_and_token_helpers_read_the_fragment(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any, tmp_path: Any
) -> None:
    app = add_send_route(make_app(**mail_config), "own_notice")
    app.jinja_loader.searchpath.append(str(tmp_path))  # type: ignore[union-attr]
    folder = tmp_path / "tokenauth" / "mail"
    folder.mkdir(parents=True)
    (folder / "own_notice.subject.txt").write_text("Notice\n")
    (folder / "own_notice.txt").write_text("Reset: {{ link }}.\n")
    (folder / "own_notice.html").write_text('<a href="{{ link }}">reset</a>')

    app.test_client().post("/send?to=bob@example.com")

    (message,) = smtp_server.wait_for("bob@example.com")
    assert link_in(message) == LINK
    assert token_in(message) == "abc.DEF-123_x"


def test_mail_sent_signal_after_delivery(mail_app: Flask, smtp_server: Any) -> None:
    sent: list[dict[str, Any]] = []
    with signals.mail_sent.connected_to(lambda sender, **kw: sent.append(kw), mail_app):
        mail_app.test_client().post("/send?to=carol@example.com")
        wait_for_mail(mail_app)
    assert sent == [{"template": "test", "to": "carol@example.com"}]
    assert len(smtp_server.messages("carol@example.com")) == 1
