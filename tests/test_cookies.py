"""The refresh cookie under cookie tossing, and cookie-name prefixes.

A *tossed* cookie is another cookie of our name that someone else put in the
browser (a sibling subdomain with ``Domain=.example.com``, a network attacker
over plain http), usually with a more specific path so that it is sent
first.  The requests here build the ``Cookie`` header by hand, as the browser
would send it, on clients that keep no cookie jar.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from flask_tokenauth import signals
from flask_tokenauth._cookies import MAX_COOKIE_DOMAINS, MAX_VALUES
from flask_tokenauth._engine import make_engine
from flask_tokenauth._headers import _cookie_attributes, set_refresh_cookie
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._state import get_state

from .conftest import ACCESS_SECRET, PASSWORD, REFRESH_SECRET, Auth, service_missing
from .servers import (
    START_TIMEOUT,
    Server,
    gunicorn_options,
    gunicorn_path,
    server_environment,
    start_server,
    stop_server,
    wait_until_ready,
)
from .test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"


@dataclass
class Account:
    """A registered user and the refresh token of their session."""

    user_id: str
    token: str
    #: The session id (``sid``) the page holds, as the browser client sends it.
    session_id: str


def cookie_header(*values: str, name: str = "refresh_token") -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for value in values)}


def set_cookies(response: TestResponse) -> list[str]:
    """The response's Set-Cookie headers but the device cookie's (see
    ``_lockout``), which login and register set beside the refresh cookie."""
    return [
        header
        for header in response.headers.getlist("Set-Cookie")
        if not header.startswith("tokenauth_device=")
    ]


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def issued(response: TestResponse) -> list[str]:
    """The refresh cookies ``response`` sets (rather than clears)."""
    return [h for h in set_cookies(response) if cookie_value(h)]


def cleared(response: TestResponse) -> set[tuple[str | None, str, bool]]:
    """``(Domain, Path, Partitioned)`` of each cookie ``response`` clears."""
    found = set()
    for header in set_cookies(response):
        if not cookie_value(header):
            assert "Max-Age=0" in header
            attrs = attributes(header)
            found.add((attrs.get("domain"), attrs["path"], "partitioned" in attrs))
    return found


#: Every path from which a browser sends a cookie to /api/auth/refresh.
REFRESH_PATHS = ["/", "/api", "/api/", "/api/auth", "/api/auth/", "/api/auth/refresh"]


def everywhere(
    domains: tuple[str | None, ...] = (None,), but: tuple[str | None, str] | None = None
) -> set[tuple[str | None, str, bool]]:
    """What :func:`cleared` holds when every reachable place is cleared (the
    test apps' cookie is Secure: each also Partitioned), ``but`` our own."""
    return {
        (domain, path, partitioned)
        for domain in domains
        for path in REFRESH_PATHS
        for partitioned in (False, True)
        if partitioned or (domain, path) != but
    }


def attributes(header: str) -> dict[str, str]:
    """The name and attributes of a ``Set-Cookie`` header, without its value
    and lifetime (which differ between setting and clearing)."""
    name_value, *parts = header.split("; ")
    pairs = (part.partition("=") for part in parts)
    found = {
        k.lower(): v for k, _, v in pairs if k.lower() not in {"expires", "max-age"}
    }
    found["name"] = name_value.split("=", 1)[0]
    return found


def subject(response: TestResponse) -> str:
    token = response.get_json()["accessToken"]
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def spent_or_revoked(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM tokenauth_refresh_tokens"
                    " WHERE used_at IS NOT NULL OR revoked_at IS NOT NULL"
                )
            ).scalar_one()
        )


