"""Passkeys in headless Chromium, with Chrome's virtual authenticator
(DevTools Protocol ``WebAuthn.addVirtualAuthenticator`` through Playwright's
CDP session: CTAP2, internal transport, resident keys, user verification):
register, sign in without a password, a passkey as the second factor after
a password, a cloned authenticator refused, a page of another origin
refused, and a signature for another relying party refused.

The server is ``tests/passkeys_app.py`` in gunicorn (two workers: a
challenge issued by one is spent by the other, nothing is kept in a
process), listening on two ports
of ``localhost``; only the first is in ``TOKENAUTH_WEBAUTHN_ORIGINS`` (RP id
``localhost``), so the second is a page of another origin whose ceremonies
the browser runs (the RP id is its host) and the server must refuse.  The
page's script converts the options and credentials to and from base64url
itself (``client.js`` is tested on its own).

Playwright drives Debian's Chromium (``make browser``), as
``tests/test_browser.py`` does.  SQLite only: the database is not what this
tests (``tests/test_passkeys.py`` runs the HTTP paths on both).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade

from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, service_missing
from .servers import (
    START_TIMEOUT,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)
from .test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: A CTAP2 platform authenticator that keeps discoverable credentials and
#: verifies its user, touched as soon as asked.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    #: The origin the server accepts, and one it does not (same RP id).
    url: str
    other_url: str
    #: An origin the server accepts, under the RP id: its pages may ask the
    #: authenticator for their own host as RP id, which the server refuses.
    sub_url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed: pip install -e '.[test]'")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("passkeys-browser")
    database = f"sqlite:///{workdir / 'tokenauth.sqlite3'}"
    engine = make_engine(database, {})
    upgrade(engine)
    engine.dispose()
    port, other = free_port(), free_port()
    url, other_url = f"http://localhost:{port}", f"http://localhost:{other}"
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=database,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_RATELIMIT_ENABLED="false",
        TOKENAUTH_PASSKEYS_ENABLED="true",
        TOKENAUTH_WEBAUTHN_RP_ID="localhost",
        TOKENAUTH_WEBAUTHN_ORIGINS=f"{url}, http://app.localhost:{port}",
    )
    options = [
        o
        for o in gunicorn_options(gunicorn, threads=4, workers=2)
        if not o.startswith("--bind")
    ]
    command = [
        gunicorn,
        *options,
        f"--bind=127.0.0.1:{port}",
        f"--bind=127.0.0.1:{other}",
        "tests.passkeys_app:create_app()",
    ]
    server = start_server("passkeys", command, env, workdir)
    try:
        wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        yield Site(url, other_url, f"http://app.localhost:{port}")
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if sync_playwright is None:
        service_missing("playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"Chromium not found at {CHROMIUM}: run `make browser`")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
            )
        except PlaywrightError as e:
            service_missing(f"Chromium at {CHROMIUM} did not start: {e}")
        yield browser
        browser.close()


class Page:
    """A page of the site with a virtual authenticator of its own."""

    def __init__(self, browser: Any, url: str, **authenticator: Any) -> None:
        self.context = browser.new_context()
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.page.goto(url + "/")
        self.page.wait_for_function("() => window.passkeys !== undefined")
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        self.authenticator = self.add_authenticator(**authenticator)

    def add_authenticator(self, **options: Any) -> str:
        answer = self.cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {"options": {**AUTHENTICATOR, **options}},
        )
        return str(answer["authenticatorId"])

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator}
        )
        return list(answer["credentials"])

    def run(self, script: str, *args: Any) -> Any:
        return self.page.evaluate(script, list(args))

    def call(self, method: str, path: str, body: Any = None, token: str = "") -> Any:
        return self.run(
            "([m, p, b, t]) => passkeys.call(m, p, b ?? undefined, t)",
            method,
            path,
            body,
            token,
        )

    def sign_up(self, email: str) -> str:
        answer = self.call("POST", "/register", {"email": email, "password": PASSWORD})
        assert answer["status"] == 201, answer
        return str(answer["body"]["accessToken"])

    def register_passkey(self, token: str) -> dict[str, Any]:
        answer = self.run("([t]) => passkeys.register(t, 'Chromium')", token)
        assert answer["status"] == 201, answer
        return dict(answer["body"]["passkey"])

    def login(self) -> Any:
        return self.run("() => passkeys.login()")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def pages(browser: Any) -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.close()


def open_page(pages: list[Page], browser: Any, url: str, **authenticator: Any) -> Page:
    page = Page(browser, url, **authenticator)
    pages.append(page)
    return page


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(
        token, ACCESS_SECRET, algorithms=["HS256"], options={"verify_aud": False}
    )


@pytest.fixture
def email() -> str:
    return f"passkey-{uuid.uuid4().hex[:10]}@example.com"


@pytest.mark.parametrize(
    ("flags", "amr"),
    [
        ({}, "hwk"),
        ({"defaultBackupEligibility": True, "defaultBackupState": True}, "swk"),
    ],
)
def test_register_then_sign_in_without_a_password(
    browser: Any,
    site: Site,
    pages: list[Page],
    email: str,
    flags: dict[str, Any],
    amr: str,
) -> None:
    page = open_page(pages, browser, site.url, **flags)
    token = page.sign_up(email)
    passkey = page.register_passkey(token)
    assert passkey["name"] == "Chromium"
    assert passkey["backedUp"] is (amr == "swk")
    # A discoverable credential, stored on the authenticator with a handle
    # that is not the address.
    (stored,) = page.credentials()
    assert stored["isResidentCredential"] is True
    assert (
        stored["credentialId"].rstrip("=").replace("+", "-").replace("/", "_")
        == passkey["id"]
    )
    assert email.encode() not in (stored.get("userHandle") or "").encode()

    # A new visit: no cookie, no password, no name typed.
    page.context.clear_cookies()
    answer = page.login()
    assert answer["status"] == 200, answer
    assert answer["body"]["user"]["email"] == email
    access = claims(answer["body"]["accessToken"])
    assert access["amr"] == [amr, "user"]
    assert access["aal"] == 2
    assert access["sub"] == claims(token)["sub"]
    # The session is a real one: the refresh cookie works and keeps the level.
    refreshed = page.call("POST", "/refresh")
    assert refreshed["status"] == 200, refreshed
    assert claims(refreshed["body"]["accessToken"])["aal"] == 2
    listed = page.call("GET", "/passkeys", token=refreshed["body"]["accessToken"])
    assert listed["body"]["passkeys"][0]["lastUsedAt"] is not None


def test_a_passkey_as_the_second_factor_after_a_password(
    browser: Any, site: Site, pages: list[Page], email: str
) -> None:
    page = open_page(pages, browser, site.url)
    token = page.sign_up(email)
    page.register_passkey(token)
    page.context.clear_cookies()

    login = page.call("POST", "/login", {"email": email, "password": PASSWORD})
    assert login["status"] == 200, login
    pending = login["body"]["accessToken"]
    assert claims(pending)["aal"] == 1
    refused = page.call("GET", "/sessions", token=pending)
    assert (refused["status"], refused["body"]["code"]) == (401, "MFA_REQUIRED")

    answer = page.run("([t]) => passkeys.verify(t)", pending)
    assert answer["status"] == 200, answer
    upgraded = claims(answer["body"]["accessToken"])
    assert upgraded["sid"] == claims(pending)["sid"]
    assert upgraded["aal"] == 2
    assert {"pwd", "hwk", "mfa"} <= set(upgraded["amr"])
    sessions = page.call("GET", "/sessions", token=answer["body"]["accessToken"])
    assert sessions["status"] == 200, sessions


def test_a_cloned_authenticator_is_refused(
    browser: Any, site: Site, pages: list[Page], email: str
) -> None:
    page = open_page(pages, browser, site.url)
    page.register_passkey(page.sign_up(email))
    for _ in range(2):
        assert page.login()["status"] == 200
    (credential,) = page.credentials()
    assert credential["signCount"] >= 2

    # The key, extracted while the counter was lower, in another
    # authenticator: its next signature counts from there.
    page.cdp.send(
        "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": page.authenticator}
    )
    page.authenticator = page.add_authenticator()
    page.cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": page.authenticator,
            "credential": {**credential, "signCount": credential["signCount"] - 2},
        },
    )
    refused = page.login()
    assert (refused["status"], refused["body"]["code"]) == (401, "PASSKEY_INVALID")

    # The same key with a counter past the stored one: accepted, so it was
    # the counter that was refused.
    page.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": page.authenticator})
    page.cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": page.authenticator,
            "credential": {**credential, "signCount": credential["signCount"] + 5},
        },
    )
    assert page.login()["status"] == 200


def test_a_page_of_another_origin_is_refused(
    browser: Any, site: Site, pages: list[Page], email: str
) -> None:
    page = open_page(pages, browser, site.url)
    page.register_passkey(page.sign_up(email))
    (credential,) = page.credentials()

    # The same browser's authenticator, on a page the server does not list
    # (the browser runs the ceremony there: the RP id is its host).
    elsewhere = open_page(pages, browser, site.other_url)
    elsewhere.cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": elsewhere.authenticator, "credential": credential},
    )
    refused = elsewhere.login()
    assert (refused["status"], refused["body"]["code"]) == (401, "PASSKEY_INVALID")
    registering = elsewhere.run(
        "([t]) => passkeys.register(t, 'x')", elsewhere.sign_up("other-" + email)
    )
    assert (registering["status"], registering["body"]["code"]) == (
        400,
        "PASSKEY_REJECTED",
    )
    # On the listed origin, the same credential signs in.
    assert page.login()["status"] == 200


def test_a_signature_for_another_relying_party_is_refused(
    browser: Any, site: Site, pages: list[Page], email: str
) -> None:
    page = open_page(pages, browser, site.url)
    token = page.sign_up(email)
    page.register_passkey(token)
    (credential,) = page.credentials()

    # A page of an accepted origin (app.localhost) whose ceremonies name its
    # own host as RP id: the browser lets it, the server expects "localhost".
    sub = open_page(pages, browser, site.sub_url)
    sub.cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": sub.authenticator,
            "credential": {**credential, "rpId": "app.localhost"},
        },
    )
    refused = sub.run("() => passkeys.login('app.localhost')")
    assert (refused["status"], refused["body"]["code"]) == (401, "PASSKEY_INVALID")
    registering = sub.run(
        "([t]) => passkeys.register(t, 'x', 'app.localhost')",
        sub.sign_up("sub-" + email),
    )
    assert (registering["status"], registering["body"]["code"]) == (
        400,
        "PASSKEY_REJECTED",
    )
    # The same key for the right RP id signs in: the RP id was refused.
    assert page.login()["status"] == 200
