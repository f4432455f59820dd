"""The tutorial's browser client, in headless Chromium, against the example app.

``examples/static/index.html`` carries the tutorial's ``apiRequest`` (its
``client/api.ts`` as plain JavaScript).  Here a real browser loads it from the
example app served over real HTTP on 127.0.0.1 and shows that our API serves
that client unchanged: the refresh cookie is stored with the attributes we
promise (httpOnly, ``SameSite=Strict``, ``Path=/api/auth`` and, by default,
``Secure``), an expired access token is refreshed transparently and the
cookie rotated, and logout ends the session for good.

Playwright drives Debian's Chromium (``make browser``); it never downloads a
browser of its own.  Without either the test is skipped locally and fails in
CI (``service_missing``).  SQLite only: the database is not what this tests.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_tokenauth._migrate import upgrade
from flask_tokenauth.extension import get_state

from .conftest import PASSWORD, base_config, service_missing

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = pytest.mark.browser

EXAMPLE_APP = Path(__file__).resolve().parent.parent / "examples" / "app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Every wait of the test is bounded by this (milliseconds).
TIMEOUT_MS = 10_000
#: Short enough to wait out, long enough that the first profile load (well
#: under a second after registering) is made with a live token.
ACCESS_EXPIRES_S = 3
COOKIE = "refresh_token"
EMAIL = "browser@example.com"


def load_example_app() -> ModuleType:
    """``examples/app.py``, which is a script, not a package module."""
    name = "tokenauth_example_app"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Flask looks its root path up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if sync_playwright is None:
        service_missing("playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(
            f"Chromium not found at {CHROMIUM}: run `make browser`"
            " (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
            )
        except PlaywrightError as e:
            service_missing(f"Chromium at {CHROMIUM} did not start: {e}")
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    """The example app on a migrated SQLite file, served on 127.0.0.1:<free
    port> by a real HTTP server thread; yields the app and its base URL."""
    tmp = tmp_path_factory.mktemp("browser")
    config = base_config(
        TOKENAUTH_DATABASE_URL=f"sqlite:///{tmp / 'tokenauth.sqlite3'}",
        TOKENAUTH_ACCESS_EXPIRES=f"{ACCESS_EXPIRES_S}s",
    )
    example = load_example_app()
    with pytest.MonkeyPatch.context() as mp:
        # create_app reads ./.env and the environment; keep a developer's
        # .env (e.g. TOKENAUTH_COOKIE_SECURE=false) and CI's TOKENAUTH_*
        # variables out, so the cookie defaults are what is tested.
        mp.chdir(tmp)
        for name in list(os.environ):
            if name.startswith("TOKENAUTH_") or name in example.TUTORIAL_NAMES:
                mp.delenv(name)
        app: Flask = example.create_app(config)
    engine = get_state(app).db.engine
    upgrade(engine)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live_app")
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        engine.dispose()
        sys.modules.pop("tokenauth_example_app", None)


def jwt_exp(token: str) -> int:
    """The ``exp`` claim of a JWT, read without verifying it."""
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    return int(json.loads(base64.urlsafe_b64decode(padded))["exp"])


def test_tutorial_client_in_chromium(browser: Any, live_app: tuple[Flask, str]) -> None:
    _, base_url = live_app
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        run_client(context, base_url)
    finally:
        context.close()


def refresh_cookies(context: Any) -> list[dict[str, Any]]:
    return [c for c in context.cookies() if c["name"] == COOKIE]


def run_client(context: Any, base_url: str) -> None:
    page = context.new_page()
    out = page.locator("#out")
    traffic: list[tuple[str, str, int]] = []
    page.on(
        "response",
        lambda r: traffic.append((r.request.method, urlsplit(r.url).path, r.status)),
    )

    def api_calls() -> list[tuple[str, str, int]]:
        return [t for t in traffic if t[1].startswith("/api/")]

    def profile_done(response: Any) -> bool:
        return urlsplit(response.url).path == "/api/profile" and response.status != 401

    page.goto("/")
    expect(page).to_have_title("flask_tokenauth example")

    # -- Register: the access token comes back in the body, the refresh token
    # as a cookie with the promised attributes, Secure included (the default).
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    with page.expect_response("**/api/auth/register") as registered:
        page.click("#register")
    assert registered.value.status == 201
    access_token = registered.value.json()["accessToken"]
    expect(out).to_contain_text("register: 201", timeout=TIMEOUT_MS)

    [cookie] = refresh_cookies(context)
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True, "Chromium kept the cookie but not as Secure"
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/auth"
    assert cookie["domain"] == "127.0.0.1"
    assert cookie["expires"] > time.time() + 6 * 24 * 3600  # 7 days by default
    first_value = cookie["value"]

    # The token is kept in memory only, and the page's script cannot read the
    # cookie: neither here nor on a document under /api/auth, the path a
    # script could see it from if it were not httpOnly.
    assert page.evaluate("[localStorage.length, sessionStorage.length]") == [0, 0]
    assert COOKIE not in page.evaluate("document.cookie")
    probe = context.new_page()
    probe.goto("/api/auth/not-a-route")
    assert probe.evaluate("document.cookie") == ""
    probe.close()

    # -- Load profile with the live token: no refresh needed.
    traffic.clear()
    with page.expect_response(profile_done) as loaded:
        page.click("#profile")
    assert loaded.value.status == 200
    expect(out).to_contain_text("profile: 200", timeout=TIMEOUT_MS)
    expect(out).to_contain_text(EMAIL, timeout=TIMEOUT_MS)
    assert api_calls() == [("GET", "/api/profile", 200)]
    # The cookie's path keeps it off every other route.
    assert loaded.value.request.header_value("cookie") is None

    # -- Let the access token expire; "Load profile" still succeeds, because
    # the client refreshes on TOKEN_EXPIRED and retries.
    time.sleep(max(0.0, jwt_exp(access_token) - time.time()) + 0.2)
    traffic.clear()
    with (
        page.expect_response("**/api/auth/refresh") as refreshed,
        page.expect_response(profile_done) as loaded,
    ):
        page.click("#profile")
    assert loaded.value.status == 200
    expect(out).to_contain_text("profile: 200", timeout=TIMEOUT_MS)
    expect(out).to_contain_text(EMAIL, timeout=TIMEOUT_MS)
    # The Secure cookie went out over plain http to 127.0.0.1.
    assert refreshed.value.request.header_value("cookie") == f"{COOKIE}={first_value}"
    assert api_calls() == [
        ("GET", "/api/profile", 401),
        ("POST", "/api/auth/refresh", 200),
        ("GET", "/api/profile", 200),
    ]
    assert page.url == base_url + "/"  # no redirect to /login

    # The refresh rotated the cookie, keeping its attributes.
    [rotated] = refresh_cookies(context)
    assert rotated["value"] != first_value
    assert (rotated["httpOnly"], rotated["secure"], rotated["sameSite"]) == (
        True,
        True,
        "Strict",
    )
    assert rotated["path"] == "/api/auth"

    # -- Logout clears the cookie, and no refresh works afterwards.
    with page.expect_response("**/api/auth/logout") as logged_out:
        page.click("#logout")
    assert logged_out.value.status == 200
    expect(out).to_contain_text("logout: 200", timeout=TIMEOUT_MS)
    assert refresh_cookies(context) == []

    refresh = """async () => {
        const res = await fetch('/api/auth/refresh',
                                {method: 'POST', credentials: 'include'});
        return [res.status, (await res.json()).code];
    }"""
    assert page.evaluate(refresh) == [401, "REFRESH_TOKEN_MISSING"]
    # The last token was revoked on the server too, not just forgotten here.
    context.add_cookies([{**rotated, "sameSite": "Strict"}])
    assert page.evaluate(refresh) == [401, "REFRESH_TOKEN_REVOKED"]
    assert refresh_cookies(context) == []  # the 401 cleared it again

    # The page forgot its access token as well.
    with page.expect_response("**/api/profile") as refused:
        page.click("#profile")
    assert refused.value.status == 401
    expect(out).to_contain_text("profile: 401", timeout=TIMEOUT_MS)
