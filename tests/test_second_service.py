"""examples/second_service: another service verifies our access tokens with
the main app's JWKS URL only, also across a key rotation done by
configuration (docs/signing-keys.md). Both apps run in gunicorn."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519

from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade

from .conftest import PASSWORD, REFRESH_SECRET, bearer, service_missing
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
from .test_keys import pem, public_pem

JS_DIR = Path(__file__).resolve().parent / "js"
EMAIL = "second@example.com"
ISSUER = "flask-tokenauth"
AUDIENCE = "flask-tokenauth-client"
#: JWKS cache lifespans of the two second services: one that keeps the key
#: set for the whole test (a new key reaches it only by the refetch on an
#: unknown ``kid``), one whose cached set expires quickly (how long a retired
#: key is still trusted: docs/signing-keys.md's step 3 waits for this).
CACHE_SECONDS = {"patient": 3600.0, "brief": 1.0}


def free_port() -> int:
    """A port for the main app that stays the same across its restarts (the
    second service is configured with its URL once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Deployment:
    """The main app (restartable with other keys) and the second service."""

    gunicorn: str
    workdir: Path
    port: int
    database_url: str
    main: Server | None = None
    services: dict[str, Server] = field(default_factory=dict)
    restarts: list[int] = field(default_factory=lambda: [0])

    def start_main(self, signing: Any, verify: list[Any] | None = None) -> None:
        if self.main is not None:
            stop_server(self.main)
        self.restarts[0] += 1
        options = [
            o
            for o in gunicorn_options(self.gunicorn, threads=2)
            if not o.startswith("--bind")
        ]
        env = server_environment(
            TOKENAUTH_SIGNING_KEY=pem(signing),
            TOKENAUTH_VERIFY_KEYS="".join(public_pem(k) for k in verify or []),
            TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
            TOKENAUTH_DATABASE_URL=self.database_url,
            TOKENAUTH_BCRYPT_ROUNDS="4",
            TOKENAUTH_COOKIE_SECURE="false",
            TOKENAUTH_RATELIMIT_ENABLED="false",
        )
        command = [
            self.gunicorn,
            *options,
            f"--bind=127.0.0.1:{self.port}",
            "examples.app:create_app()",
        ]
        name = f"main-{self.restarts[0]}"
        self.main = start_server(name, command, env, self.workdir)
        wait_until_ready([self.main], time.monotonic() + START_TIMEOUT)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/auth/.well-known/jwks.json"

    def login(self) -> str:
        assert self.main is not None
        response = requests.post(
            f"{self.main.url}/api/auth/login",
            json={"email": EMAIL, "password": PASSWORD},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["accessToken"])

    def whoami(
        self, token: str, service: str = "patient"
    ) -> tuple[int, dict[str, Any]]:
        url = self.services[service].url
        response = requests.get(f"{url}/api/whoami", headers=bearer(token), timeout=10)
        assert response.headers["Content-Type"] == "application/json"
        return response.status_code, response.json()


@pytest.fixture(scope="module")
def keys() -> list[ed25519.Ed25519PrivateKey]:
    return [ed25519.Ed25519PrivateKey.generate() for _ in range(3)]


@pytest.fixture(scope="module")
def deployment(
    keys: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        pytest.skip("gunicorn is not installed")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("second_service")
    url = f"sqlite:///{workdir / 'main.sqlite3'}"
    engine = make_engine(url, {})
    upgrade(engine)
    engine.dispose()
    deployment = Deployment(gunicorn, workdir, free_port(), url)
    try:
        deployment.start_main(keys[0])
        response = requests.post(
            f"{deployment.main.url}/api/auth/register",  # type: ignore[union-attr]
            json={"email": EMAIL, "password": PASSWORD},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        command = [
            gunicorn,
            *gunicorn_options(gunicorn, threads=2),
            "examples.second_service.app:create_app()",
        ]
        for name, seconds in CACHE_SECONDS.items():
            env = server_environment(
                JWKS_URL=deployment.jwks_url,
                TOKEN_ALGORITHMS="EdDSA",
                JWKS_CACHE_SECONDS=str(seconds),
                JWKS_REFETCH_COOLDOWN="0",
            )
            deployment.services[name] = start_server(name, command, env, workdir)
        services = list(deployment.services.values())
        wait_until_ready(services, time.monotonic() + START_TIMEOUT)
        yield deployment
    finally:
        for server in [deployment.main, *deployment.services.values()]:
            if server is not None:
                stop_server(server)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        **extra,
    }


def forgeries(token: str, real_key: Any) -> dict[str, str]:
    """Tokens the second service must refuse; the first ones are signed by
    the real key, to show which check refuses them."""
    kid = jwt.get_unverified_header(token)["kid"]
    headers = {"kid": kid, "typ": "at+jwt"}
    other = ed25519.Ed25519PrivateKey.generate()
    body = b64(json.dumps(claims()).encode())

    def raw(header: dict[str, Any], secret: bytes | None) -> str:
        signing_input = f"{b64(json.dumps(header).encode())}.{body}"
        signature = b""
        if secret is not None:
            signature = hmac.new(
                secret, signing_input.encode(), hashlib.sha256
            ).digest()
        return f"{signing_input}.{b64(signature)}"

    def signed(key: Any, extra_claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims(**extra_claims), key, algorithm="EdDSA", headers=header
        )

    public = public_pem(real_key).encode()
    return {
        "other key, same kid": signed(other, {}, **headers),
        "alg none": raw({**headers, "alg": "none"}, None),
        "HMAC with the public key": raw({**headers, "alg": "HS256"}, public),
        "unknown kid": signed(real_key, {}, kid="no-such-kid", typ="at+jwt"),
        "no typ": signed(real_key, {}, kid=kid),
        "wrong issuer": signed(real_key, {"iss": "evil"}, **headers),
        "wrong audience": signed(real_key, {"aud": "other-api"}, **headers),
        "tampered": token[: token.rindex(".")] + "." + b64(b"x" * 64),
        "garbage": "not.a.token",
    }


def test_a_logged_in_users_token_is_accepted(deployment: Deployment) -> None:
    token = deployment.login()
    assert deployment.whoami(token) == (200, {"sub": "1"})


def test_no_token_is_refused(deployment: Deployment) -> None:
    url = deployment.services["patient"].url
    response = requests.get(f"{url}/api/whoami", timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"


def test_forged_tokens_are_refused(deployment: Deployment, keys: list[Any]) -> None:
    token = deployment.login()
    for name, forged in forgeries(token, keys[0]).items():
        status, body = deployment.whoami(forged)
        assert (status, body.get("code")) == (401, "TOKEN_INVALID"), name


def test_an_expired_token_is_refused(deployment: Deployment, keys: list[Any]) -> None:
    kid = jwt.get_unverified_header(deployment.login())["kid"]
    past = int(time.time()) - 3600
    expired = jwt.encode(
        claims(iat=past, exp=past + 60),
        keys[0],
        algorithm="EdDSA",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    status, body = deployment.whoami(expired)
    assert (status, body["code"]) == (401, "TOKEN_EXPIRED")


def node_verify(deployment: Deployment, token: str) -> tuple[int, str]:
    """docs/signing-keys.md's Node snippet (tests/js/verify-jwks.mjs, the ``jose``
    package) run against the main app's JWKS URL."""
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "jose").is_dir():
        service_missing("node or jose (tests/js, `make js`) is not installed")
    assert node is not None
    result = subprocess.run(
        [node, "verify-jwks.mjs", deployment.jwks_url, token],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_node_snippet_verifies_with_the_jwks_url(
    deployment: Deployment, keys: list[Any]
) -> None:
    token = deployment.login()
    code, output = node_verify(deployment, token)
    assert code == 0, output
    assert json.loads(output)["sub"] == "1"
    for name, forged in forgeries(token, keys[0]).items():
        code, output = node_verify(deployment, forged)
        assert code == 1, name
        assert output.startswith("ERR_"), (name, output)


def test_rotation_by_configuration(deployment: Deployment, keys: list[Any]) -> None:
    """docs/signing-keys.md's rotation, seen from the second services: after step 2
    they accept tokens of both keys (the patient one learns the new ``kid`` by
    refetching the JWKS); after step 3 the old key's tokens are refused once a
    service's cached key set has expired, the new key's still accepted."""
    old_token = deployment.login()
    for service in CACHE_SECONDS:
        assert deployment.whoami(old_token, service)[0] == 200

    # Step 2: sign with the next key; the previous one still verifies.
    deployment.start_main(keys[1], verify=[keys[0]])
    new_token = deployment.login()
    assert (
        jwt.get_unverified_header(new_token)["kid"]
        != (jwt.get_unverified_header(old_token)["kid"])
    )
    for service in CACHE_SECONDS:
        assert deployment.whoami(new_token, service) == (200, {"sub": "1"})
        assert deployment.whoami(old_token, service) == (200, {"sub": "1"})

    # Step 3: retire the previous key.
    deployment.start_main(keys[1])
    deadline = time.monotonic() + CACHE_SECONDS["brief"] + 15
    while deployment.whoami(old_token, "brief")[0] == 200:
        assert time.monotonic() < deadline, "the retired key is still trusted"
        time.sleep(0.1)
    status, body = deployment.whoami(old_token, "brief")
    assert (status, body["code"]) == (401, "TOKEN_INVALID")
    for service in CACHE_SECONDS:
        assert deployment.whoami(new_token, service) == (200, {"sub": "1"})
    # Until its cached set expires, a verifier still trusts the retired key:
    # why step 3 waits (an access-token lifetime, longer than the JWKS max-age).
    assert deployment.whoami(old_token, "patient")[0] == 200
    # The main app refuses it at once.
    assert deployment.main is not None
    profile = f"{deployment.main.url}/api/profile"
    old = requests.get(profile, headers=bearer(old_token), timeout=10)
    assert old.status_code == 401
    new = requests.get(profile, headers=bearer(new_token), timeout=10)
    assert new.status_code == 200