@pytest.fixture
def bare(app: Flask) -> FlaskClient:
    """A client without a cookie jar: it sends the ``Cookie`` header given."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def account(app: Flask) -> Callable[[str], Account]:
    """``account(email)``: register a user in a browser of their own."""

    def register(email: str) -> Account:
        auth = Auth(app.test_client())
        response = auth.register(email)
        assert response.status_code == 201
        token = auth.refresh_cookie()
        assert token is not None
        claims = jwt.decode(
            response.get_json()["accessToken"], options={"verify_signature": False}
        )
        return Account(str(response.get_json()["user"]["id"]), token, claims["sid"])

    return register


def refresh_alone(client: FlaskClient, token: str) -> TestResponse:
    return client.post(REFRESH, headers=cookie_header(token))


def rotate(client: FlaskClient, token: str) -> str:
    """Refresh with ``token`` alone and return its successor."""
    response = refresh_alone(client, token)
    assert response.status_code == 200
    [header] = set_cookies(response)
    return cookie_value(header)


# -- A tossed value beside a live token of ours ----------------------------------

#: Values that are no token at all.
JUNK = {
    "garbage": "junk",
    "token-sized": "x" * 43,
    "oversized": "x" * 3000,
    "empty": "",
}
TOSSED = [*JUNK, "spent", "revoked"]


@pytest.fixture
def tossed(
    request: pytest.FixtureRequest,
    account: Callable[[str], Account],
    bare: FlaskClient,
) -> str:
    """A value an attacker could toss: junk, or a dead token of their own."""
    kind = request.param
    if kind in JUNK:
        return JUNK[kind]
    attacker = account("attacker@example.com")
    if kind == "spent":
        rotate(bare, attacker.token)
    else:
        assert (
            bare.post(LOGOUT, headers=cookie_header(attacker.token)).status_code == 200
        )
    return attacker.token


@pytest.mark.parametrize("tossed", TOSSED, indirect=True)
@pytest.mark.parametrize("tossed_first", [True, False], ids=["before", "after"])
def test_tossed_value_beside_a_live_token_is_ignored_and_cleared(
    bare: FlaskClient,
    account: Callable[[str], Account],
    engine: Engine,
    tossed: str,
    tossed_first: bool,
) -> None:
    victim = account("victim@example.com")
    before = spent_or_revoked(engine)
    values = [tossed, victim.token] if tossed_first else [victim.token, tossed]
    response = bare.post(REFRESH, headers=cookie_header(*values))

    assert response.status_code == 200
    assert subject(response) == victim.user_id
    # The victim's successor replaces the victim's cookie, last; the tossed
    # value is cleared wherever it can be, our own cookie's place spared (an
    # empty value is no value: a request with one cookie clears nothing).
    [header] = issued(response)
    assert set_cookies(response)[-1] == header
    expected = everywhere(but=(None, "/api/auth")) if tossed else set()
    assert cleared(response) == expected
    successor = cookie_value(header)
    assert successor not in {"", victim.token, tossed}
    assert attributes(header)["path"] == "/api/auth"
    # The victim's token was the one spent, and its successor works alone.
    assert spent_or_revoked(engine) == before + 1
    assert (
        refresh_alone(bare, victim.token).get_json()["code"] == "REFRESH_TOKEN_REUSED"
    )


@pytest.mark.parametrize("value", ["junk", "x" * 43, "x" * 3000])
def test_a_bad_value_alone_is_cleared_as_before(bare: FlaskClient, value: str) -> None:
    response = refresh_alone(bare, value)
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_INVALID"
    [header] = set_cookies(response)
    assert header.startswith("refresh_token=;") and "Max-Age=0" in header


def test_a_spent_leftover_beside_its_successor_is_not_reuse(
    bare: FlaskClient, account: Callable[[str], Account]
) -> None:
    """A spent token of the session next to its live successor, as a browser
    holds after the cookie moved to another path: the live one refreshes,
    and the spent one does not set off reuse detection."""
    user = account("user@example.com")
    successor = rotate(bare, user.token)
    response = bare.post(REFRESH, headers=cookie_header(user.token, successor))
    assert response.status_code == 200
    assert subject(response) == user.user_id
    assert refresh_alone(bare, cookie_value(issued(response)[0])).status_code == 200


def test_reuse_detection_still_works_beside_garbage(
    bare: FlaskClient, account: Callable[[str], Account]
) -> None:
    """The victim's stolen token was rotated by the thief: the victim's spent
    token, sent next to a tossed value, still revokes the session."""
    victim = account("victim@example.com")
    thiefs = rotate(bare, victim.token)
    response = bare.post(REFRESH, headers=cookie_header("junk", victim.token))
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_REUSED"
    assert set_cookies(response) == []
    assert refresh_alone(bare, thiefs).get_json()["code"] == "REFRESH_TOKEN_REVOKED"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(lambda spent: ["junk", "x" * 43], id="all-garbage"),
        pytest.param(lambda spent: [*spent, "junk"], id="dead-tokens-of-ours"),
    ],
)
def test_nothing_to_refresh_with_clears_nothing(
    bare: FlaskClient,
    account: Callable[[str], Account],
    engine: Engine,
    values: Callable[[list[str]], list[str]],
) -> None:
    one, two = account("one@example.com"), account("two@example.com")
    successors = [rotate(bare, one.token), rotate(bare, two.token)]
    before = spent_or_revoked(engine)
    response = bare.post(
        REFRESH, headers=cookie_header(*values([one.token, two.token]))
    )
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_INVALID"
    assert set_cookies(response) == []
    # Nothing was spent or revoked: no reuse detection on leftovers.
    assert spent_or_revoked(engine) == before
    for successor in successors:
        assert refresh_alone(bare, successor).status_code == 200


def test_more_values_than_a_browser_holds_are_refused_unread(
    bare: FlaskClient, account: Callable[[str], Account], engine: Engine
) -> None:
    user = account("user@example.com")
    junk = [f"junk{i}" for i in range(MAX_VALUES)]
    # Refused whatever the header holds, even a live token first.
    response = bare.post(REFRESH, headers=cookie_header(user.token, *junk))
    assert response.status_code == 401
    assert response.get_json()["code"] == "REFRESH_TOKEN_INVALID"
    assert set_cookies(response) == []
    assert spent_or_revoked(engine) == 0


# -- Two live tokens: someone else's session was planted -------------------------


ORDERS = [
    pytest.param(lambda v, a: [a, v], id="attacker-first"),
    pytest.param(lambda v, a: [v, a], id="victim-first"),
    pytest.param(lambda v, a: ["junk", a, v], id="with-garbage"),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "hint", [None, "unknown-session", "not a session id!"], ids=["none", "other", "bad"]
)
def test_two_live_tokens_unnamed_are_ambiguous_revoked_and_cleared(
    bare: FlaskClient,
    account: Callable[[str], Account],
    engine: Engine,
    order: Callable[[str, str], list[str]],
    hint: str | None,
) -> None:
    """Neither is used; both sessions end, so that a planted cookie out of
    our reach is dead from now on; every cookie of the name we can reach,
    our own included, is cleared: the user logs in again, into a clean jar."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    response = bare.post(
        REFRESH,
        query_string={} if hint is None else {"session": hint},
        headers=cookie_header(*order(victim.token, attacker.token)),
    )

    assert response.status_code == 401
    assert response.get_json() == {
        "error": "Several refresh tokens were sent; log in again",
        "code": "REFRESH_TOKEN_AMBIGUOUS",
    }
    assert issued(response) == []  # no session switch
    assert cleared(response) == everywhere()
    for token in (victim.token, attacker.token):
        assert refresh_alone(bare, token).get_json()["code"] == "REFRESH_TOKEN_REVOKED"


