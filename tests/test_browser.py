"""The browser client (``client.js``) and the demo page, in headless Chromium,
against the example app in a gunicorn process of its own.

Each test opens a fresh browser context (its own cookie jar) on the demo page
at ``/`` and drives it as a user would, or through ``window.auth``, the
page's client.  What the server saw is read from gunicorn's access log, so
"exactly one refresh" is counted where it matters.  Access tokens live
``ACCESS_EXPIRES_S`` seconds; the server holds every ``/refresh`` for
``REFRESH_DELAY_S`` (see ``tests/browser_app.py``) so that uncoordinated
refreshes overlap every time, not by luck.

The tutorial's own client (``/tutorial``) is driven too: it still works
against our API, and it shows the race our client exists to avoid.

Screenshots of the demo at key steps go to ``$TEST_ARTIFACTS/browser/``
(default ``test-artifacts/browser/`` in the checkout).

Playwright drives Debian's Chromium (``make browser``); it never downloads a
browser of its own.  Without either the tests skip locally and fail in CI
(``service_missing``).  SQLite only: the database is not what this tests.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade

from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, service_missing
from .servers import (
    ROOT,
    START_TIMEOUT,
    Server,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
#: Every wait of the tests is bounded by this (milliseconds).
TIMEOUT_MS = 10_000
#: Short enough to wait out, long enough for a step or two with a live token.
ACCESS_EXPIRES_S = 3
REFRESH_DELAY_S = 0.3
COOKIE = "refresh_token"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
#: One line of gunicorn's access log: method, path, status.
ACCESS_LINE = re.compile(r'"([A-Z]+) ([^ ?"]+)[^"]*" (\d{3}) ')
#: In the page: hide the Web Locks API, so the client falls back to its
#: BroadcastChannel lock.
WITHOUT_WEB_LOCKS = (
    "Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined});"
)


# -- The server ----------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    access_log: Path
    _mark: int = 0

    def lines(self) -> list[tuple[str, str, int]]:
        text = self.access_log.read_text(errors="replace")
        return [
            (m.group(1), m.group(2), int(m.group(3)))
            for m in map(ACCESS_LINE.search, text.splitlines())
            if m
        ]

    def mark(self) -> None:
        """Count only the requests made from now on."""
        self._mark = len(self.lines())

    def requests(self) -> list[tuple[str, str, int]]:
        return self.lines()[self._mark :]

    def hits(self, method: str, path: str) -> list[int]:
        """The statuses of ``method path`` since the mark, in order."""
        return [s for m, p, s in self.requests() if (m, p) == (method, path)]

    def wait_for(self, method: str, path: str, count: int) -> list[int]:
        """Wait until ``count`` such requests are logged (gunicorn logs a
        request after answering it), then a moment more for stragglers."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(self.hits(method, path)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{count} x {method} {path} not seen: {self.requests()}")
            time.sleep(0.05)
        time.sleep(REFRESH_DELAY_S + 0.2)
        return self.hits(method, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed: pip install -e '.[test]'")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("browser")
    database = f"sqlite:///{workdir / 'tokenauth.sqlite3'}"
    engine = make_engine(database, {})
    upgrade(engine)
    engine.dispose()
    access_log = workdir / "access.log"
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=database,
        TOKENAUTH_ACCESS_EXPIRES=f"{ACCESS_EXPIRES_S}s",
        TOKENAUTH_BCRYPT_ROUNDS="4",
        # Rate limits are tested elsewhere; here they would only add waits.
        TOKENAUTH_RATELIMIT_ENABLED="false",
        BROWSER_TEST_REFRESH_DELAY=str(REFRESH_DELAY_S),
    )
    command = [
        gunicorn,
        # 12 threads: the 10 parallel requests are served in parallel.
        *gunicorn_options(gunicorn, threads=12),
        f"--access-logfile={access_log}",
        "tests.browser_app:create_app()",
    ]
    process: Server = start_server("browser", command, env, workdir)
    try:
        wait_until_ready([process], time.monotonic() + START_TIMEOUT)
        yield LiveServer(process.url, access_log)
    finally:
        stop_server(process)


