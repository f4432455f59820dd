"""A mail that cannot be delivered never shows: the request is answered as
usual, the failure is logged (without the mail's links) and signalled, and
the app keeps serving.  Through the real SMTP server process, which refuses
(``550`` to ``RCPT``, ``554`` after ``DATA``) or accepts the connection and
never says a word."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from flask import Flask

from flask_tokenauth import _outbox, signals
from flask_tokenauth.mail import Message
from flask_tokenauth.testing import wait_for_mail

from .mail_app import TOKEN, add_send_route
from .smtp import text_of

pytestmark = pytest.mark.sqlite


def backend_app(make_app: Any, mail_config: dict[str, Any], backend: str) -> Flask:
    # A short timeout for the silent server; a real one answers on loopback
    # in far less.
    config = {**mail_config, "TOKENAUTH_MAIL_TIMEOUT": "3"}
    if backend == "smtp":
        return add_send_route(make_app(TOKENAUTH_MAIL_BACKEND="smtp", **config))
    app = add_send_route(make_app(**config))
    if backend == "flask-mail":
        from flask_mail import Mail

        app.config["MAIL_SUPPRESS_SEND"] = False
        Mail(app)
    else:
        from flask_mailman import Mail as Mailman

        app.config["MAIL_BACKEND"] = "smtp"
        Mailman(app)
    return app


@pytest.mark.parametrize("backend", ["smtp", "flask-mail", "flask-mailman"])
@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("refuse-rcpt", "SMTPRecipientsRefused"),
        ("refuse-data", "SMTPDataError"),
        # smtplib reports a timeout while waiting for the greeting as a
        # disconnection "timed out".
        ("hang", "timed out"),
    ],
)
def test_a_mail_server_that_refuses_or_never_answers(
    make_app: Any,
    mail_config: dict[str, Any],
    smtp_server: Any,
    caplog: pytest.LogCaptureFixture,
    backend: str,
    mode: str,
    error: str,
) -> None:
    app = backend_app(make_app, mail_config, backend)
    client = app.test_client()
    answered = client.post("/send?to=ok@example.com")
    smtp_server.wait_for("ok@example.com")

    smtp_server.set_mode(mode)
    failed: list[dict[str, Any]] = []
    with signals.mail_failed.connected_to(lambda _, **kw: failed.append(kw), app):
        response = client.post("/send?to=lost@example.com")
        # Answered as when the mail went.
        assert response.status_code == answered.status_code == 200
        assert response.get_json()["sent"] is True
        wait_for_mail(app)

    (failure,) = failed
    assert failure["template"] == "test"
    assert failure["to"] == "lost@example.com"
    names = {c.__name__ for c in type(failure["error"]).__mro__}
    assert error in names or error in str(failure["error"]), failure["error"]
    assert smtp_server.messages("lost@example.com") == []
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("lost@example.com" in r.getMessage() for r in logged)
    # The mail's links carry one-time tokens: never in the log.
    assert TOKEN not in caplog.text

    # The app keeps serving, and mailing once the server is back.
    smtp_server.set_mode("accept")
    assert client.post("/send?to=back@example.com").status_code == 200
    (message,) = smtp_server.wait_for("back@example.com")
    assert TOKEN in text_of(message)


@pytest.fixture
def blocking_sender() -> Any:
    """A ``TOKENAUTH_MAIL_SENDER`` that holds each mail until released."""

    class Blocking:
        def __init__(self) -> None:
            self.entered = threading.Event()
            self.release = threading.Event()
            self.got: list[Message] = []

        def __call__(self, message: Message) -> None:
            self.entered.set()
            assert self.release.wait(60)
            self.got.append(message)

    sender = Blocking()
    yield sender
    sender.release.set()
    wait_for_mail()


def blocking_app(make_app: Any, sender: Any) -> Flask:
    return add_send_route(
        make_app(
            TOKENAUTH_MAIL_SENDER=sender, TOKENAUTH_LINK_BASE_URL="http://app.test"
        )
    )


def test_the_response_never_waits_for_the_delivery(
    make_app: Any, blocking_sender: Any
) -> None:
    app = blocking_app(make_app, blocking_sender)
    response = app.test_client().post("/send?to=slow@example.com")
    assert response.status_code == 200
    assert blocking_sender.entered.wait(30)
    # Answered while the sender still holds the mail.
    assert blocking_sender.got == []
    assert not _outbox.wait_idle(app, timeout=0)
    with pytest.raises(TimeoutError):
        wait_for_mail(app, timeout=0)
    blocking_sender.release.set()
    wait_for_mail(app)
    assert [m.recipients for m in blocking_sender.got] == [["slow@example.com"]]


def test_the_outbox_is_bounded(
    make_app: Any,
    blocking_sender: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sender that does not keep up: beyond the bound a mail is dropped
    (logged, ``mail_failed``), the request still answered as usual."""
    monkeypatch.setattr(_outbox, "MAX_PENDING", 3)
    app = blocking_app(make_app, blocking_sender)
    client = app.test_client()
    failed: list[dict[str, Any]] = []
    with signals.mail_failed.connected_to(lambda _, **kw: failed.append(kw), app):
        assert client.post("/send?to=m0@example.com").status_code == 200
        assert blocking_sender.entered.wait(30)  # m0 taken: 3 places left
        for n in range(1, 5):
            assert client.post(f"/send?to=m{n}@example.com").status_code == 200
        assert [f["to"] for f in failed] == ["m4@example.com"]
        assert "outbox full" in str(failed[0]["error"])
        assert "outbox full" in caplog.text
        blocking_sender.release.set()
        wait_for_mail(app)
    assert [m.recipients[0] for m in blocking_sender.got] == [
        f"m{n}@example.com" for n in range(4)
    ]
    assert TOKEN not in caplog.text


def test_a_sender_that_raises_is_a_failed_mail_not_a_failed_request(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def flaky(message: Message) -> None:
        calls.append(message.recipients[0])
        if len(calls) == 1:
            raise ConnectionError("queue unreachable")

    app = blocking_app(make_app, flaky)
    failed: list[dict[str, Any]] = []
    with signals.mail_failed.connected_to(lambda _, **kw: failed.append(kw), app):
        assert app.test_client().post("/send?to=a@example.com").status_code == 200
        assert app.test_client().post("/send?to=b@example.com").status_code == 200
        wait_for_mail(app)
    assert [(f["to"], str(f["error"])) for f in failed] == [
        ("a@example.com", "queue unreachable")
    ]
    assert calls == ["a@example.com", "b@example.com"]
    assert "ConnectionError: queue unreachable" in caplog.text


def test_a_template_error_is_the_developers_to_see(
    make_app: Any, mail_config: dict[str, Any], smtp_server: Any
) -> None:
    """Rendering happens in the request: a missing template is a 500 in
    development (the flows' own tests catch it), never a silent loss."""
    from jinja2 import TemplateNotFound

    app = backend_app(make_app, mail_config, "smtp")
    with pytest.raises(TemplateNotFound):
        app.test_client().post("/send?to=x@example.com&template=no_such_mail")
