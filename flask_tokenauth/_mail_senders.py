"""The senders behind :func:`._mail.send_mail`: one per
``TOKENAUTH_MAIL_BACKEND``, each a callable ``send(message)`` run in the
outbox thread (app context pushed, no request).

``smtp``
    The standard library's :mod:`smtplib`, configured from the ``MAIL_*``
    keys as Flask-Mail reads them (:class:`SMTPConfig`), with
    ``TOKENAUTH_MAIL_TIMEOUT``; one connection per mail, so nothing is
    shared across a fork.
``flask-mail``
    The app's Flask-Mail (``app.extensions["mail"]``) and its ``Message``:
    its ``MAIL_SUPPRESS_SEND`` (on under ``TESTING``), ``record_messages()``
    and ``email_dispatched`` behave as for the app's own mail.  Flask-Mail
    0.10 has no timeout setting and does not verify the server's
    certificate, so the connection is Flask-Mail's own
    :class:`flask_mail.Connection` with ``TOKENAUTH_MAIL_TIMEOUT`` and a
    verifying TLS context.
``flask-mailman``
    The app's Flask-Mailman (``app.extensions["mailman"]``) and its
    ``EmailMultiAlternatives``, through its configured backend (``locmem``
    under ``TESTING``); ``TOKENAUTH_MAIL_TIMEOUT`` unless the app sets
    Flask-Mailman's own ``MAIL_TIMEOUT``.
``log``
    Development: the mail is logged at ``INFO``, each link on a line of
    its own (a terminal makes it clickable); nothing is sent.
``callable``
    ``TOKENAUTH_MAIL_SENDER(message)``, e.g. to put it on a queue.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask.sansio.app import App

from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._config import Settings
    from ._mail import Message

logger = logging.getLogger("flask_tokenauth")

#: ``send(message)``: delivers or raises.
Sender = Callable[["Message"], None]

_LINK = re.compile(r"https?://[^\s<>\"']+")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _address(value: Any) -> str:
    """Flask-Mail's sender forms: ``"a@b"``, ``"Name <a@b>"`` or
    ``("Name", "a@b")``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return formataddr((str(value[0]), str(value[1])))
    return str(value)


@dataclass(frozen=True)
class SMTPConfig:
    """The ``MAIL_*`` keys, read as Flask-Mail reads them."""

    server: str
    port: int
    use_tls: bool
    use_ssl: bool
    username: str | None
    password: str | None
    default_sender: str | None
    timeout: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any], timeout: float) -> SMTPConfig:
        """Read and check the keys; a :class:`ConfigurationError` saying what
        to set for what cannot work."""
        use_tls = _truthy(config.get("MAIL_USE_TLS", False))
        use_ssl = _truthy(config.get("MAIL_USE_SSL", False))
        if use_tls and use_ssl:
            raise ConfigurationError(
                "MAIL_USE_TLS (STARTTLS, usually port 587) and MAIL_USE_SSL (TLS from"
                " the first byte, usually port 465) are both on: set only one."
            )
        try:
            port = int(config.get("MAIL_PORT") or (465 if use_ssl else 25))
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"MAIL_PORT must be a port number; got {config.get('MAIL_PORT')!r}."
            ) from None
        if not 0 < port < 65536:
            raise ConfigurationError(f"MAIL_PORT must be 1..65535; got {port}.")
        sender = config.get("MAIL_DEFAULT_SENDER")
        if not sender or "@" not in parseaddr(_address(sender))[1]:
            raise ConfigurationError(
                "The account mails need a From address: set MAIL_DEFAULT_SENDER"
                " (e.g. 'Example <no-reply@example.com>'); got"
                f" {sender!r}."
            )
        username = config.get("MAIL_USERNAME") or None
        password = config.get("MAIL_PASSWORD") or None
        if (username is None) != (password is None):
            raise ConfigurationError(
                "MAIL_USERNAME and MAIL_PASSWORD go together: set both (to log in"
                " to the mail server) or neither."
            )
        return cls(
            server=str(config.get("MAIL_SERVER") or "localhost"),
            port=port,
            use_tls=use_tls,
            use_ssl=use_ssl,
            username=username,
            password=password,
            default_sender=_address(sender),
            timeout=timeout,
        )