@pytest.mark.parametrize("order", ORDERS)
def test_the_session_the_page_names_is_kept_and_the_planted_one_ends(
    bare: FlaskClient,
    account: Callable[[str], Account],
    engine: Engine,
    order: Callable[[str, str], list[str]],
) -> None:
    """The browser client names the session it holds: that one refreshes, as
    the victim, the planted session is revoked and its cookie cleared."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    response = bare.post(
        REFRESH,
        query_string={"session": victim.session_id},
        headers=cookie_header(*order(victim.token, attacker.token)),
    )

    assert response.status_code == 200
    assert subject(response) == victim.user_id
    [header] = issued(response)
    assert set_cookies(response)[-1] == header
    assert cleared(response) == everywhere(but=(None, "/api/auth"))
    assert refresh_alone(bare, cookie_value(header)).status_code == 200
    assert (
        refresh_alone(bare, attacker.token).get_json()["code"]
        == "REFRESH_TOKEN_REVOKED"
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("how", ["ended", "absent"])
def test_a_page_whose_session_ended_is_not_switched_to_a_planted_one(
    bare: FlaskClient,
    account: Callable[[str], Account],
    order: Callable[[str, str], list[str]],
    how: str,
) -> None:
    """The page names its session; its cookie is there but dead (ended by a
    logout elsewhere), or out of reach, and a planted live one sits beside
    it or beside a value of no use: the page must not be signed in to the
    planter's account (login CSRF), however many live tokens there are."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    assert bare.post(LOGOUT, headers=cookie_header(victim.token)).status_code == 200
    beside = victim.token if how == "ended" else "not-a-token"
    response = bare.post(
        REFRESH,
        query_string={"session": victim.session_id},
        headers=cookie_header(*order(beside, attacker.token)),
    )
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["code"] == "REFRESH_TOKEN_AMBIGUOUS"
    assert (
        refresh_alone(bare, attacker.token).get_json()["code"]
        == "REFRESH_TOKEN_REVOKED"
    )


