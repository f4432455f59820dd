"""Each sender delivers (through the real SMTP server process where it
sends at all), which one an app gets, and what start-up refuses."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import signals
from flask_tokenauth._mail_senders import (
    FlaskMailmanSender,
    FlaskMailSender,
    LogSender,
    SMTPSender,
)
from flask_tokenauth._state import get_state
from flask_tokenauth.errors import ConfigurationError
from flask_tokenauth.mail import Message
from flask_tokenauth.testing import wait_for_mail

from .mail_app import LINK, add_send_route
from .smtp import LOGIN, PASSWORD, SMTPServer, html_of, running_smtp_server, text_of

pytestmark = pytest.mark.sqlite


def send(app: Flask, to: str) -> None:
    response = app.test_client().post("/send", query_string={"to": to})
    assert response.status_code == 200, response.get_data(as_text=True)


def failures_of(app: Flask) -> Any:
    failed: list[dict[str, Any]] = []
    return failed, signals.mail_failed.connected_to(
        lambda _, **kw: failed.append(kw), app
    )


# -- smtp ---------------------------------------------------------------------


def test_smtp(make_app: Any, mail_config: dict[str, Any], smtp_server: Any) -> None:
    app = add_send_route(make_app(TOKENAUTH_MAIL_BACKEND="smtp", **mail_config))
    send(app, "smtp@example.com")
    (message,) = smtp_server.wait_for("smtp@example.com")
    assert LINK in text_of(message)


@pytest.fixture(scope="module", params=["starttls", "ssl"])
def tls_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SMTPServer]:
    """A server that requires STARTTLS, or speaks TLS from the first byte,
    with a self-signed certificate."""
    directory = tmp_path_factory.mktemp(f"smtp-{request.param}")
    with running_smtp_server(directory, tls=request.param) as server:
        yield server


def tls_config(server: SMTPServer) -> dict[str, Any]:
    return {
        "TOKENAUTH_MAIL_BACKEND": "smtp",
        "TOKENAUTH_LINK_BASE_URL": "http://app.test",
        "MAIL_SERVER": server.host,
        "MAIL_PORT": server.port,
        "MAIL_DEFAULT_SENDER": "no-reply@app.test",
        "MAIL_USE_TLS": server.tls == "starttls",
        "MAIL_USE_SSL": server.tls == "ssl",
    }


@pytest.mark.parametrize("backend", ["smtp", "flask-mail"])
def test_tls_verifies_the_servers_certificate(
    make_app: Any,
    tls_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    """Trusted (``SSL_CERT_FILE`` names its certificate): delivered.  Not
    trusted: refused, ``mail_failed`` - the sender never talks to a server
    it cannot authenticate."""
    config = tls_config(tls_server)
    if backend == "smtp":
        app = add_send_route(make_app(**config))
    else:
        config["TOKENAUTH_MAIL_BACKEND"] = "flask-mail"
        app = flask_mail_app(make_app, config, MAIL_SUPPRESS_SEND=False)
    tls_server.clear()
    failed, connected = failures_of(app)
    with connected:
        send(app, "untrusted@example.com")
        wait_for_mail(app)
    assert [f["error"].__class__.__name__ for f in failed] == [
        "SSLCertVerificationError"
    ]
    assert tls_server.messages() == []

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cert))
    send(app, "trusted@example.com")
    (message,) = tls_server.wait_for("trusted@example.com")
    assert LINK in text_of(message)


@pytest.mark.parametrize("backend", ["smtp", "flask-mail"])
@pytest.mark.parametrize("password", [PASSWORD, "wrong-password-for-tests"])
def test_login_over_tls(
    make_app: Any,
    tls_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    backend: str,
    password: str,
) -> None:
    """``MAIL_USERNAME`` / ``MAIL_PASSWORD`` log in after TLS; a wrong
    password is a failed mail, and the password is in no log."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cert))
    config = {
        **tls_config(tls_server),
        "MAIL_USERNAME": LOGIN,
        "MAIL_PASSWORD": password,
    }
    if backend == "smtp":
        app = add_send_route(make_app(**config))
    else:
        config["TOKENAUTH_MAIL_BACKEND"] = "flask-mail"
        app = flask_mail_app(make_app, config, MAIL_SUPPRESS_SEND=False)
    tls_server.clear()
    failed, connected = failures_of(app)
    with connected:
        send(app, "login@example.com")
        wait_for_mail(app)
    if password == PASSWORD:
        (message,) = tls_server.messages("login@example.com")
        assert message["X-Authenticated-As"] == LOGIN
        assert failed == []
    else:
        assert tls_server.messages() == []
        assert [type(f["error"]).__name__ for f in failed] == [
            "SMTPAuthenticationError"
        ]
        assert password not in caplog.text


# -- Flask-Mail and Flask-Mailman ---------------------------------------------