# -- The browser ---------------------------------------------------------------


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


@pytest.fixture
def new_context(browser: Any, server: LiveServer) -> Iterator[Callable[..., Any]]:
    """``new_context(init_script=None)``: a browser context of its own (its own
    cookies) on the server; closed after the test."""
    contexts: list[Any] = []

    def factory(init_script: str | None = None) -> Any:
        context = browser.new_context(base_url=server.url)
        context.set_default_timeout(TIMEOUT_MS)
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context: Callable[..., Any]) -> Any:
    return new_context()


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Callable[[Any, str], None]:
    """``snap(page, step)``: save a screenshot as a test artifact."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)

    def save(page: Any, step: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}--{step}.png"), full_page=True)

    return save


@pytest.fixture
def email() -> str:
    return f"browser-{uuid.uuid4().hex[:10]}@example.com"


# -- Driving the demo page -------------------------------------------------------


def open_demo(context: Any, query: str = "refreshAhead=off") -> Any:
    """The demo page, once its client has settled its restore attempt."""
    page = context.new_page()
    page.goto(f"/?{query}")
    page.wait_for_function("() => window.auth !== undefined")
    page.evaluate("() => auth.ready")
    return page


def sign_up(page: Any, email: str, button: str = "#register") -> None:
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click(button)
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")


def session(page: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.evaluate("() => auth.session")
    return result


def wait_for_expiry(*pages: Any) -> None:
    """Sleep until the access token of every page has expired (by the client's
    own estimate, which is never earlier than the server's ``exp``)."""
    ends = [s["expiresAt"] for s in map(session, pages) if s]
    assert ends, "no page has a session"
    now_ms = pages[0].evaluate("() => Date.now()")
    time.sleep(max(0.0, (max(ends) - now_ms) / 1000) + 0.2)


def fire(page: Any, script: str) -> None:
    """Start ``script`` (an expression giving a promise) in the page without
    waiting for it; ``settle(page)`` gets its result."""
    page.evaluate(f"() => {{ window.__pending = {script}; }}")


def settle(page: Any) -> Any:
    return page.evaluate("() => window.__pending")


def fire_together(pages: list[Any], script: str) -> None:
    """Start ``script`` in every page at the same moment: the other pages
    wait for a message on a BroadcastChannel (same origin) that the first
    page sends as it starts, so no round trip of the test separates them."""
    first, *others = pages
    for page in others:
        fire(
            page,
            "new Promise((go) => { const c = new BroadcastChannel('test-start');"
            f" c.onmessage = () => {{ c.close(); go(); }}; }}).then(() => {script})",
        )
    fire(first, f"(new BroadcastChannel('test-start').postMessage('go'), {script})")


PROFILE_STATUS = "auth.fetch('/api/profile').then((r) => r.status)"


def refresh_cookies(context: Any) -> list[dict[str, Any]]:
    return [c for c in context.cookies() if c["name"] == COOKIE]


# -- The tests -------------------------------------------------------------------


def test_register_login_and_profile(
    context: Any, server: LiveServer, email: str, snap: Any
) -> None:
    page = open_demo(context)
    # No cookie yet: the restore attempt ends signed out, without a logout.
    expect(page.locator("#status")).to_have_text("Signed out")
    expect(page.locator("#out")).to_have_text("")
    snap(page, "1-signed-out")

    sign_up(page, email)
    expect(page.locator("#status")).to_contain_text(f"Signed in as {email}")
    page.click("#profile")
    expect(page.locator("#out")).to_contain_text("profile: 200")
    expect(page.locator("#out")).to_contain_text(email)
    snap(page, "2-profile")

    # Log out, then in again with the login form.
    page.click("#logout")
    expect(page.locator("#status")).to_have_text("Signed out")
    server.mark()
    sign_up(page, email, button="#login")
    page.click("#profile")
    expect(page.locator("#out")).to_contain_text("profile: 200")
    assert server.wait_for("POST", "/api/auth/login", 1) == [200]
    assert server.wait_for("GET", "/api/profile", 1) == [200]


def test_tokens_stay_out_of_reach_of_scripts(
    context: Any, server: LiveServer, email: str
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    token = page.evaluate("() => auth.getAccessToken()")
    assert token and token.count(".") == 2

    # The access token is in no storage a script (or an XSS) could read later.
    storage = page.evaluate(
        """() => [localStorage.length, sessionStorage.length, document.cookie,
                  JSON.stringify({...localStorage}),
                  JSON.stringify({...sessionStorage})]"""
    )
    assert storage[:2] == [0, 0]
    assert token not in "".join(storage[2:])
    # The refresh token is in an httpOnly cookie for the auth path only, so
    # document.cookie shows it neither here nor under /api/auth.
    [cookie] = refresh_cookies(context)
    assert COOKIE not in page.evaluate("document.cookie")
    assert cookie["value"] not in page.evaluate("document.cookie")
    probe = context.new_page()
    probe.goto("/api/auth/not-a-route")
    assert probe.evaluate("document.cookie") == ""
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
        True,
        "Strict",
        "/api/auth",
    )
    assert cookie["secure"] is True

    # A refresh rotates the cookie and keeps its attributes; a Secure cookie
    # goes out over plain http to 127.0.0.1 (a secure context).
    assert page.evaluate("() => auth.refresh()") is True
    [rotated] = refresh_cookies(context)
    assert rotated["value"] != cookie["value"]
    assert {k: v for k, v in rotated.items() if k not in ("value", "expires")} == {
        k: v for k, v in cookie.items() if k not in ("value", "expires")
    }
    assert page.evaluate("() => auth.getAccessToken()") != token


def test_expired_token_is_refreshed_and_the_request_retried(
    context: Any, server: LiveServer, email: str, snap: Any
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    first = session(page)
    wait_for_expiry(page)

    server.mark()
    page.click("#profile")
    expect(page.locator("#out")).to_contain_text("profile: 200")
    expect(page.locator("#out")).to_contain_text(email)
    assert server.wait_for("GET", "/api/profile", 2) == [401, 200]
    assert server.hits("POST", "/api/auth/refresh") == [200]
    expect(page.locator("#log")).to_contain_text("POST /api/auth/refresh → 200")
    second = session(page)
    assert first and second and second["sessionId"] == first["sessionId"]
    assert second["claims"]["jti"] != first["claims"]["jti"]
    assert page.url.endswith("/?refreshAhead=off")  # no redirect anywhere
    snap(page, "refreshed")

    # A request with a body is retried with the same body.
    wait_for_expiry(page)
    server.mark()
    echoed = page.evaluate(
        """() => auth.fetch('/api/echo', {
                method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({note: 'sent twice, read once'}),
            }).then(async (r) => [r.status, await r.json()])"""
    )
    assert echoed == [200, {"received": {"note": "sent twice, read once"}}]
    assert server.wait_for("POST", "/api/echo", 2) == [401, 200]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("refreshAhead=off", id="with-cross-tab-lock"),
        # Without the lock, only the client's own single-flight stands
        # between ten failures and ten refreshes.
        pytest.param("refreshAhead=off&crossTab=off", id="single-flight-alone"),
    ],
)
def test_parallel_requests_at_expiry_refresh_once(
    context: Any, server: LiveServer, email: str, snap: Any, query: str
) -> None:
    page = open_demo(context, query)
    sign_up(page, email)
    wait_for_expiry(page)

    server.mark()
    page.click("#burst")
    expect(page.locator("#out")).to_contain_text(
        "10 requests\n" + " ".join(["200"] * 10)
    )
    profile = server.wait_for("GET", "/api/profile", 20)
    assert sorted(profile) == [200] * 10 + [401] * 10
    assert server.hits("POST", "/api/auth/refresh") == [200]
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    snap(page, "burst")


