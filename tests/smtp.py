"""A real SMTP server process for the tests (aiosmtpd), and how to read what
it received.

The server runs as ``python -m tests.smtp DIRECTORY`` in its own process, on
a port the kernel picks (written to ``DIRECTORY/port``).  Each message it
accepts is written to ``DIRECTORY/messages/<n>.eml`` (atomically: written
under another name, then renamed), with the envelope's recipients in an
``X-Envelope-To`` header prepended, so that the test process reads the mail
as it was delivered.

What the server does with the next connection is read from
``DIRECTORY/mode`` at that moment, so one server serves every test and a test
switches it (:meth:`SMTPServer.set_mode`):

``accept``
    delivers (the default);
``refuse-rcpt``
    ``550`` to every ``RCPT TO``;
``refuse-data``
    ``554`` after ``DATA`` (the message is refused whole);
``hang``
    accepts the TCP connection and never says a word (not even the
    greeting): a sender without a timeout waits for ever.

With ``--tls starttls`` the server offers (and requires) STARTTLS, with
``--tls ssl`` it speaks TLS from the first byte, and either offers ``AUTH``
(``LOGIN``, ``PLAIN``) for :data:`LOGIN` / :data:`PASSWORD`, noting the
login of a mail in an ``X-Authenticated-As`` header; either with a self-signed
certificate made by :func:`self_signed` (``DIRECTORY/cert.pem``); a test
makes its sender trust it with ``SSL_CERT_FILE`` (read by
:func:`ssl.create_default_context`).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODES = ("accept", "refuse-rcpt", "refuse-data", "hang")
#: The one account a TLS server accepts.
LOGIN = "mailer"
PASSWORD = "s3cret-for-tests"
START_TIMEOUT = 15.0


# -- the server process -------------------------------------------------------


class _Handler:
    """aiosmtpd handler: stores or refuses, as ``DIRECTORY/mode`` says."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def mode(self) -> str:
        try:
            return (self.directory / "mode").read_text().strip() or "accept"
        except OSError:
            return "accept"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.mode() == "refuse-rcpt":
            return "550 5.1.1 mailbox unavailable (refused by the test server)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.mode() == "refuse-data":
            return "554 5.7.1 message refused (by the test server)"
        self.count += 1
        messages = self.directory / "messages"
        name = f"{time.time_ns():020d}-{self.count:06d}"
        partial = messages / f".{name}.part"
        header = "X-Envelope-To: " + ", ".join(envelope.rcpt_tos) + "\r\n"
        if session.authenticated:
            header += f"X-Authenticated-As: {session.auth_data.login.decode()}\r\n"
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        partial.write_bytes(header.encode() + content)
        partial.rename(messages / f"{name}.eml")
        return "250 OK stored"


def serve(directory: Path, tls: str | None) -> None:
    """Run the server until the process is terminated."""
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    (directory / "messages").mkdir(parents=True, exist_ok=True)
    handler = _Handler(directory)
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "cert.pem", directory / "key.pem")

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (LOGIN, PASSWORD)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def protocol() -> asyncio.BaseProtocol:
        if handler.mode() == "hang":
            # Connected, silent: the sender's timeout is all that ends it.
            return asyncio.Protocol()
        if tls == "starttls":
            return SMTP(
                handler,
                tls_context=context,
                require_starttls=True,
                authenticator=authenticator,
            )
        if tls == "ssl":
            # TLS from the first byte: aiosmtpd does not see it, so it must
            # not insist on STARTTLS before AUTH.
            return SMTP(handler, authenticator=authenticator, auth_require_tls=False)
        return SMTP(handler)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            protocol, "127.0.0.1", 0, ssl=context if tls == "ssl" else None
        )
        port = server.sockets[0].getsockname()[1]
        written = directory / ".port.part"
        written.write_text(str(port))
        written.rename(directory / "port")
        await server.serve_forever()

    asyncio.run(main())


