"""The second factor on the demo page, in headless Chromium, through
``client.js``'s hooks: turning on an authenticator app (the QR code shown,
the code computed by the test from the secret with pyotp, the recovery
codes shown), a password login completed with a code or a recovery code
(``aal`` 2 in the token), a step-up (``401 REAUTHENTICATION_REQUIRED``, the
page asks again, the request retried once), and passkeys with Chrome's
virtual authenticator (DevTools Protocol ``WebAuthn.addVirtualAuthenticator``):
registered on the page, then signing in alone and as the second factor.

The example app runs in gunicorn (``tests/browser_app.py``) at
``http://localhost:<port>``, the origin its passkeys are configured for
(WebAuthn refuses an IP address as relying party, so the page is opened at
``localhost``, as a developer would open ``make run``'s).  A short
``TOKENAUTH_REAUTHENTICATION_MAX_AGE`` lets a test wait until the sign-in is
no longer fresh.  ``tests/test_passkeys_browser.py`` covers the passkey
server side (cloned authenticators, wrong origins).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pyotp
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
from .test_browser import LiveServer, open_demo, session, sign_up
from .test_browser_account import free_port

with contextlib.suppress(ImportError):  # the browser fixture says what is missing
    from playwright.sync_api import expect

browser = shared.browser
new_context = shared.new_context
context = shared.context
snap = shared.snap
email = shared.email

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Seconds a sign-in stays fresh for the factor-changing views.
MAX_AGE_S = 2
#: A platform authenticator that keeps discoverable credentials and verifies
#: its user, touched as soon as asked.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed: pip install -e '.[test]'")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("browser-mfa")
    database = f"sqlite:///{workdir / 'tokenauth.sqlite3'}"
    engine = make_engine(database, {})
    upgrade(engine)
    engine.dispose()
    access_log = workdir / "access.log"
    port = free_port()
    origin = f"http://localhost:{port}"
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=database,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_RATELIMIT_ENABLED="false",
        TOKENAUTH_REAUTHENTICATION_MAX_AGE=f"{MAX_AGE_S}s",
        # The example's passkeys are for localhost:5000; this server's port.
        TOKENAUTH_WEBAUTHN_ORIGINS=origin,
    )
    options = [o for o in gunicorn_options(gunicorn) if not o.startswith("--bind=")]
    command = [
        gunicorn,
        *options,
        f"--bind=127.0.0.1:{port}",
        f"--access-logfile={access_log}",
        "tests.browser_app:create_app()",
    ]
    process = start_server("browser-mfa", command, env, workdir)
    try:
        wait_until_ready([process], time.monotonic() + START_TIMEOUT)
        yield LiveServer(origin, access_log)
    finally:
        stop_server(process)


def claims(page: Any) -> dict[str, Any]:
    found = session(page)
    assert found is not None, "not signed in"
    return dict(found["claims"])


def wrong_code(secret: str) -> str:
    """A code no step of the accepted window has."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now, counter_offset=offset) for offset in range(-2, 3)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


def next_code(secret: str) -> str:
    """The code of the next 30-second step: accepted (one step ahead is in
    the window) and later than any step a code was used for so far."""
    return pyotp.TOTP(secret).at(time.time(), counter_offset=1)


def enrol_totp(page: Any) -> tuple[str, list[str]]:
    """Turn on an authenticator app on the signed-in page; the secret and
    the recovery codes the page shows."""
    expect(page.locator("#mfa-status")).to_contain_text("Authenticator app: off")
    page.click("#totp-enroll")
    expect(page.locator("#totp-setup")).to_be_visible()
    secret = page.locator("#totp-secret").text_content() or ""
    assert len(secret) >= 16
    # The QR code, drawn from the server's SVG.
    page.wait_for_function(
        "() => document.getElementById('totp-qr').complete"
        " && document.getElementById('totp-qr').naturalWidth > 0"
    )
    assert page.get_attribute("#totp-qr", "src").startswith("data:image/svg+xml")
    page.fill("#totp-code", pyotp.TOTP(secret).now())
    page.click("#totp-confirm")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    expect(page.locator("#mfa-status")).to_contain_text("Authenticator app: on")
    expect(page.locator("#totp-setup")).to_be_hidden()
    codes = page.locator("#recovery-codes li").all_text_contents()
    return secret, codes


def wait_until_stale(auth_time: int) -> None:
    """Until a sign-in at ``auth_time`` is no longer fresh (by the server's
    clock, which is this machine's)."""
    assert wait_for(lambda: time.time() > auth_time + MAX_AGE_S + 1, MAX_AGE_S + 10)


def log_in(page: Any, email: str) -> None:
    """A password login of a user with a second factor: the page asks."""
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login")
    expect(page.locator("#mfa")).to_be_visible()
    expect(page.locator("#status")).to_have_attribute("data-state", "mfa-pending")


def log_out(page: Any) -> None:
    page.click("#logout")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")


