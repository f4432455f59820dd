"""The one sender interface of the mail flows: :func:`send_mail` renders a
mail from its templates and hands it to the app's sender after the response.

(Skeleton: delivery by log only; see the mail work of issue 17.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, render_template

from . import _outbox

logger = logging.getLogger("flask_tokenauth")


@dataclass(frozen=True)
class Message:
    """One mail, as the senders take it (Flask-Mail's ``Message`` fields)."""

    subject: str
    recipients: list[str]
    body: str
    html: str | None = None
    sender: str | None = None
    #: The template it was rendered from (``"reset_password"``).
    template: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)


def render(template: str, to: str, **context: Any) -> Message:
    """Render ``tokenauth/mail/<template>.subject.txt``, ``.txt`` and
    ``.html`` (the app's own templates of those names win)."""
    base = f"tokenauth/mail/{template}"
    subject = render_template(f"{base}.subject.txt", **context).strip()
    body = render_template(f"{base}.txt", **context)
    html = render_template(f"{base}.html", **context)
    return Message(subject, [to], body, html, None, template)


def send_mail(template: str, to: str, **context: Any) -> None:
    """Render now, deliver after the response (never fails the request)."""
    message = render(template, to, **context)
    _outbox.defer(_deliver, message)


def _deliver(message: Message) -> None:
    logger.info("mail to %s: %s\n%s", message.recipients, message.subject, message.body)
    from . import signals

    signals.mail_sent.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        template=message.template,
        to=message.recipients[0],
    )