def self_signed(directory: Path, host: str = "127.0.0.1") -> Path:
    """A self-signed certificate for ``host`` (``cert.pem``, ``key.pem`` in
    ``directory``), made with ``cryptography``; the certificate's path."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path = directory / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


# -- the test side ------------------------------------------------------------


class SMTPServer:
    """The test's view of a running server process."""

    def __init__(
        self, directory: Path, process: subprocess.Popen[bytes], tls: str | None
    ) -> None:
        self.directory = directory
        self.process = process
        self.tls = tls
        self.port = int((directory / "port").read_text())
        self.host = "127.0.0.1"

    @property
    def cert(self) -> Path:
        """The self-signed certificate of a TLS server."""
        return self.directory / "cert.pem"

    def set_mode(self, mode: str) -> None:
        """What the server does with the next connection (see :data:`MODES`)."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} not in {MODES}")
        partial = self.directory / ".mode.part"
        partial.write_text(mode)
        partial.rename(self.directory / "mode")

    def _files(self) -> list[Path]:
        return sorted((self.directory / "messages").glob("*.eml"))

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """Every message delivered so far, oldest first; with ``to``, those
        whose envelope names that recipient (case-insensitive)."""
        found = []
        for path in self._files():
            message = email.message_from_bytes(
                path.read_bytes(), policy=email.policy.default
            )
            assert isinstance(message, EmailMessage)
            if to is None or to.lower() in recipients(message):
                found.append(message)
        return found

    def wait_for(
        self, to: str | None = None, count: int = 1, seconds: float = 15.0
    ) -> list[EmailMessage]:
        """Wait until ``count`` messages (to ``to``) have been delivered; those
        messages (at least ``count``).  Fails the test if they do not come."""
        from .servers import wait_for

        if not wait_for(lambda: len(self.messages(to)) >= count, seconds):
            import pytest

            got = [(m["To"], m["Subject"]) for m in self.messages()]
            pytest.fail(
                f"expected {count} message(s) to {to or 'anyone'} within"
                f" {seconds}s; the server has {got}"
            )
        return self.messages(to)

    def clear(self) -> None:
        """Forget the messages delivered so far."""
        for path in self._files():
            path.unlink(missing_ok=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return (self.directory / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


@contextmanager
def running_smtp_server(
    directory: Path, tls: str | None = None
) -> Iterator[SMTPServer]:
    """Start ``python -m tests.smtp`` in ``directory``, wait for its port,
    stop it (by its PID) on exit."""
    from .servers import ROOT, wait_for

    directory.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tests.smtp", str(directory)]
    if tls is not None:
        self_signed(directory)
        command += ["--tls", tls]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    with (directory / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        port_file = directory / "port"
        if (
            not wait_for(
                lambda: port_file.exists() or process.poll() is not None, START_TIMEOUT
            )
            or not port_file.exists()
        ):
            log_text = (directory / "server.log").read_text(errors="replace")
            raise RuntimeError(f"the SMTP server did not start:\n{log_text}")
        yield SMTPServer(directory, process, tls)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def recipients(message: EmailMessage) -> list[str]:
    """The envelope's recipients of a delivered message, lower-case."""
    return [
        address.strip().lower()
        for address in str(message.get("X-Envelope-To", "")).split(",")
        if address.strip()
    ]


def text_of(message: EmailMessage) -> str:
    """The plain-text part of ``message``."""
    part = message.get_body(("plain",))
    assert part is not None, f"no text/plain part in {message['Subject']!r}"
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    """The HTML part of ``message``."""
    part = message.get_body(("html",))
    assert part is not None, f"no text/html part in {message['Subject']!r}"
    return str(part.get_content())  # type: ignore[attr-defined]


_LINK = re.compile(r"https?://[^\s<>\"']+")


def link_in(message: EmailMessage) -> str:
    """The first http(s) link of the plain-text part."""
    found = _LINK.search(text_of(message))
    assert found, f"no link in {message['Subject']!r}:\n{text_of(message)}"
    return found.group(0).rstrip(".,;:)]")


def token_in(message: EmailMessage) -> str:
    """The ``token=`` of the first link's fragment (or, failing that, of its
    query)."""
    link = urlsplit(link_in(message))
    for part in (link.fragment, link.query):
        tokens = parse_qs(part).get("token")
        if tokens:
            return tokens[0]
    raise AssertionError(f"no token= in the link {link.geturl()!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--tls", choices=("starttls", "ssl"))
    arguments = parser.parse_args()
    serve(arguments.directory, arguments.tls)
