"""The account flows in headless Chromium: from the demo page's "forgot
password" to a session with the new password, following the link of the
mail the real SMTP server process received (``tests/smtp.py``); and the
verify page a registration mail's link opens.

The example app runs in a gunicorn process of its own (as in
``tests/test_browser.py``, whose browser and page helpers this reuses),
configured through the environment as a developer would: ``MAIL_SERVER`` and
``MAIL_PORT`` of the test's SMTP server, ``TOKENAUTH_LINK_BASE_URL`` of the
server itself, so the links in the mails open the demo page the server
serves.  Its port is chosen before it starts, for that base URL.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade

from . import test_browser as shared
from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, service_missing
from .servers import (
    START_TIMEOUT,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_for,
    wait_until_ready,
)
from .smtp import link_in, text_of, token_in
from .test_browser import LiveServer, open_demo, session, sign_up

with contextlib.suppress(ImportError):  # the browser fixture says what is missing
    from playwright.sync_api import expect

# test_browser's fixtures (Chromium, a context per test, screenshots, a
# fresh address), given this module's server.
browser = shared.browser
new_context = shared.new_context
context = shared.context
snap = shared.snap
email = shared.email

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_PASSWORD = "a brand new passphrase 42"


def free_port() -> int:
    """A port free now, for a server whose own URL must be known before it
    starts (the links it mails point at it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, _smtp_process: Any
) -> Iterator[LiveServer]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed: pip install -e '.[test]'")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("browser-account")
    database = f"sqlite:///{workdir / 'tokenauth.sqlite3'}"
    engine = make_engine(database, {})
    upgrade(engine)
    engine.dispose()
    access_log = workdir / "access.log"
    port = free_port()
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=database,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_RATELIMIT_ENABLED="false",
        # The example reads these as Flask-Mail does (strings, from the
        # environment); the account flows are on by the example's defaults.
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(_smtp_process.port),
        MAIL_DEFAULT_SENDER="Demo <no-reply@demo.test>",
        TOKENAUTH_LINK_BASE_URL=f"http://127.0.0.1:{port}",
    )
    options = [o for o in gunicorn_options(gunicorn) if not o.startswith("--bind=")]
    command = [
        gunicorn,
        *options,
        f"--bind=127.0.0.1:{port}",
        f"--access-logfile={access_log}",
        "tests.browser_app:create_app()",
    ]
    process = start_server("browser-account", command, env, workdir)
    try:
        wait_until_ready([process], time.monotonic() + START_TIMEOUT)
        yield LiveServer(process.url, access_log)
    finally:
        stop_server(process)


def mail_with_link(
    smtp_server: Any, to: str, path: str, count: int = 1
) -> EmailMessage:
    """The ``count``-th mail to ``to`` whose link opens ``path`` (other
    mails, a registration's verification say, may come before or after)."""

    def found() -> list[EmailMessage]:
        return [m for m in smtp_server.messages(to) if f"{path}#" in link_in(m)]

    if not wait_for(lambda: len(found()) >= count):
        got = [m["Subject"] for m in smtp_server.messages(to)]
        pytest.fail(f"no mail #{count} to {to} with a link to {path}; got {got}")
    return found()[count - 1]


def open_link(context: Any, link: str) -> Any:
    """The page the link opens, once its script has taken the token."""
    page = context.new_page()
    response = page.goto(link)
    assert response is not None and response.ok
    # Fragment-only: the server is asked for the page, never for the token.
    assert response.headers["referrer-policy"] == "no-referrer"
    page.wait_for_function("() => window.auth !== undefined")
    page.evaluate("() => auth.ready")
    return page


def test_forgot_password_to_a_session_with_the_new_password(
    context: Any,
    new_context: Any,
    server: LiveServer,
    smtp_server: Any,
    email: str,
    snap: Any,
) -> None:
    # An account, and a session of it on another device.
    page = open_demo(context)
    sign_up(page, email)
    page.click("#logout")
    expect(page.locator("#status")).to_have_text("Signed out")
    phone = open_demo(new_context())
    sign_up(phone, email, button="#login")

    # "Forgot password" with the address in the form.
    server.mark()
    page.fill("#email", email)
    page.click("#forgot")
    expect(page.locator("#out")).to_contain_text("forgot password")
    assert server.wait_for("POST", "/api/auth/forgot-password", 1) == [202]
    snap(page, "1-forgot")

    # The mail, as the SMTP server received it; its link opens this server.
    message = mail_with_link(smtp_server, email, "/reset-password")
    link = link_in(message)
    token = token_in(message)
    assert link.startswith(f"{server.url}/reset-password#token=")

    reset = open_link(context, link)
    # The token is out of the address bar (and the history) at once.
    assert reset.evaluate("() => location.href") == f"{server.url}/reset-password"
    expect(reset.locator("#link-title")).to_have_text("Choose a new password")
    snap(reset, "2-reset-page")
    reset.fill("#new-password", NEW_PASSWORD)
    reset.click("#link-submit")
    expect(reset.locator("#link-result")).to_have_attribute("data-state", "done")
    snap(reset, "3-reset-done")

    # The old password is refused, the new one starts a session.
    reset.fill("#email", email)
    reset.fill("#password", PASSWORD)
    reset.click("#login")
    expect(reset.locator("#out")).to_contain_text("401 INVALID_CREDENTIALS")
    reset.fill("#password", NEW_PASSWORD)
    reset.click("#login")
    expect(reset.locator("#status")).to_contain_text(f"Signed in as {email}")
    reset.click("#profile")
    expect(reset.locator("#out")).to_contain_text("profile: 200")
    snap(reset, "4-signed-in")

    # The link worked once; the session of the other device ended with it.
    again = open_link(context, link)
    again.fill("#new-password", "yet another passphrase 43")
    again.click("#link-submit")
    expect(again.locator("#link-result")).to_have_attribute("data-state", "error")
    expect(again.locator("#out")).to_contain_text("LINK_INVALID")
    assert phone.evaluate("() => auth.refresh()") is False
    expect(phone.locator("#status")).to_have_text("Signed out")

    # The server saw the token in a JSON body only, never in a URL.
    assert server.wait_for("POST", "/api/auth/reset-password", 2) == [200, 400]
    assert token not in server.access_log.read_text()