def test_a_session_named_by_another_site_is_refused(
    bare: FlaskClient, account: Callable[[str], Account], engine: Engine
) -> None:
    """Only the app's own pages can name the session: a cross-site request
    naming the attacker's would otherwise sign the victim in as them."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    response = bare.post(
        REFRESH,
        query_string={"session": attacker.session_id},
        headers={
            **cookie_header(attacker.token, victim.token),
            "Origin": "https://evil.example.com",
        },
    )
    assert response.status_code == 403
    assert response.get_json()["code"] == "CROSS_SITE_REQUEST"
    assert spent_or_revoked(engine) == 0


@pytest.mark.parametrize(
    ("host", "domains"),
    [
        ("localhost", (None,)),
        ("127.0.0.1:8000", (None,)),
        ("[::1]:8000", (None,)),
        ("app.example.com", (None, "app.example.com", "example.com")),
        (
            "a.b.example.com:8443",
            (None, "a.b.example.com", "b.example.com", "example.com"),
        ),
    ],
)
def test_cookies_are_cleared_at_every_domain_a_planter_could_use(
    app: Flask,
    account: Callable[[str], Account],
    host: str,
    domains: tuple[str | None, ...],
) -> None:
    """A sibling subdomain plants with ``Domain=<parent>``: we may expire a
    cookie there too, being under that parent (an IP or a one-label host
    has no domain cookies)."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    client = app.test_client(use_cookies=False)
    response = client.post(
        REFRESH,
        base_url=f"http://{host}",
        headers=cookie_header(attacker.token, victim.token),
    )
    assert response.get_json()["code"] == "REFRESH_TOKEN_AMBIGUOUS"
    assert cleared(response) == everywhere(domains)


@pytest.mark.parametrize("labels", [100, 4000], ids=["dns-name", "no-dns-name"])
def test_a_crafted_host_header_cannot_swell_the_answer(
    bare: FlaskClient, labels: int
) -> None:
    """The domains cleared come from the ``Host`` header, which a client
    writes: a made-up host of thousands of labels (no browser would send
    it) gets no more domains cleared than a real name's closest parents,
    not one ``Set-Cookie`` per label (an unauthenticated logout once
    answered such an 8 kB header with 48,000 headers, ~200 MB)."""
    host = "a." * labels + "example.com"
    response = bare.post(
        LOGOUT,
        base_url=f"http://{host}",
        headers=cookie_header("tossed-one", "tossed-two"),
    )
    assert response.status_code == 200
    domains = {domain for domain, _, _ in cleared(response)}
    assert len(domains) <= 1 + MAX_COOKIE_DOMAINS
    most = (1 + MAX_COOKIE_DOMAINS) * len(REFRESH_PATHS) * 2  # 2: Partitioned
    assert len(response.headers.getlist("Set-Cookie")) <= most
    assert sum(len(h) for h in response.headers.getlist("Set-Cookie")) < 64_000


def test_a_host_prefixed_cookie_has_nothing_else_to_clear(
    make_app: Any,
) -> None:
    """``__Host-``: no other host can set it, nor any other path."""
    app = make_app(TOKENAUTH_COOKIE_NAME="__Host-refresh", TOKENAUTH_COOKIE_PATH="/")
    tokens = []
    for email in ("victim@example.com", "attacker@example.com"):
        auth = Auth(app.test_client())
        auth.register(email)
        cookie = auth.client.get_cookie("__Host-refresh", path="/")
        assert cookie is not None
        tokens.append(cookie.value)
    response = app.test_client(use_cookies=False).post(
        REFRESH, headers=cookie_header(*tokens, name="__Host-refresh")
    )
    assert response.get_json()["code"] == "REFRESH_TOKEN_AMBIGUOUS"
    assert cleared(response) == {(None, "/", False), (None, "/", True)}


