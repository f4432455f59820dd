"""Second angles on the properties that matter most.

Each property here already has a test at the level of its own module, run
through a test client of a bare app.  These attack it again from outside:
over HTTP against the example app (``examples/app.py``) in a real gunicorn
process on PostgreSQL and Redis, configured through the environment as a
deployment is.  Where a count can only be taken inside the process (bcrypt
calls), the example app runs under its own test client instead.

Each server gets its own throwaway PostgreSQL database and Redis prefix.
Every client sends an ``X-Forwarded-For`` address of its own
(``TOKENAUTH_TRUSTED_PROXIES=1``), so the per-IP limits of one test never
count another's requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
import requests
from sqlalchemy import Engine, MetaData, select, text

from flask_tokenauth import _passwords
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth._passwords import hash_rounds

from .conftest import (
    ACCESS_KID,
    ACCESS_SECRET,
    PASSWORD,
    POSTGRES_URL,
    REDIS_URL,
    REFRESH_SECRET,
    service_missing,
    throwaway_database,
)
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

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 10.0
COOKIE = "refresh_token"
AUTH = "/api/auth"


# -- The deployment ----------------------------------------------------------


@dataclass
class Deployment:
    """gunicorn servers of the example app on one PostgreSQL database and
    one Redis prefix, started on first use, one per distinct configuration."""

    gunicorn: str
    database_url: str
    engine: Engine
    prefix: str
    workdir: Path
    servers: dict[tuple[tuple[str, str], ...], Server] = field(default_factory=dict)

    def url(self, **overrides: str) -> str:
        """The base URL of a server configured with ``overrides``."""
        config = {
            "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
            "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
            "TOKENAUTH_DATABASE_URL": self.database_url,
            "TOKENAUTH_REDIS_URL": REDIS_URL,
            "TOKENAUTH_REDIS_PREFIX": self.prefix,
            "TOKENAUTH_BCRYPT_ROUNDS": "4",
            "TOKENAUTH_TRUSTED_PROXIES": "1",
            **overrides,
        }
        key = tuple(sorted(config.items()))
        if key not in self.servers:
            env = server_environment(**config)
            command = [
                self.gunicorn,
                *gunicorn_options(self.gunicorn),
                "examples.app:create_app()",
            ]
            name = f"angles{len(self.servers)}"
            server = start_server(name, command, env, self.workdir)
            self.servers[key] = server
            wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        return self.servers[key].url

    def password_hash(self, email: str) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT password_hash FROM tokenauth_users WHERE email = :e"),
                    {"e": email},
                ).scalar_one()
            )


@pytest.fixture(scope="module")
def deployment(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    with ExitStack() as stack:
        try:
            url = stack.enter_context(
                throwaway_database(POSTGRES_URL, "tokenauth_angles_")
            )
        except Exception as e:
            service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {e}")
        engine = make_engine(url, {})
        stack.callback(engine.dispose)
        upgrade(engine)
        prefix = f"tokenauth-angles:{uuid.uuid4().hex[:12]}:"
        deployment = Deployment(
            gunicorn, url, engine, prefix, tmp_path_factory.mktemp("angles")
        )
        try:
            yield deployment
        finally:
            for server in deployment.servers.values():
                stop_server(server)
            keys = list(redis_server.scan_iter(match=f"*{prefix}*", count=1000))
            if keys:
                redis_server.delete(*keys)


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> str:
    """The example app as deployed: Redis revocation, secure cookies, one
    trusted proxy, the default 15-minute access tokens."""
    return deployment.url()


class Client:
    """Plain HTTP calls from one (forwarded) client address, with the
    refresh cookie passed explicitly (it is ``Secure``, and this is http)."""

    def __init__(self, base: str, forwarded_for: str | None = None) -> None:
        self.base = base
        self.forwarded_for = forwarded_for or new_ip()

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        cookie: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        headers = {"X-Forwarded-For": self.forwarded_for}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"{COOKIE}={cookie}"
        return requests.request(
            method,
            self.base + path,
            headers=headers,
            timeout=REQUEST_TIMEOUT,
            allow_redirects=False,
            **kwargs,
        )

    def register(self, email: str) -> requests.Response:
        body = {"email": email, "password": PASSWORD}
        return self.request("POST", f"{AUTH}/register", json=body)

    def login(self, email: str) -> requests.Response:
        body = {"email": email, "password": PASSWORD}
        return self.request("POST", f"{AUTH}/login", json=body)

    def refresh(self, cookie: str) -> requests.Response:
        return self.request("POST", f"{AUTH}/refresh", cookie=cookie)

    def profile(self, token: str) -> requests.Response:
        return self.request("GET", "/api/profile", token=token)

    def sessions(self, token: str) -> list[dict[str, Any]]:
        response = self.request("GET", f"{AUTH}/sessions", token=token)
        assert response.status_code == 200, response.text
        return list(response.json()["sessions"])


def new_ip() -> str:
    """A client address of its own: TEST-NET-2, random host."""
    number = uuid.uuid4().int
    return f"198.51.{number % 256}.{(number >> 8) % 254 + 1}"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def set_cookies(response: requests.Response) -> list[dict[str, str]]:
    """Each ``Set-Cookie`` of ``response`` as ``{"": "name=value", attribute
    (lower-case): value}``, read from the raw headers."""
    parsed = []
    for header in response.raw.headers.getlist("Set-Cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        cookie = {"": first}
        for attribute in attributes:
            name, _, value = attribute.partition("=")
            cookie[name.lower()] = value
        parsed.append(cookie)
    return parsed


def the_refresh_cookie(response: requests.Response) -> dict[str, str]:
    """The one ``Set-Cookie`` of the refresh cookie (others may come)."""
    [cookie] = [c for c in set_cookies(response) if c[""].startswith(f"{COOKIE}=")]
    return cookie


def refresh_cookie(response: requests.Response) -> str:
    return the_refresh_cookie(response)[""].partition("=")[2]


def session_of(response: requests.Response) -> tuple[str, str]:
    """The access token and refresh cookie of a register/login/refresh."""
    assert response.status_code in (200, 201), response.text
    return str(response.json()["accessToken"]), refresh_cookie(response)


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def assert_401(response: requests.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code


# -- Forged tokens: pinned algorithm, issuer, audience -----------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(
    header: dict[str, Any],
    claims: dict[str, Any],
    key: bytes | None,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    """A compact JWS built by hand (PyJWT refuses to make most of these):
    HMAC of the signing input with ``key``, or no signature at all."""
    signing_input = (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    )
    signature = (
        b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    )
    return f"{signing_input}.{b64url(signature)}"


SECRET = ACCESS_SECRET.encode()
ATTACKER_KEY = b"attacker-chosen-key-" + b"k" * 44
TYP = {"typ": "at+jwt", "kid": ACCESS_KID}


def forgeries(claims: dict[str, Any]) -> dict[str, str]:
    """Tokens built from a real token's claims, each wrong in one way that
    only the pinned algorithm, issuer or audience check can see."""
    hs256 = {"alg": "HS256", **TYP}
    return {
        # The algorithm is ours, not the token's.
        "HS384 with the secret": sign(
            {"alg": "HS384", **TYP}, claims, SECRET, hashlib.sha384
        ),
        "HS512 with the secret": sign(
            {"alg": "HS512", **TYP}, claims, SECRET, hashlib.sha512
        ),
        **{
            f"alg {alg}": sign({"alg": alg, **TYP}, claims, None)
            for alg in ("none", "None", "NONE")
        },
        "alg none with a valid HMAC": sign({"alg": "none", **TYP}, claims, SECRET),
        # Key confusion: an asymmetric algorithm named, an HMAC made with
        # the secret as if it were the public key.
        "RS256 named, HMAC with the secret": sign(
            {"alg": "RS256", **TYP}, claims, SECRET
        ),
        "ES256 named, HMAC with the secret": sign(
            {"alg": "ES256", **TYP}, claims, SECRET
        ),
        "PS256 named, HMAC with the secret": sign(
            {"alg": "PS256", **TYP}, claims, SECRET
        ),
        # Keys the token brings along are never used.
        "embedded jwk": sign(
            {**hs256, "jwk": {"kty": "oct", "k": b64url(ATTACKER_KEY)}},
            claims,
            ATTACKER_KEY,
        ),
        "jku to the attacker": sign(
            {**hs256, "jku": "http://127.0.0.1:1/jwks.json"}, claims, ATTACKER_KEY
        ),
        "kid to an empty file": sign(
            {**hs256, "kid": "../../../../../../dev/null"}, claims, b""
        ),
        "the refresh secret": sign(hs256, claims, REFRESH_SECRET.encode()),
        # Issuer and audience: exactly ours, present, and strings.
        "wrong iss": sign(hs256, {**claims, "iss": "someone-else"}, SECRET),
        "iss of another case": sign(
            hs256, {**claims, "iss": claims["iss"].upper()}, SECRET
        ),
        "iss with a trailing space": sign(
            hs256, {**claims, "iss": claims["iss"] + " "}, SECRET
        ),
        "iss as a list": sign(hs256, {**claims, "iss": [claims["iss"]]}, SECRET),
        "no iss": sign(hs256, {k: v for k, v in claims.items() if k != "iss"}, SECRET),
        "wrong aud": sign(hs256, {**claims, "aud": "someone-else"}, SECRET),
        "aud of another case": sign(
            hs256, {**claims, "aud": claims["aud"].upper()}, SECRET
        ),
        "aud listing others only": sign(
            hs256, {**claims, "aud": ["someone-else", "another"]}, SECRET
        ),
        "empty aud": sign(hs256, {**claims, "aud": ""}, SECRET),
        "no aud": sign(hs256, {k: v for k, v in claims.items() if k != "aud"}, SECRET),
    }


@pytest.fixture(scope="module")
def victim(server: str) -> dict[str, Any]:
    """The claims of a real access token of the deployment."""
    token, _cookie = session_of(Client(server).register(new_email()))
    return claims_of(token)


def test_a_token_forged_with_our_settings_is_accepted(
    server: str, victim: dict[str, Any]
) -> None:
    """The control: building a token by hand is not what gets the others
    refused."""
    token = sign({"alg": "HS256", **TYP}, victim, SECRET)
    assert Client(server).profile(token).status_code == 200


@pytest.mark.parametrize("case", list(forgeries({"iss": "i", "aud": "a"})))
@pytest.mark.requirement(
    "ASVS-5.0-9.1.2",
    "ASVS-5.0-9.1.3",
    "ASVS-5.0-9.2.3",
    "RFC-8725-3.1",
    "RFC-8725-3.8",
    "RFC-8725-3.9",
)
def test_forged_tokens_are_refused_over_http(
    server: str, victim: dict[str, Any], case: str
) -> None:
    token = forgeries(victim)[case]
    assert_401(Client(server).profile(token), "TOKEN_INVALID")


# -- The token cache still expires -------------------------------------------


@pytest.mark.requirement("ASVS-5.0-9.2.1")
def test_cached_token_is_refused_once_expired(deployment: Deployment) -> None:
    """A token used (and so cached by the worker) while valid is refused
    as soon as the clock passes its ``exp``."""
    server = deployment.url(TOKENAUTH_ACCESS_EXPIRES="2s")
    client = Client(server)
    token, cookie = session_of(client.register(new_email()))
    # On a loaded machine the first use may come after a 2-second token has
    # already expired: take fresh ones until two uses fit in its lifetime.
    for _attempt in range(10):
        if all(client.profile(token).status_code == 200 for _ in range(2)):
            break
        token, cookie = session_of(client.refresh(cookie))
    else:
        pytest.fail("no 2-second token could be used twice before it expired")
    exp = claims_of(token)["exp"]
    deadline = time.monotonic() + 10
    while time.time() < exp + 0.05:  # same clock as the server's
        assert time.monotonic() < deadline, "the clock did not reach exp"
        time.sleep(0.05)
    for _use in range(2):  # the cached entry, then the cold path
        assert_401(client.profile(token), "TOKEN_EXPIRED")


# -- Only a keyed hash of a refresh token is stored --------------------------


def unkeyed_forms(token: str) -> set[str]:
    """The token and what an unkeyed hash of it looks like, in the usual
    encodings."""
    forms = {token}
    for name in ("sha256", "sha512", "sha1", "md5", "sha3_256", "blake2b"):
        digest = hashlib.new(name, token.encode()).digest()
        forms |= {
            digest.hex(),
            digest.hex().upper(),
            base64.b64encode(digest).decode(),
            b64url(digest),
        }
    return forms


def database_text(engine: Engine) -> str:
    """Every value of every row of every table, as one string."""
    metadata = MetaData()
    metadata.reflect(engine)
    cells: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                cells.extend(repr(value) for value in row)
    return "\n".join(cells)


def test_the_database_holds_no_refresh_token_nor_its_unkeyed_hash(
    deployment: Deployment, server: str
) -> None:
    client = Client(server)
    email = new_email()
    cookies = []
    token, cookie = session_of(client.register(email))
    cookies.append(cookie)
    for _ in range(2):
        token, cookie = session_of(client.refresh(cookie))
        cookies.append(cookie)
    token, cookie = session_of(client.login(email))
    cookies.append(cookie)
    dump = database_text(deployment.engine)
    assert email in dump  # the dump does see this test's rows
    for cookie in cookies:
        assert len(cookie) >= 43
        for form in unkeyed_forms(cookie):
            assert form not in dump
    assert token not in dump and PASSWORD not in dump


# -- The refresh cookie's attributes -----------------------------------------


def cookie_of(route: str, client: Client) -> requests.Response:
    email = new_email()
    registered = client.register(email)
    if route == "register":
        return registered
    if route == "login":
        return client.login(email)
    cookie = refresh_cookie(registered)
    if route == "refresh":
        return client.refresh(cookie)
    return client.request("POST", f"{AUTH}/logout", cookie=cookie)


@pytest.mark.parametrize("route", ["register", "login", "refresh", "logout"])
@pytest.mark.requirement("ASVS-5.0-3.3.4", "ASVS-5.0-3.3.2", "NIST-800-63B-4-5.1.1")
def test_refresh_cookie_attributes_over_http(server: str, route: str) -> None:
    """``HttpOnly`` (no script reads it), ``Secure``, ``SameSite=Strict``
    and the blueprint's path only (sent to /refresh and /logout, never to
    the API); the logout's deletion carries the same attributes, or the
    browser would keep the cookie."""
    response = cookie_of(route, Client(server))
    assert response.status_code in (200, 201), response.text
    cookie = the_refresh_cookie(response)
    assert "httponly" in cookie
    assert "secure" in cookie
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == AUTH
    assert "domain" not in cookie
    if route == "logout":
        assert cookie[""] == f"{COOKIE}="
        assert cookie["max-age"] == "0"
    else:
        assert len(cookie[""]) > len(f"{COOKIE}=") + 40
        assert int(cookie["max-age"]) > 6 * 86400  # the 7-day session


# -- The client address behind a proxy ---------------------------------------


@pytest.mark.parametrize(
    ("trusted", "forwarded", "recorded"),
    [
        # One trusted proxy: it appended the address it saw; what the
        # client wrote before it is ignored.
        ("1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("1", "6.6.6.6,203.0.113.8", "203.0.113.8"),
        # No trusted proxy: X-Forwarded-For is the client's own word.
        ("0", "6.6.6.6", "127.0.0.1"),
        ("0", "203.0.113.9, 6.6.6.6", "127.0.0.1"),
    ],
)
@pytest.mark.requirement("ASVS-5.0-4.1.3")
def test_spoofed_forwarded_for_is_not_the_recorded_address(
    deployment: Deployment, trusted: str, forwarded: str, recorded: str
) -> None:
    client = Client(deployment.url(TOKENAUTH_TRUSTED_PROXIES=trusted), forwarded)
    token, _ = session_of(client.register(new_email()))
    [listed] = client.sessions(token)
    assert listed["ipAddress"] == recorded


# -- Rehash on login after a cost change -------------------------------------


@pytest.mark.requirement("ASVS-5.0-11.4.2")
def test_login_rehashes_after_a_cost_change(deployment: Deployment) -> None:
    """A redeploy with a higher bcrypt cost upgrades each hash at its user's
    next login, once, and the password keeps working on both."""
    email = new_email()
    old = Client(deployment.url())
    assert old.register(email).status_code == 201
    before = deployment.password_hash(email)
    assert hash_rounds(before) == 4

    new = Client(deployment.url(TOKENAUTH_BCRYPT_ROUNDS="5"))
    assert new.login(email).status_code == 200
    after = deployment.password_hash(email)
    assert hash_rounds(after) == 5
    assert bcrypt.checkpw(PASSWORD.encode(), after.encode())
    assert new.login(email).status_code == 200
    assert deployment.password_hash(email) == after  # no rehash on every login


# -- Session ownership -------------------------------------------------------


@pytest.mark.parametrize("target", ["the session in use", "another session"])
def test_deleting_another_users_session_is_a_404_and_it_survives(
    server: str, target: str
) -> None:
    owner, stranger = Client(server), Client(server)
    email = new_email()
    token, cookie = session_of(owner.register(email))
    other_token, other_cookie = session_of(owner.login(email))
    listed = owner.sessions(token)
    in_use = claims_of(token)["sid"]
    aimed = in_use if target == "the session in use" else claims_of(other_token)["sid"]
    assert {in_use, aimed} <= {s["id"] for s in listed}
    strangers_token, _ = session_of(stranger.register(new_email()))

    response = stranger.request(
        "DELETE", f"{AUTH}/sessions/{aimed}", token=strangers_token
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "SESSION_NOT_FOUND"
    assert {s["id"] for s in owner.sessions(token)} == {s["id"] for s in listed}
    assert owner.profile(token).status_code == 200
    assert owner.profile(other_token).status_code == 200
    aimed_cookie = cookie if aimed == in_use else other_cookie
    assert owner.refresh(aimed_cookie).status_code == 200


# -- One bcrypt check for an unknown email (example app, in process) --------


def test_unknown_email_costs_one_bcrypt_check_like_a_wrong_password(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through the example app at a cost other than the suite's: the same
    single bcrypt check, at the configured cost, and the same answer."""
    from examples.app import create_app

    monkeypatch.chdir(tmp_path)  # no .env here
    app = create_app(
        {
            "TESTING": True,
            "TOKENAUTH_ACCESS_SECRET": ACCESS_SECRET,
            "TOKENAUTH_REFRESH_SECRET": REFRESH_SECRET,
            "TOKENAUTH_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "TOKENAUTH_REVOCATION": "database",
            "TOKENAUTH_BCRYPT_ROUNDS": 5,
        }
    )
    client = app.test_client()
    body = {"email": "known@example.com", "password": PASSWORD}
    assert client.post(f"{AUTH}/register", json=body).status_code == 201

    checks: list[int | None] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(hash_rounds(hashed.decode()))
        return real_checkpw(password, hashed)

    monkeypatch.setattr(_passwords.bcrypt, "checkpw", counting_checkpw)
    answers = {}
    for email in ("known@example.com", "unknown@example.com"):
        checks.clear()
        response = client.post(
            f"{AUTH}/login", json={"email": email, "password": "wrong password"}
        )
        answers[email] = (response.status_code, response.get_data())
        assert checks == [5], email
    assert answers["known@example.com"] == answers["unknown@example.com"]
    assert answers["unknown@example.com"][0] == 401
