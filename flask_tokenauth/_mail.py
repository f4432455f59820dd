"""The one sender interface of the mail flows: :func:`send_mail` renders a
mail from its templates and hands it to the app's sender after the response.

A flow calls ``send_mail("reset_password", to, link=...)``; this module
renders ``tokenauth/mail/reset_password.subject.txt``, ``.txt`` and
``.html`` (the app's own templates of those names win: Flask looks in the
app's template folder before the blueprint's), and :mod:`._outbox` runs the
delivery after the response through the sender
:mod:`._mail_senders` chose for the app.  A delivery that fails is logged
(recipient, template and error; never the body, whose links carry tokens)
and sent as :data:`~flask_tokenauth.signals.mail_failed`; one that succeeds
as :data:`~flask_tokenauth.signals.mail_sent`.  The request is answered
either way, as if the mail had gone.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app, render_template
from flask.sansio.app import App

from . import _mail_senders, _outbox, signals
from ._config import Settings
from ._state import get_state

logger = logging.getLogger("flask_tokenauth")

_resolving = threading.Lock()


def _after_fork() -> None:
    # A lock another thread held at the fork stays held in the child.
    global _resolving
    _resolving = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True)
class Message:
    """One mail, as the senders take it (Flask-Mail's ``Message`` fields).

    Plain data, so a ``TOKENAUTH_MAIL_SENDER`` that queues it (Celery, RQ)
    serializes :meth:`as_dict` and the worker rebuilds it with
    :meth:`from_dict`.
    """

    subject: str
    recipients: list[str]
    #: The plain-text body.
    body: str
    #: The HTML alternative.
    html: str | None = None
    #: ``None``: the app's ``MAIL_DEFAULT_SENDER``.
    sender: str | None = None
    #: The template it was rendered from (``"reset_password"``).
    template: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``str``, ``list``, ``dict``, ``None``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """The message :meth:`as_dict` described."""
        return cls(**data)


def render(template: str, to: str, **context: Any) -> Message:
    """Render ``tokenauth/mail/<template>.subject.txt``, ``.txt`` and
    ``.html`` (the app's own templates of those names win).  The HTML is
    autoescaped (Flask escapes templates whose name ends in ``.html``); the
    text parts are not, so a name with ``<`` reads as typed."""
    base = f"tokenauth/mail/{template}"
    # Every template may name the recipient and the site the links lead to.
    context.setdefault("email", to)
    context.setdefault("site", get_state().settings.link_base_url or "")
    subject = " ".join(render_template(f"{base}.subject.txt", **context).split())
    body = render_template(f"{base}.txt", **context)
    html = render_template(f"{base}.html", **context)
    return Message(subject, [to], body, html, None, template)


def send_mail(template: str, to: str, **context: Any) -> None:
    """Render now (in the request, where a rendering error is the
    developer's to see), deliver after the response; never fails the
    request for the delivery."""
    message = render(template, to, **context)
    if not _outbox.defer(deliver, message):
        _failed(message, RuntimeError("outbox full: mail dropped"))


def choose_sender(app: App, settings: Settings) -> _mail_senders.Sender | None:
    """The app's sender, chosen at start-up (see
    :func:`._mail_senders.choose`); raises ``ConfigurationError``.  ``None``
    when no flow sends mail: an app that does not use them is not held to
    our reading of its ``MAIL_*`` keys."""
    if not mail_flows_on(settings):
        return None
    return _mail_senders.choose(app, settings)


def mail_flows_on(settings: Settings) -> bool:
    return bool(
        settings.email_verification != "off"
        or settings.password_reset_enabled
        or settings.change_email_enabled
        or settings.email_login_enabled
        or settings.register_enumeration_safe
    )


def sender_of(app: App) -> _mail_senders.Sender:
    """The app's sender, decided now if start-up left it open."""
    state = get_state(app)
    if state.mail_sender is None:
        with _resolving:
            if state.mail_sender is None:
                state.mail_sender = _mail_senders.resolve(app, state.settings)
    return state.mail_sender


def deliver(message: Message) -> None:
    """Hand ``message`` to the app's sender (in the outbox thread); log and
    signal the outcome."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        sender_of(app)(message)
    except Exception as e:
        _failed(message, e)
        return
    signals.mail_sent.send(app, template=message.template, to=message.recipients[0])


def _failed(message: Message, error: Exception) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # The error's text, never the message: the body holds the links.  An
    # SMTP error quotes the server's answer, which names the recipient at
    # most.
    logger.error(
        "tokenauth mail %r to %s failed: %s: %s",
        message.template,
        ", ".join(message.recipients),
        type(error).__name__,
        error,
    )
    signals.mail_failed.send(
        app, template=message.template, to=message.recipients[0], error=error
    )


def duration_text(lifetime: timedelta) -> str:
    """``24 hours``, ``30 minutes``, ``2 days``: a lifetime as a mail says
    it (the ``valid_for`` of the flows' templates)."""
    seconds = int(lifetime.total_seconds())
    # Days from two on: "24 hours" reads better than "1 day" for a link.
    for unit, size, least in (("day", 86400, 2), ("hour", 3600, 1), ("minute", 60, 1)):
        if seconds >= least * size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"