def flask_mail_app(make_app: Any, config: dict[str, Any], **mail: Any) -> Flask:
    from flask_mail import Mail

    app = add_send_route(make_app(**config))
    app.config.update(mail)
    Mail(app)
    return app


def flask_mailman_app(make_app: Any, config: dict[str, Any], **mail: Any) -> Flask:
    from flask_mailman import Mail

    app = add_send_route(make_app(**config))
    app.config.update(mail)
    Mail(app)
    return app


def test_flask_mail_sends_through_the_apps_extension(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    """Initialised after us: ``auto`` finds it at the first mail."""
    from flask_mail import email_dispatched

    app = flask_mail_app(make_app, mail_config, MAIL_SUPPRESS_SEND=False)
    dispatched: list[Any] = []
    with email_dispatched.connected_to(lambda _, message: dispatched.append(message)):
        send(app, "flaskmail@example.com")
        (message,) = smtp_server.wait_for("flaskmail@example.com")
    assert isinstance(get_state(app).mail_sender, FlaskMailSender)
    assert [m.recipients for m in dispatched] == [["flaskmail@example.com"]]
    assert message["From"] == "Example App <no-reply@app.test>"
    assert LINK in text_of(message)
    assert LINK in html_of(message)


def test_flask_mail_record_messages_works_as_for_the_apps_own_mail(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    """Under ``TESTING`` Flask-Mail suppresses sending; a host's tests read
    our mails with ``record_messages()`` as they read their own."""
    app = flask_mail_app(make_app, mail_config)
    with app.extensions["mail"].record_messages() as outbox:
        send(app, "recorded@example.com")
        wait_for_mail(app)
    assert [m.recipients for m in outbox] == [["recorded@example.com"]]
    assert smtp_server.messages() == []


def test_flask_mailman_sends_through_the_apps_extension(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    app = flask_mailman_app(make_app, mail_config, MAIL_BACKEND="smtp")
    send(app, "mailman@example.com")
    (message,) = smtp_server.wait_for("mailman@example.com")
    assert isinstance(get_state(app).mail_sender, FlaskMailmanSender)
    assert message["From"] == "Example App <no-reply@app.test>"
    assert LINK in text_of(message)
    assert LINK in html_of(message)


def test_flask_mailman_locmem_outbox_under_testing(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    app = flask_mailman_app(make_app, mail_config)
    app.extensions["mailman"].outbox = []
    send(app, "locmem@example.com")
    wait_for_mail(app)
    (mail,) = app.extensions["mailman"].outbox
    assert mail.to == ["locmem@example.com"]
    assert [content_type for _, content_type in mail.alternatives] == ["text/html"]
    assert smtp_server.messages() == []


@pytest.mark.parametrize("extension", ["flask-mail", "flask-mailman"])
def test_auto_takes_an_extension_initialised_before_us_at_start_up(
    engine: Any, mail_config: dict[str, Any], extension: str
) -> None:
    from flask_tokenauth import TokenAuth

    from .conftest import base_config

    app = Flask(__name__)
    app.config.update(base_config(**mail_config))
    if extension == "flask-mail":
        from flask_mail import Mail

        Mail(app)
        expected: type = FlaskMailSender
    else:
        from flask_mailman import Mail as Mailman

        Mailman(app)
        expected = FlaskMailmanSender
    TokenAuth(engine=engine).init_app(app)
    assert isinstance(get_state(app).mail_sender, expected)


def test_auto_without_an_extension_is_smtp_at_the_first_mail(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    app = add_send_route(make_app(**mail_config))
    assert get_state(app).mail_sender is None  # an extension may come yet
    send(app, "auto@example.com")
    smtp_server.wait_for("auto@example.com")
    assert isinstance(get_state(app).mail_sender, SMTPSender)


@pytest.mark.parametrize("backend", ["flask-mail", "flask-mailman"])
def test_a_named_extension_never_initialised_fails_the_mail_not_the_request(
    make_app: Any,
    mail_config: dict[str, Any],
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = add_send_route(make_app(TOKENAUTH_MAIL_BACKEND=backend, **mail_config))
    failed, connected = failures_of(app)
    with connected:
        send(app, "nobody@example.com")
        wait_for_mail(app)
    (failure,) = failed
    assert "call its init_app(app)" in str(failure["error"])
    assert "call its init_app(app)" in caplog.text


# -- callable and log ---------------------------------------------------------


def test_callable_gets_a_plain_message_in_an_app_context(
    make_app: Any, smtp_server: Any
) -> None:
    """What a queueing sender does: serialize the message (and a worker
    later delivers it)."""
    from flask import current_app, has_request_context

    queued: list[str] = []

    def enqueue(message: Message) -> None:
        assert current_app.name == app.name and not has_request_context()
        queued.append(json.dumps(message.as_dict()))

    app = add_send_route(
        make_app(
            TOKENAUTH_MAIL_SENDER=enqueue, TOKENAUTH_LINK_BASE_URL="http://app.test"
        )
    )
    sent: list[dict[str, Any]] = []
    with signals.mail_sent.connected_to(lambda _, **kw: sent.append(kw), app):
        send(app, "queued@example.com")
        wait_for_mail(app)
    (data,) = queued
    message = Message.from_dict(json.loads(data))
    assert message.recipients == ["queued@example.com"]
    assert message.template == "test"
    assert LINK in message.body and message.html and LINK in message.html
    assert sent == [{"template": "test", "to": "queued@example.com"}]


def test_log_prints_the_mail_with_each_link_on_a_line_of_its_own(
    make_app: Any, smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = add_send_route(
        make_app(
            TOKENAUTH_MAIL_BACKEND="log", TOKENAUTH_LINK_BASE_URL="http://app.test"
        )
    )
    assert isinstance(get_state(app).mail_sender, LogSender)
    with caplog.at_level(logging.INFO, logger="flask_tokenauth"):
        send(app, "dev@example.com")
        wait_for_mail(app)
    (record,) = [r for r in caplog.records if "dev@example.com" in r.getMessage()]
    assert record.levelno == logging.INFO
    lines = record.getMessage().splitlines()
    assert "Test mail from http://app.test" in lines[0]
    # Clickable: the link alone on its line, after only indentation.
    assert f"    {LINK}" in lines
    assert smtp_server.messages() == []


def test_log_outside_debug_and_testing_warns_at_start_up(
    engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_tokenauth import TokenAuth

    from .conftest import base_config

    app = Flask(__name__)
    app.config.update(
        base_config(
            TESTING=False,
            TOKENAUTH_MAIL_BACKEND="log",
            TOKENAUTH_LINK_BASE_URL="http://app.test",
        )
    )
    TokenAuth(engine=engine).init_app(app)
    assert "for development only" in caplog.text


# -- start-up refusals --------------------------------------------------------


@pytest.mark.parametrize(
    ("mail", "says"),
    [
        ({"MAIL_USE_TLS": True, "MAIL_USE_SSL": True}, "set only one"),
        ({"MAIL_DEFAULT_SENDER": None}, "set MAIL_DEFAULT_SENDER"),
        ({"MAIL_DEFAULT_SENDER": "not an address"}, "set MAIL_DEFAULT_SENDER"),
        ({"MAIL_USERNAME": "user"}, "MAIL_USERNAME and MAIL_PASSWORD go together"),
        ({"MAIL_PORT": "smtp"}, "MAIL_PORT must be a port number"),
        ({"MAIL_PORT": 70000}, "MAIL_PORT must be 1..65535"),
    ],
)
@pytest.mark.parametrize("backend", ["smtp", "auto"])
def test_mail_settings_that_cannot_work_stop_the_app_at_start_up(
    make_app: Any,
    mail_config: dict[str, Any],
    mail: dict[str, Any],
    says: str,
    backend: str,
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        make_app(TOKENAUTH_MAIL_BACKEND=backend, **{**mail_config, **mail})


def test_mail_settings_are_not_ours_to_check_when_no_flow_sends_mail(
    make_app: Any,
) -> None:
    """An app with Flask-Mail for its own mail and none of our flows."""
    app = make_app(
        MAIL_SERVER="localhost",
        MAIL_USE_TLS=True,
        MAIL_USE_SSL=True,
        TOKENAUTH_PASSWORD_RESET_ENABLED=False,
        TOKENAUTH_CHANGE_EMAIL_ENABLED=False,
    )
    assert get_state(app).mail_sender is None


def test_sender_forms_of_flask_mail_are_read(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    app = add_send_route(
        make_app(
            TOKENAUTH_MAIL_BACKEND="smtp",
            **{**mail_config, "MAIL_DEFAULT_SENDER": ("Tuple Sender", "t@app.test")},
        )
    )
    send(app, "tuple@example.com")
    (message,) = smtp_server.wait_for("tuple@example.com")
    assert message["From"] == "Tuple Sender <t@app.test>"


def test_no_mail_templates_are_left_unused(tmp_path: Path) -> None:
    """Every shared template the package ships is a layout part or a whole
    mail (``.subject.txt``, ``.txt`` and ``.html``)."""
    from flask_tokenauth.views import _TEMPLATES

    folder = Path(_TEMPLATES) / "tokenauth" / "mail"
    names = {p.name for p in folder.iterdir()}
    assert {"layout.txt", "layout.html", "button.html"} <= names
    mails = {n.split(".")[0] for n in names if n.endswith(".subject.txt")}
    for mail in mails:
        assert {f"{mail}.txt", f"{mail}.html"} <= names