def test_verify_link_of_the_registration_mail(
    context: Any, server: LiveServer, smtp_server: Any, email: str, snap: Any
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    expect(page.locator("#verified")).to_have_text(
        "Address not verified yet: see the mail we sent."
    )
    claims = session(page)["claims"]  # type: ignore[index]
    assert claims["email_verified"] is False

    link = link_in(mail_with_link(smtp_server, email, "/verify-email"))
    verify = open_link(context, link)  # the same browser: signed in there too
    assert verify.evaluate("() => location.hash") == ""
    expect(verify.locator("#status")).to_have_attribute("data-state", "signed-in")
    verify.click("#link-submit")
    expect(verify.locator("#link-result")).to_have_text("Your address is verified.")
    # The page's session refreshed and carries the new claim.
    expect(verify.locator("#verified")).to_have_text("Address verified.")
    assert session(verify)["claims"]["email_verified"] is True  # type: ignore[index]
    snap(verify, "verified")


def test_sign_in_by_email_with_the_code_then_with_the_link(
    context: Any, server: LiveServer, smtp_server: Any, email: str, snap: Any
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    page.click("#logout")
    expect(page.locator("#status")).to_have_text("Signed out")

    # The code form, on the page that asked.
    page.fill("#email", email)
    page.click("#email-login")
    expect(page.locator("#code-form")).to_be_visible()
    mail = mail_with_link(smtp_server, email, "/email-login")
    code = re.search(r"^\s*(\d{6})\s*$", text_of(mail), re.MULTILINE)
    assert code, text_of(mail)
    page.fill("#code", code.group(1))
    page.click("#code-submit")
    expect(page.locator("#status")).to_contain_text(f"Signed in as {email}")
    expect(page.locator("#code-form")).to_be_hidden()
    snap(page, "1-by-code")
    page.click("#logout")

    # The link of a second mail, opened in its own tab.
    page.fill("#email", email)
    page.click("#email-login")
    link = link_in(mail_with_link(smtp_server, email, "/email-login", count=2))
    tab = open_link(context, link)
    expect(tab.locator("#link-title")).to_have_text("Sign in by email")
    tab.click("#link-submit")
    expect(tab.locator("#link-result")).to_have_text("You are signed in.")
    expect(tab.locator("#status")).to_contain_text(f"Signed in as {email}")
    # One browser: the tab that asked learns of the session too.
    expect(page.locator("#status")).to_contain_text(f"Signed in as {email}")
    snap(tab, "2-by-link")


def test_change_the_address_then_cancel_it(
    context: Any, server: LiveServer, smtp_server: Any, email: str, snap: Any
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    new = f"new-{email}"
    page.fill("#new-email", new)
    page.fill("#change-password", PASSWORD)
    page.click("#change-email-submit")
    expect(page.locator("#out")).to_contain_text("change address")

    # The confirm link to the new address; the page follows the change.
    confirm = open_link(
        context, link_in(mail_with_link(smtp_server, new, "/change-email/confirm"))
    )
    confirm.click("#link-submit")
    expect(confirm.locator("#link-result")).to_have_text("Your address is changed.")
    expect(confirm.locator("#status")).to_contain_text(f"Signed in as {new}")
    expect(page.locator("#status")).to_contain_text(f"Signed in as {new}")
    snap(confirm, "1-confirmed")

    # The cancel link of the notice to the old address: the old address
    # back, every session ended (both tabs signed out).
    cancel = open_link(
        context, link_in(mail_with_link(smtp_server, email, "/change-email/cancel"))
    )
    cancel.click("#link-submit")
    expect(cancel.locator("#link-result")).to_have_attribute("data-state", "done")
    expect(cancel.locator("#status")).to_have_text("Signed out")
    expect(page.locator("#status")).to_have_text("Signed out")
    snap(cancel, "2-cancelled")
    cancel.fill("#email", email)
    cancel.fill("#password", PASSWORD)
    cancel.click("#login")
    expect(cancel.locator("#status")).to_contain_text(f"Signed in as {email}")