def email_message(message: Message, default_sender: str) -> EmailMessage:
    """``message`` as a standard-library ``multipart/alternative`` mail."""
    mail = EmailMessage()
    sender = message.sender or default_sender
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(message.recipients)
    mail["Date"] = formatdate(localtime=False)
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    mail["Message-ID"] = make_msgid(domain=domain)
    for name, value in message.extra_headers.items():
        mail[name] = value
    mail.set_content(message.body)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    return mail


class SMTPSender:
    """``smtp``: :mod:`smtplib`, one connection per mail."""

    name = "smtp"

    def __init__(self, config: SMTPConfig) -> None:
        self.config = config

    def connect(self) -> smtplib.SMTP:
        c = self.config
        host: smtplib.SMTP
        if c.use_ssl:
            context = ssl.create_default_context()
            host = smtplib.SMTP_SSL(
                c.server, c.port, timeout=c.timeout, context=context
            )
        else:
            host = smtplib.SMTP(c.server, c.port, timeout=c.timeout)
        try:
            if c.use_tls:
                host.starttls(context=ssl.create_default_context())
            if c.username is not None and c.password is not None:
                host.login(c.username, c.password)
        except BaseException:
            host.close()
            raise
        return host

    def __call__(self, message: Message) -> None:
        mail = email_message(message, self.config.default_sender or "")
        with self.connect() as host:
            # SMTPRecipientsRefused / SMTPDataError / SMTPSenderRefused on a
            # refusal: the caller logs and signals it.
            host.send_message(mail)


class FlaskMailSender:
    """``flask-mail``: the app's Flask-Mail, with a timeout."""

    name = "flask-mail"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(self, message: Message) -> None:
        import flask_mail

        state = current_app.extensions["mail"]
        timeout = self.timeout

        class Connection(flask_mail.Connection):
            # Flask-Mail's configure_host with a timeout (without one, a
            # server that never answers holds the outbox thread for ever)
            # and the server's certificate verified (Flask-Mail 0.10 lets
            # smtplib skip that).
            def configure_host(self) -> smtplib.SMTP:
                mail = self.mail
                host: smtplib.SMTP
                if mail.use_ssl:
                    host = smtplib.SMTP_SSL(
                        mail.server,
                        mail.port,
                        timeout=timeout,
                        context=ssl.create_default_context(),
                    )
                else:
                    host = smtplib.SMTP(mail.server, mail.port, timeout=timeout)
                try:
                    host.set_debuglevel(int(mail.debug))
                    if mail.use_tls:
                        host.starttls(context=ssl.create_default_context())
                    if mail.username and mail.password:
                        host.login(mail.username, mail.password)
                except BaseException:
                    host.close()  # Flask-Mail's would leave it open
                    raise
                return host

        mail = flask_mail.Message(
            subject=message.subject,
            recipients=list(message.recipients),
            body=message.body,
            html=message.html,
            sender=message.sender,
            extra_headers=dict(message.extra_headers) or None,
        )
        with Connection(state) as connection:
            mail.send(connection)


class FlaskMailmanSender:
    """``flask-mailman``: the app's Flask-Mailman."""

    name = "flask-mailman"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(self, message: Message) -> None:
        from flask_mailman import EmailMultiAlternatives

        mailman = current_app.extensions["mailman"]
        options: dict[str, Any] = {}
        if mailman.timeout is None and mailman.backend in ("smtp", None):
            options["timeout"] = self.timeout
        # Opened and closed here: Flask-Mailman 1.1's SMTP backend leaves a
        # connection it opened itself open when the server refuses the mail.
        with mailman.get_connection(**options) as connection:
            mail = EmailMultiAlternatives(
                subject=message.subject,
                body=message.body,
                from_email=message.sender,
                to=list(message.recipients),
                headers=dict(message.extra_headers),
                connection=connection,
            )
            if message.html is not None:
                mail.attach_alternative(message.html, "text/html")
            mail.send()