@pytest.mark.parametrize("path", ["login", "register"])
@pytest.mark.requirement("ASVS-5.0-7.2.4")
def test_a_login_sent_several_refresh_cookies_clears_the_others(
    bare: FlaskClient, account: Callable[[str], Account], path: str
) -> None:
    """A new login gets rid of a planted cookie: every place but ours is
    cleared, and ours set anew, last.  With one cookie (ours, or nothing
    planted where the login sees it) a login sets ours and clears nothing."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    body = {"email": f"{path}@example.com", "password": PASSWORD}
    if path == "login":
        account("login@example.com")
    response = bare.post(
        f"/api/auth/{path}",
        json=body,
        headers=cookie_header(attacker.token, victim.token),
    )
    assert response.status_code in (200, 201)
    [header] = issued(response)
    assert set_cookies(response)[-1] == header
    assert cleared(response) == everywhere(but=(None, "/api/auth"))

    alone = bare.post("/api/auth/login", json=body, headers=cookie_header(victim.token))
    assert alone.status_code == 200
    assert cleared(alone) == set() and len(issued(alone)) == 1


def test_a_planted_session_never_signs_the_victim_in_and_logout_gets_rid_of_it(
    bare: FlaskClient, account: Callable[[str], Account]
) -> None:
    """The victim is signed in; the attacker tosses a live token of their own
    account (with a path that covers ``/logout`` too).  The victim's refresh
    is refused rather than answered as the attacker; a logout revokes both,
    and once the victim logs in again the tossed cookie, now dead, is
    ignored."""
    victim = account("victim@example.com")
    attacker = account("attacker@example.com")
    jar = [attacker.token, victim.token]
    refused = bare.post(REFRESH, headers=cookie_header(*jar))
    assert refused.get_json()["code"] == "REFRESH_TOKEN_AMBIGUOUS"

    assert bare.post(LOGOUT, headers=cookie_header(*jar)).status_code == 200
    login = Auth(bare).login("victim@example.com")
    jar = [attacker.token, cookie_value(set_cookies(login)[0])]
    refreshed = bare.post(REFRESH, headers=cookie_header(*jar))
    assert refreshed.status_code == 200
    assert subject(refreshed) == victim.user_id
    revoked = refresh_alone(bare, attacker.token)
    assert revoked.get_json()["code"] == "REFRESH_TOKEN_REVOKED"


def test_logout_revokes_every_session_of_ours_it_was_sent(
    app: Flask, bare: FlaskClient, account: Callable[[str], Account]
) -> None:
    one, two = account("one@example.com"), account("two@example.com")
    seen: list[tuple[Any, Any]] = []

    def record(_app: Flask, user_id: Any, session_id: Any) -> None:
        seen.append((user_id, session_id))

    with signals.logged_out.connected_to(record, app):
        response = bare.post(
            LOGOUT, headers=cookie_header("junk", one.token, two.token, one.token)
        )
    assert response.status_code == 200
    # Several cookies: every one we can reach is cleared, not only ours.
    assert issued(response) == [] and cleared(response) == everywhere()
    assert [str(user_id) for user_id, _ in seen] == [one.user_id, two.user_id]
    for token in (one.token, two.token):
        assert refresh_alone(bare, token).get_json()["code"] == "REFRESH_TOKEN_REVOKED"


# -- Cookie attributes and name prefixes -----------------------------------------


CONFIGS = [
    pytest.param({}, "/api/auth", id="default"),
    pytest.param({"TOKENAUTH_COOKIE_PATH": "/"}, "/", id="path-root"),
    pytest.param({"TOKENAUTH_COOKIE_PATH": "/api"}, "/api", id="path-api"),
    pytest.param(
        {"TOKENAUTH_COOKIE_NAME": "__Host-refresh", "TOKENAUTH_COOKIE_PATH": "/"},
        "/",
        id="host-prefix",
    ),
    pytest.param(
        {
            "TOKENAUTH_COOKIE_NAME": "__Secure-refresh",
            "TOKENAUTH_COOKIE_DOMAIN": "example.com",
        },
        "/api/auth",
        id="secure-prefix",
    ),
]


@pytest.mark.parametrize(("config", "path"), CONFIGS)
def test_set_and_clear_use_the_same_attributes(
    make_app: Any, config: dict[str, str], path: str
) -> None:
    app = make_app(**config)
    name = app.extensions["tokenauth"].settings.cookie_name
    auth = Auth(app.test_client(use_cookies=False))
    [issued] = set_cookies(auth.register())
    token = cookie_value(issued)
    [rotated] = set_cookies(auth.refresh(headers=cookie_header(token, name=name)))
    [cleared_by_error] = set_cookies(
        auth.refresh(headers=cookie_header("x", name=name))
    )
    [cleared_by_logout] = set_cookies(
        auth.logout(headers=cookie_header(token, name=name))
    )

    expected = attributes(issued)
    assert expected["name"] == name and expected["path"] == path
    assert {"secure", "httponly"} <= set(expected)
    for header in (rotated, cleared_by_error, cleared_by_logout):
        assert attributes(header) == expected
    if name.startswith("__Host-"):
        assert "domain" not in expected  # the browser's rule for __Host-


@pytest.mark.requirement("ASVS-5.0-3.3.1", "ASVS-5.0-3.3.3")
def test_host_prefixed_cookie_works_end_to_end(make_app: Any) -> None:
    """``__Host-refresh`` at ``Path=/``: login, refresh, logout through a
    client that keeps the cookie as a browser would."""
    app = make_app(TOKENAUTH_COOKIE_NAME="__Host-refresh", TOKENAUTH_COOKIE_PATH="/")
    auth = Auth(app.test_client())
    auth.register()
    auth.logout()
    login = auth.login()
    assert login.status_code == 200
    first = auth.client.get_cookie("__Host-refresh", path="/")
    assert first is not None and first.secure and first.http_only
    refreshed = auth.refresh()
    assert refreshed.status_code == 200
    second = auth.client.get_cookie("__Host-refresh", path="/")
    assert second is not None and second.value != first.value
    assert auth.logout().status_code == 200
    assert auth.client.get_cookie("__Host-refresh", path="/") is None
    bare = app.test_client(use_cookies=False)
    gone = bare.post(
        REFRESH, headers=cookie_header(second.value, name="__Host-refresh")
    )
    assert gone.get_json()["code"] == "REFRESH_TOKEN_REVOKED"


# -- In a real browser -------------------------------------------------------------
#
# The example app in gunicorn (as in test_browser.py) and Chromium, which
# sends the cookie with the more specific path first and enforces the name
# prefixes; a tossed cookie is added to the browser's jar directly.

BROWSER_CONFIGS = {
    "plain": {},
    "host-prefix": {
        "TOKENAUTH_COOKIE_NAME": "__Host-refresh",
        "TOKENAUTH_COOKIE_PATH": "/",
    },
    # Served as http://app.tokenauth.test (not a secure context, unlike
    # 127.0.0.1: the cookie cannot be Secure there), so that a sibling
    # subdomain's Domain=tokenauth.test cookie can be planted.
    "named-host": {"TOKENAUTH_COOKIE_SECURE": "false"},
}
#: The app's host name in the browser, and the parent a sibling plants at;
#: Chromium resolves them to the loopback address.
NAMED_HOST = "app.tokenauth.test"
PARENT_DOMAIN = "tokenauth.test"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the environment
        service_missing("playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"Chromium not found at {CHROMIUM}: run `make browser`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *CHROMIUM_ARGS,
                f"--host-resolver-rules=MAP *.{PARENT_DOMAIN} 127.0.0.1",
            ],
            timeout=TIMEOUT_MS,
        )
        yield browser
        browser.close()


#: The running servers by URL: a test that fails shows its server's log.
SERVERS: dict[str, Server] = {}


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """``(url, cookie name)`` of the example app in gunicorn, per config."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed: pip install -e '.[test]'")
    assert gunicorn is not None
    config = BROWSER_CONFIGS[request.param]
    workdir = tmp_path_factory.mktemp("cookies")
    database = f"sqlite:///{workdir / 'tokenauth.sqlite3'}"
    engine = make_engine(database, {})
    upgrade(engine)
    engine.dispose()
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=database,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_RATELIMIT_ENABLED="false",
        **config,
    )
    command = [gunicorn, *gunicorn_options(gunicorn), "tests.browser_app:create_app()"]
    server = start_server(request.param, command, env, workdir)
    try:
        wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        SERVERS[server.url] = server
        yield server.url, config.get("TOKENAUTH_COOKIE_NAME", "refresh_token")
    finally:
        SERVERS.pop(server.url, None)
        stop_server(server)


