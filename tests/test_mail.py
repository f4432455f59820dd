"""The sender interface through a real SMTP server process (tests/smtp.py):
what a delivered mail looks like, the app's own templates, autoescaping,
``wait_for_mail``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import signals
from flask_tokenauth.mail import Message
from flask_tokenauth.testing import wait_for_mail

from .mail_app import LINK, TOKEN, add_send_route
from .smtp import html_of, link_in, recipients, text_of, token_in

# The database plays no part in sending mail.
pytestmark = pytest.mark.sqlite


def own_templates(app: Flask, folder: Path, name: str, **parts: str) -> None:
    """Write the app's own ``tokenauth/mail/<name>.<part>`` templates in
    ``folder`` and put it on the app's template path."""
    app.jinja_loader.searchpath.append(str(folder))  # type: ignore[union-attr]
    mail = folder / "tokenauth" / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    for part, text in parts.items():
        (mail / f"{name}.{part.replace('_', '.')}").write_text(text)


@pytest.fixture
def mail_app(make_app: Any, mail_config: dict[str, Any]) -> Flask:
    return add_send_route(make_app(TOKENAUTH_MAIL_BACKEND="smtp", **mail_config))


def test_a_mail_is_delivered_as_text_and_html_with_the_apps_sender(
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
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    # The shared layout: the link on a line of its own, the footer's reason.
    assert LINK in text_of(message).splitlines()
    assert "someone entered alice@example.com at http://app.test" in text_of(message)
    assert f'href="{LINK}"' in html_of(message)


def test_link_in_and_token_in_read_the_first_link_and_its_fragment(
    mail_app: Flask, smtp_server: Any
) -> None:
    mail_app.test_client().post("/send?to=bob@example.com")
    (message,) = smtp_server.wait_for("bob@example.com")
    assert link_in(message) == LINK
    assert token_in(message) == TOKEN


def test_the_apps_own_template_of_the_same_name_wins(
    mail_app: Flask, smtp_server: Any, tmp_path: Path
) -> None:
    own_templates(
        mail_app,
        tmp_path,
        "test",
        subject_txt="Ours: {{ email }}\n",
        txt="Our words. {{ link }}\n",
        html="<p>Our words.</p>",
    )
    mail_app.test_client().post("/send?to=carol@example.com")
    (message,) = smtp_server.wait_for("carol@example.com")
    assert message["Subject"] == "Ours: carol@example.com"
    assert text_of(message).strip() == f"Our words. {LINK}"
    assert html_of(message).strip() == "<p>Our words.</p>"


def test_html_is_autoescaped_and_text_is_not(
    mail_app: Flask, smtp_server: Any, tmp_path: Path
) -> None:
    own_templates(
        mail_app,
        tmp_path,
        "greeting",
        subject_txt="Hello {{ name }}\n",
        txt="Hello {{ name }}\n",
        html="<p>Hello {{ name }}</p>",
    )
    name = '<a href="https://evil.test">Eve</a>'
    mail_app.test_client().post(
        "/send",
        query_string={"to": "dave@example.com", "template": "greeting", "name": name},
    )
    (message,) = smtp_server.wait_for("dave@example.com")
    assert text_of(message).strip() == f"Hello {name}"
    assert "<a href" not in html_of(message)
    assert "&lt;a href=&#34;https://evil.test&#34;&gt;Eve&lt;/a&gt;" in html_of(message)


def test_the_subject_is_one_line(
    mail_app: Flask, smtp_server: Any, tmp_path: Path
) -> None:
    """A subject template's line breaks never become header lines."""
    own_templates(
        mail_app,
        tmp_path,
        "test",
        subject_txt="Two\nlines {{ name }}\n\n",
        txt="{{ link }}\n",
        html="<p></p>",
    )
    mail_app.test_client().post("/send?to=erin@example.com&name=x%0ABcc:%20z@z.test")
    (message,) = smtp_server.wait_for("erin@example.com")
    assert message["Subject"] == "Two lines x Bcc: z@z.test"
    assert recipients(message) == ["erin@example.com"]


def test_mail_sent_is_signalled_after_delivery_and_wait_for_mail_waits(
    mail_app: Flask, smtp_server: Any
) -> None:
    sent: list[dict[str, Any]] = []
    with signals.mail_sent.connected_to(lambda _, **kw: sent.append(kw), mail_app):
        mail_app.test_client().post("/send?to=frank@example.com")
        wait_for_mail(mail_app)
        # No polling: the mail is in the box once the outbox is idle.
        assert len(smtp_server.messages("frank@example.com")) == 1
    assert sent == [{"template": "test", "to": "frank@example.com"}]


def test_a_message_survives_a_trip_through_json() -> None:
    """What a queueing sender puts on the queue (see flask_tokenauth.mail)."""
    import json

    message = Message(
        "Subject", ["a@example.com"], "text", "<p>html</p>", None, "test", {"X-A": "1"}
    )
    assert Message.from_dict(json.loads(json.dumps(message.as_dict()))) == message


def test_work_deferred_by_deferred_work_is_waited_for_too(
    mail_app: Flask, smtp_server: Any
) -> None:
    """What the flows do: look the address up after the response, then
    mail from there.  ``wait_for_mail`` returns once that mail is out."""
    from flask_tokenauth import _outbox
    from flask_tokenauth._mail import send_mail

    def look_up_then_mail(to: str) -> None:
        send_mail("test", to, link=LINK)

    @mail_app.post("/later")
    def later() -> dict[str, str]:
        _outbox.defer(look_up_then_mail, "later@example.com")
        return {}

    mail_app.test_client().post("/later")
    wait_for_mail(mail_app)
    assert len(smtp_server.messages("later@example.com")) == 1


@pytest.mark.parametrize("mode", ["accept", "refuse-rcpt"])
def test_cli_sends_a_test_mail_now(
    mail_app: Flask, smtp_server: Any, mode: str
) -> None:
    smtp_server.set_mode(mode)
    result = mail_app.test_cli_runner().invoke(
        args=["tokenauth", "mail", "test", "ops@example.com"]
    )
    if mode == "accept":
        assert result.exit_code == 0, result.output
        assert result.output == "Sent to ops@example.com by smtp.\n"
        (message,) = smtp_server.messages("ops@example.com")  # sent, not deferred
        assert message["Subject"] == "Test mail from http://app.test"
    else:
        assert result.exit_code == 1
        assert "The mail to ops@example.com was not sent: SMTPRecipientsRefused" in (
            result.output
        )
        assert smtp_server.messages() == []