class LogSender:
    """``log``: development; the mail in the log, its links clickable."""

    name = "log"

    def __call__(self, message: Message) -> None:
        links = "".join(f"\n    {link}" for link in _LINK.findall(message.body))
        logger.info(
            "mail to %s (TOKENAUTH_MAIL_BACKEND='log': not sent): %s%s\n\n%s",
            ", ".join(message.recipients),
            message.subject,
            links,
            message.body,
        )


class CallableSender:
    """``callable``: the app's ``TOKENAUTH_MAIL_SENDER``."""

    name = "callable"

    def __init__(self, send: Callable[[Message], Any]) -> None:
        self.send = send

    def __call__(self, message: Message) -> None:
        self.send(message)


def extension_sender(app: App, timeout: float) -> Sender | None:
    """The Flask-Mail or Flask-Mailman sender, if the app has one of them
    now."""
    if "mail" in app.extensions:
        return FlaskMailSender(timeout)
    if "mailman" in app.extensions:
        return FlaskMailmanSender(timeout)
    return None


def choose(app: App, settings: Settings) -> Sender | None:
    """The sender of ``app`` for ``TOKENAUTH_MAIL_BACKEND``, checked now.

    ``None``: decided at the first mail, by :func:`resolve`.  That is
    ``auto`` when neither Flask-Mail nor Flask-Mailman is on the app yet
    (a factory may initialise them after this extension; they win when
    they are there by the first mail), and ``flask-mail`` /
    ``flask-mailman`` not yet initialised.  Every ``MAIL_*`` problem is
    still raised here, at start-up.
    """
    backend = settings.mail_backend
    timeout = settings.mail_timeout.total_seconds()
    if backend == "callable":
        return CallableSender(settings.mail_sender)
    if backend == "log":
        if not (app.debug or app.testing):
            logger.warning(
                "TOKENAUTH_MAIL_BACKEND='log' writes each mail, with its links and"
                " their tokens, to the log and sends nothing: for development only."
            )
        return LogSender()
    if backend == "smtp":
        return SMTPSender(SMTPConfig.from_config(app.config, timeout))
    if backend in ("flask-mail", "flask-mailman"):
        try:
            __import__(backend.replace("-", "_"))
        except ImportError:
            raise ConfigurationError(
                f"TOKENAUTH_MAIL_BACKEND={backend!r} needs the {backend} package:"
                f" pip install {backend}."
            ) from None
        return _extension(app, backend, timeout)
    # auto
    sender = extension_sender(app, timeout)
    if sender is None and app.config.get("MAIL_SERVER"):
        SMTPConfig.from_config(app.config, timeout)  # refused now, not at a send
    return sender


def _extension(app: App, backend: str, timeout: float) -> Sender | None:
    if backend == "flask-mail":
        return FlaskMailSender(timeout) if "mail" in app.extensions else None
    return FlaskMailmanSender(timeout) if "mailman" in app.extensions else None


def resolve(app: App, settings: Settings) -> Sender:
    """The sender decided at the first mail (see :func:`choose`); raises
    ``RuntimeError`` saying what is missing (logged by the caller)."""
    backend = settings.mail_backend
    timeout = settings.mail_timeout.total_seconds()
    if backend in ("flask-mail", "flask-mailman"):
        sender = _extension(app, backend, timeout)
        if sender is None:
            raise RuntimeError(
                f"TOKENAUTH_MAIL_BACKEND={backend!r}, and the app has no {backend}"
                " extension: call its init_app(app)."
            )
        return sender
    sender = choose(app, settings)
    if sender is not None:
        return sender
    if app.config.get("MAIL_SERVER"):
        return SMTPSender(SMTPConfig.from_config(app.config, timeout))
    raise RuntimeError(
        "No way to send mail: set MAIL_SERVER, TOKENAUTH_MAIL_BACKEND or"
        " TOKENAUTH_MAIL_SENDER."
    )