@pytest.fixture
def context(chromium: Any, live: tuple[str, str]) -> Iterator[Any]:
    context = chromium.new_context(base_url=live[0])
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def sign_up(context: Any, email: str) -> Any:
    """Register on the demo page; the page, signed in."""
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto("/?refreshAhead=off")
    page.wait_for_function("() => window.auth !== undefined")
    page.evaluate("() => auth.ready")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    return page


def restored_user(page: Any) -> Any:
    """Reload the page: the user id its client restored a session for, with a
    refresh carrying every cookie the browser holds for it, or None."""
    page.reload()
    page.wait_for_function("() => window.auth !== undefined")
    session = page.evaluate("() => auth.ready")
    return None if session is None else session["userId"]


def jar(context: Any, name: str) -> list[tuple[str, str]]:
    return sorted(
        (c["path"], c["value"]) for c in context.cookies() if c["name"] == name
    )


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("live", ["plain"], indirect=True)
def test_in_chromium_a_tossed_cookie_neither_logs_out_nor_switches_account(
    context: Any, live: tuple[str, str]
) -> None:
    url, name = live
    page = sign_up(context, "victim@example.com")
    victim = page.evaluate("() => auth.session.userId")

    # Garbage at a more specific path, which Chromium sends first: the page
    # stays signed in as the victim, the victim's cookie rotates, and the
    # tossed one is cleared.
    tossed = {"name": name, "domain": "127.0.0.1", "path": "/api/auth/refresh"}
    context.add_cookies([{**tossed, "value": "junk"}])
    [(_, before)] = [c for c in jar(context, name) if c[0] == "/api/auth"]
    assert restored_user(page) == victim
    [(path, after)] = jar(context, name)
    assert path == "/api/auth" and after != before
    assert restored_user(page) == victim

    # A live token of the attacker's own account, and a page load, which
    # holds no session to name: never used; both sessions end and the jar
    # is emptied, so the next login starts clean.
    attacker = requests.post(
        f"{url}/api/auth/register",
        json={"email": "attacker@example.com", "password": PASSWORD},
        timeout=10,
    )
    context.add_cookies([{**tossed, "value": attacker.cookies[name]}])
    assert restored_user(page) is None
    assert jar(context, name) == []