def test_tutorial_client_races_its_own_refreshes(
    context: Any, server: LiveServer, email: str
) -> None:
    """The tutorial's client under the same load sends a refresh per request,
    and with rotation and reuse detection that ends the session: what the
    test above guards against is real on this server."""
    page = context.new_page()
    page.goto("/tutorial")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#out")).to_contain_text("register: 201")
    token = page.evaluate("() => accessToken")
    exp = page.evaluate(f"() => JSON.parse(atob('{token}'.split('.')[1])).exp")
    time.sleep(max(0.0, exp - time.time()) + 0.2)

    server.mark()
    fire(
        page, "Promise.all(Array.from({length: 10}, () => apiRequest('/api/profile')))"
    )
    refreshes = server.wait_for("POST", "/api/auth/refresh", 2)
    assert len(refreshes) > 1
    assert 401 in refreshes  # a refresh token presented twice: reuse
    # ... and the failed refresh sends the user to the login page.  Every
    # failed refresh sets location.href, and each new navigation aborts the
    # one before (net::ERR_ABORTED), which page.wait_for_url reports as a
    # failure if it sees the abort first: poll the URL the page ends on.
    expect(page).to_have_url(re.compile(r"/login$"))
    assert server.wait_for("GET", "/login", 1)  # the example has no such page