def test_totp_enrolment_then_sign_in_with_a_code_or_a_recovery_code(
    context: Any, email: str, server: LiveServer, snap: Any
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    secret, recovery_codes = enrol_totp(page)
    snap(page, "enrolled")
    # Confirming upgraded the session it was done in.
    assert claims(page)["aal"] == 2
    log_out(page)

    log_in(page, email)
    pending = claims(page)
    assert pending["aal"] == 1
    assert pending["mfa_state"] == "pending"
    assert page.locator("#signed-in").is_hidden()
    snap(page, "code-asked")
    # A wrong code: the hook is asked again, the error shown.
    page.fill("#mfa-code", wrong_code(secret))
    page.click("#mfa-submit")
    expect(page.locator("#mfa-error")).to_contain_text("MFA_CODE_INVALID")
    expect(page.locator("#mfa")).to_be_visible()
    server.mark()
    page.fill("#mfa-code", next_code(secret))
    page.click("#mfa-submit")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    expect(page.locator("#mfa")).to_be_hidden()
    upgraded = claims(page)
    assert upgraded["aal"] == 2
    assert upgraded["amr"] == ["pwd", "otp", "mfa"]
    assert "mfa_state" not in upgraded
    assert upgraded["sid"] == pending["sid"]  # the same session, upgraded
    assert server.wait_for("POST", "/api/auth/mfa/verify", 1) == [200]
    page.click("#profile")
    expect(page.locator("#out")).to_contain_text("profile: 200")
    snap(page, "signed-in")
    log_out(page)

    # The authenticator is lost: a recovery code, typed with its hyphen,
    # after a reload (the pending session restored from its cookie, still
    # pending; the page's form sends the code itself).
    log_in(page, email)
    page.reload()
    page.wait_for_function("() => window.auth !== undefined")
    page.evaluate("() => auth.ready")
    expect(page.locator("#status")).to_have_attribute("data-state", "mfa-pending")
    assert claims(page)["mfa_state"] == "pending"
    page.fill("#mfa-code", recovery_codes[3])
    page.click("#mfa-submit")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    assert claims(page)["aal"] == 2
    expect(page.locator("#mfa-status")).to_contain_text("recovery codes left: 9")


@pytest.mark.parametrize("proof", ["password", "code"])
def test_step_up_asks_again_and_retries_the_request(
    context: Any, email: str, server: LiveServer, proof: str, snap: Any
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    secret, old_codes = enrol_totp(page)
    signed_in_at = claims(page)["auth_time"]
    wait_until_stale(signed_in_at)
    server.mark()
    page.click("#recovery-regenerate")
    expect(page.locator("#reauth")).to_be_visible()
    snap(page, "asked-again")
    # A wrong answer: asked again, with the error.
    if proof == "password":
        page.fill("#reauth-password", "not the password 123")
        page.click("#reauth-submit")
        expect(page.locator("#reauth-error")).to_contain_text("WRONG_PASSWORD")
        page.fill("#reauth-password", PASSWORD)
    else:
        page.fill("#reauth-code", wrong_code(secret))
        page.click("#reauth-submit")
        expect(page.locator("#reauth-error")).to_contain_text("MFA_CODE_INVALID")
        page.fill("#reauth-code", next_code(secret))
    page.click("#reauth-submit")
    expect(page.locator("#reauth")).to_be_hidden()
    page.wait_for_function(
        "(old) => { const c = [...document.querySelectorAll('#recovery-codes li')]"
        ".map((li) => li.textContent); return c.length === 10 && !c.includes(old); }",
        arg=old_codes[0],
    )
    # Refused, renewed, retried once: one regeneration.
    assert server.wait_for("POST", "/api/auth/mfa/recovery-codes", 2) == [401, 200]
    refused = 403 if proof == "password" else 400
    assert server.hits("POST", "/api/auth/reauthenticate") == [refused, 200]
    assert claims(page)["auth_time"] > signed_in_at


def test_step_up_cancelled_leaves_the_request_refused(
    context: Any, email: str, server: LiveServer
) -> None:
    page = open_demo(context)
    sign_up(page, email)
    enrol_totp(page)
    signed_in_at = claims(page)["auth_time"]
    wait_until_stale(signed_in_at)
    server.mark()
    page.click("#totp-remove")
    expect(page.locator("#reauth")).to_be_visible()
    page.click("#reauth-cancel")
    expect(page.locator("#out")).to_contain_text("REAUTHENTICATION_REQUIRED")
    assert server.wait_for("DELETE", "/api/auth/mfa/totp", 1) == [401]
    assert server.hits("POST", "/api/auth/reauthenticate") == []
    expect(page.locator("#mfa-status")).to_contain_text("Authenticator app: on")


def test_passkey_registered_on_the_page_signs_in_alone_and_as_second_factor(
    context: Any, email: str, server: LiveServer, snap: Any
) -> None:
    page = open_demo(context)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR}
    )["authenticatorId"]
    sign_up(page, email)
    page.fill("#passkey-name", "Virtual key")
    page.click("#passkey-register")
    expect(page.locator("#passkeys li")).to_have_count(1)
    expect(page.locator("#passkeys li")).to_contain_text("Virtual key")
    expect(page.locator("#mfa-status")).to_contain_text("passkeys: 1")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1
    assert stored["credentials"][0]["isResidentCredential"]
    snap(page, "registered")
    log_out(page)

    # No password: the authenticator offers its discoverable credential.
    page.click("#passkey-login")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    alone = claims(page)
    assert alone["aal"] == 2
    assert "user" in alone["amr"] and "pwd" not in alone["amr"]
    log_out(page)

    # A password login: the passkey is the second factor the page offers.
    log_in(page, email)
    expect(page.locator("#mfa-passkey")).to_be_visible()
    page.click("#mfa-passkey")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    second = claims(page)
    assert second["aal"] == 2
    assert second["amr"][0] == "pwd" and "mfa" in second["amr"]
    snap(page, "passkey-second-factor")