#: Where a planter puts a live token of their own: a more specific path of
#: our host (a network attacker over plain http), or the parent domain at
#: the root (a sibling subdomain, ``evil.tokenauth.test``).
PLANTED = [
    pytest.param({"domain": NAMED_HOST, "path": "/api/auth/refresh"}, id="our-host"),
    pytest.param({"domain": f".{PARENT_DOMAIN}", "path": "/"}, id="parent-domain"),
]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("live", ["named-host"], indirect=True)
@pytest.mark.parametrize("where", PLANTED)
def test_in_chromium_the_page_recovers_from_a_planted_session(
    chromium: Any,
    live: tuple[str, str],
    where: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    """The victim never presses log out: a page that holds its session keeps
    it through a refresh and the planted cookie is gone; a page load with a
    planted cookie signs out once, and one login later all is well."""
    from playwright.sync_api import expect

    url, name = live
    context = chromium.new_context(base_url=url.replace("127.0.0.1", NAMED_HOST))
    context.set_default_timeout(TIMEOUT_MS)
    tag = request.node.callspec.id.replace("-", "")
    email = f"victim{tag}@example.com"
    planted_by: list[str] = []

    def plant() -> str:
        """A live token of a new account of the attacker's, in the jar."""
        attacker = requests.post(
            f"{url}/api/auth/register",
            json={
                "email": f"attacker{tag}{len(planted_by)}@example.com",
                "password": PASSWORD,
            },
            timeout=10,
        )
        value = attacker.cookies[name]
        planted_by.append(value)
        context.add_cookies([{"name": name, "value": value, **where}])
        return value

    try:
        page = sign_up(context, email)
        victim = page.evaluate("() => auth.session.userId")
        planted = plant()
        assert planted in [value for _, value in jar(context, name)]

        # The page refreshes: it names the session it holds, which goes on;
        # the planted one is cleared (and its session ended).
        assert page.evaluate("() => auth.refresh()") is True
        assert page.evaluate("() => auth.session.userId") == victim
        [(path, ours)] = jar(context, name)
        assert path == "/api/auth" and ours != planted
        assert restored_user(page) == victim
        assert restored_user(page) == victim

        # Planted again, then a page load: nothing to name the session by.
        # Signed out once (no account switch), the jar emptied; the user
        # logs in, and every load after restores the session.
        plant()
        assert restored_user(page) is None
        assert jar(context, name) == []
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("#login")
        expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
        assert restored_user(page) == victim
        assert restored_user(page) == victim
        assert all(value not in planted_by for _, value in jar(context, name))
    except Exception as e:
        log = SERVERS[url].log_tail()
        raise AssertionError(f"{e}\nserver log:\n{log}") from e
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("live", ["host-prefix"], indirect=True)
def test_in_chromium_a_host_prefixed_cookie_at_the_root_path(
    context: Any, live: tuple[str, str]
) -> None:
    _, name = live
    page = sign_up(context, "host@example.com")
    user = page.evaluate("() => auth.session.userId")
    [cookie] = [c for c in context.cookies() if c["name"] == name]
    assert (cookie["path"], cookie["secure"], cookie["httpOnly"]) == ("/", True, True)
    assert restored_user(page) == user  # refreshed with it
    [(_, rotated)] = jar(context, name)
    assert rotated != cookie["value"]
    # What start-up refuses is what the browser drops: a __Host- cookie with
    # another path never reaches the jar.
    page.evaluate(f"() => {{ document.cookie = '{name}=x; Path=/api; Secure'; }}")
    assert jar(context, name) == [("/", rotated)]
    page.click("#logout")
    try:
        page.wait_for_function("() => auth.session === null")
    except Exception as e:  # seen once in CI: keep what the server said
        log = SERVERS[live[0]].log_tail()
        raise AssertionError(f"the session outlived logout; server log:\n{log}") from e
    assert jar(context, name) == []


@pytest.mark.parametrize(
    ("config", "token"),
    [
        ({}, "tok_en-123"),
        ({"TOKENAUTH_COOKIE_SECURE": False}, "tok_en-123"),
        (
            {
                "TOKENAUTH_COOKIE_NAME": "__Host-rt",
                "TOKENAUTH_COOKIE_PATH": "/",
                "TOKENAUTH_COOKIE_SAMESITE": "Lax",
            },
            "tok_en-123",
        ),
        (
            {
                "TOKENAUTH_COOKIE_DOMAIN": "example.com",
                "TOKENAUTH_COOKIE_PATH": "/api/ü(1)",
            },
            "tok_en-123",
        ),
        ({}, 'not "ours"; at all'),  # werkzeug quotes it
    ],
)
def test_the_refresh_cookie_is_what_werkzeug_would_write(
    make_app: Callable[..., Flask], config: dict[str, Any], token: str
) -> None:
    """The cookie is rendered once per set of attributes and then filled
    in: byte for byte what ``response.set_cookie`` writes."""
    app = make_app(**config)
    settings = get_state(app).settings
    expires_at = datetime.now(timezone.utc) + timedelta(days=3, microseconds=500_000)
    with app.test_request_context("/api/auth/refresh", method="POST"):
        for _ in range(2):  # the second from the cache
            ours = app.response_class()
            set_refresh_cookie(ours, settings, token, expires_at)
            theirs = app.response_class()
            max_age = int((expires_at - datetime.now(timezone.utc)).total_seconds())
            theirs.set_cookie(
                settings.cookie_name,
                token,
                max_age=max_age,
                expires=expires_at,
                **_cookie_attributes(settings),
            )
            [written] = ours.headers.getlist("Set-Cookie")
            [expected] = theirs.headers.getlist("Set-Cookie")
            # One second may pass between the two: Max-Age is the one to move.
            assert written.replace(f"Max-Age={max_age}", "") == expected.replace(
                f"Max-Age={max_age}", ""
            ) or written == expected.replace(
                f"Max-Age={max_age}", f"Max-Age={max_age + 1}"
            )