def test_refreshes_before_expiry_without_a_failed_request(
    context: Any, server: LiveServer, email: str
) -> None:
    page = open_demo(context, "refreshAhead=1")
    sign_up(page, email)
    first = session(page)
    assert first is not None
    server.mark()
    # One second before expiry the client refreshes on its own.
    assert server.wait_for("POST", "/api/auth/refresh", 1) == [200]
    page.wait_for_function(f"() => auth.session.expiresAt > {first['expiresAt']}")
    assert server.hits("GET", "/api/profile") == []

    time.sleep(max(0.0, first["expiresAt"] / 1000 - time.time()) + 0.2)
    server.mark()
    page.click("#profile")
    expect(page.locator("#out")).to_contain_text("profile: 200")
    assert server.wait_for("GET", "/api/profile", 1) == [200]  # never a 401


def test_session_is_restored_on_page_load(
    context: Any, server: LiveServer, email: str
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    user_id = session(page)["userId"]  # type: ignore[index]

    server.mark()
    page.reload()
    page.wait_for_function("() => window.auth !== undefined")
    restored = page.evaluate("() => auth.ready")
    assert restored["userId"] == user_id
    assert restored["user"] is None  # /refresh does not say who; the token does
    assert restored["claims"]["email"] == email  # the example's own claim
    expect(page.locator("#status")).to_contain_text(f"Signed in as {email}")
    assert server.wait_for("POST", "/api/auth/refresh", 1) == [200]
    page.click("#profile")
    expect(page.locator("#out")).to_contain_text("profile: 200")


@pytest.mark.parametrize(
    "lock",
    [
        pytest.param(None, id="web-locks"),
        pytest.param(WITHOUT_WEB_LOCKS, id="broadcast-channel"),
    ],
)
def test_two_tabs_at_expiry_stay_signed_in(
    new_context: Callable[..., Any],
    server: LiveServer,
    email: str,
    lock: str | None,
    snap: Any,
) -> None:
    context = new_context(lock)
    one = open_demo(context)
    if lock:
        assert one.evaluate("() => navigator.locks") is None
    sign_up(one, email)
    two = open_demo(context)  # restores from the shared cookie
    expect(two.locator("#status")).to_have_attribute("data-state", "signed-in")

    for _ in range(2):
        wait_for_expiry(one, two)
        server.mark()
        fire_together([one, two], PROFILE_STATUS)
        assert (settle(one), settle(two)) == (200, 200)
        refreshes = server.wait_for("POST", "/api/auth/refresh", 1)
        # Never the same refresh token twice: one refresh, or one after the
        # other with the rotated cookie.
        assert refreshes in ([200], [200, 200]), server.requests()
    for page in (one, two):
        expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
        assert page.evaluate(PROFILE_STATUS) == 200
    snap(one, "tab-one")
    snap(two, "tab-two")


def test_two_uncoordinated_tabs_at_expiry_log_each_other_out(
    context: Any, server: LiveServer, email: str
) -> None:
    """With ``crossTab: false`` the same scenario presents one refresh token
    twice, and reuse detection ends the session: the coordination above is
    what keeps users signed in."""
    one = open_demo(context, "refreshAhead=off&crossTab=off")
    sign_up(one, email)
    two = open_demo(context, "refreshAhead=off&crossTab=off")
    assert session(two) is not None
    wait_for_expiry(one, two)
    server.mark()
    # Both at once: each presents the refresh token the other is rotating
    # (the server holds a refresh for REFRESH_DELAY_S, so they overlap).
    fire_together([one, two], PROFILE_STATUS)
    statuses = (settle(one), settle(two))
    refreshes = server.wait_for("POST", "/api/auth/refresh", 2)
    assert sorted(refreshes) == [200, 401]
    assert 401 in statuses


def test_login_and_logout_in_one_tab_reach_the_other(
    context: Any, server: LiveServer, email: str, snap: Any
) -> None:
    one = open_demo(context)
    two = open_demo(context)
    expect(two.locator("#status")).to_have_text("Signed out")

    sign_up(one, email)
    # The other tab learns of the login without a reload or a request.
    expect(two.locator("#status")).to_contain_text(f"Signed in as {email}")
    expect(two.locator("#log")).to_contain_text("session active (other-tab)")
    two.click("#profile")
    expect(two.locator("#out")).to_contain_text("profile: 200")

    one.click("#logout")
    expect(one.locator("#status")).to_have_text("Signed out")
    expect(two.locator("#status")).to_have_text("Signed out")
    expect(two.locator("#out")).to_have_text("Signed out (other-tab).")
    snap(two, "logged-out-by-other-tab")
    assert refresh_cookies(context) == []
    assert two.evaluate(PROFILE_STATUS) == 401
    # The session was revoked on the server, not only forgotten here.
    assert two.evaluate("() => auth.refresh()") is False


def test_sessions_are_listed_and_revoked(
    new_context: Callable[..., Any], server: LiveServer, email: str, snap: Any
) -> None:
    laptop = open_demo(new_context())
    sign_up(laptop, email)
    phone = open_demo(new_context())
    sign_up(phone, email, button="#login")

    laptop.click("#load-sessions")
    items = laptop.locator("#sessions li")
    expect(items).to_have_count(2)
    expect(items.filter(has_text="this browser")).to_have_count(1)
    snap(laptop, "sessions")

    phone_sid = session(phone)["sessionId"]  # type: ignore[index]
    laptop.locator(f'#sessions li[data-session-id="{phone_sid}"] button').click()
    expect(items).to_have_count(1)

    # The phone's access token is refused at its next request (TOKEN_REVOKED),
    # its refresh fails, and the page shows it is signed out: no redirect.
    phone.click("#profile")
    expect(phone.locator("#status")).to_have_text("Signed out")
    expect(phone.locator("#log")).to_contain_text("session none (session-ended)")
    expect(phone.locator("#out")).to_contain_text("profile: 401")
    expect(laptop.locator("#status")).to_have_attribute("data-state", "signed-in")


def test_tutorial_client_works_unchanged(
    context: Any, server: LiveServer, email: str
) -> None:
    """The tutorial's ``apiRequest`` on ``/tutorial``: register, profile, an
    expired token refreshed and retried, logout."""
    page = context.new_page()
    out = page.locator("#out")
    page.goto("/tutorial")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(out).to_contain_text("register: 201")
    page.click("#profile")
    expect(out).to_contain_text("profile: 200")

    token = page.evaluate("() => accessToken")
    exp = page.evaluate(f"() => JSON.parse(atob('{token}'.split('.')[1])).exp")
    time.sleep(max(0.0, exp - time.time()) + 0.2)
    server.mark()
    page.click("#profile")
    expect(out).to_contain_text("profile: 200")
    assert server.wait_for("GET", "/api/profile", 2) == [401, 200]
    assert server.hits("POST", "/api/auth/refresh") == [200]

    page.click("#logout")
    expect(out).to_contain_text("logout: 200")
    assert refresh_cookies(context) == []
