"""Key rotation with a keys directory (``TOKENAUTH_KEYS_DIR``): the
``keys rotate|retire|list`` commands, the reload of the directory by every
process, and a rotation on two gunicorn workers while clients keep calling.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import text

from flask_tokenauth import _keys
from flask_tokenauth._engine import make_engine
from flask_tokenauth._migrate import upgrade
from flask_tokenauth.errors import ConfigurationError
from flask_tokenauth.models import metadata

from .conftest import PASSWORD, REFRESH_SECRET, bearer, service_missing
from .servers import (
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
)
from .test_keys import keyed_app, login  # noqa: F401 (a fixture)

JWKS = "/api/auth/.well-known/jwks.json"


def cli(runner: FlaskCliRunner, directory: Path, *args: str) -> Any:
    return runner.invoke(args=["tokenauth", "keys", *args, "--dir", str(directory)])


def state(directory: Path) -> dict[str, str]:
    keys = json.loads((directory / "keys.json").read_text())["keys"]
    return {kid: entry["state"] for kid, entry in keys.items()}


def kid_in(directory: Path, wanted: str) -> str:
    return next(k for k, s in state(directory).items() if s == wanted)


@pytest.fixture
def runner(make_app: Any) -> FlaskCliRunner:
    """A CLI runner on an HMAC app (the keys commands take --dir)."""
    app: Flask = make_app()
    return app.test_cli_runner()


@pytest.fixture
def keys_dir(tmp_path: Path, runner: FlaskCliRunner) -> Path:
    """A keys directory with one EdDSA signing key."""
    directory = tmp_path / "keys"
    result = cli(runner, directory, "rotate", "--publish")
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
def dir_app(keyed_app: Any, keys_dir: Path) -> Callable[..., Flask]:  # noqa: F811
    """``keyed_app`` (of test_keys) on the keys directory."""

    def factory(**config: Any) -> Flask:
        config.setdefault("TOKENAUTH_KEYS_DIR", str(keys_dir))
        # Every request checks: the tests need no waiting.
        config.setdefault("TOKENAUTH_KEYS_RELOAD_INTERVAL", 0.001)
        app: Flask = keyed_app(**config)
        return app

    return factory


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def profile(app: Flask, token: str) -> int:
    return app.test_client().get("/api/profile", headers=bearer(token)).status_code


@pytest.mark.parametrize(
    "extra",
    [{"TOKENAUTH_SIGNING_KEY": "x"}, {"TOKENAUTH_VERIFY_KEYS": ["x"]}],
    ids=["signing-key", "verify-keys"],
)
def test_keys_dir_is_refused_beside_the_keys_it_replaces(
    dir_app: Any, extra: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="TOKENAUTH_KEYS_DIR replaces"):
        dir_app(**extra)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"keys": {}}', "exactly one signing key"),
        ('{"keys": {"../x": {"state": "signing"}}}', "a kid is"),
        (
            '{"keys": {"nokey": {"state": "signing",'
            ' "created": "2026-01-01T00:00:00Z"}}}',
            "no nokey.pem",
        ),
    ],
)
def test_a_malformed_directory_is_refused_at_start_up(
    dir_app: Any, keys_dir: Path, content: str, message: str
) -> None:
    (keys_dir / "keys.json").write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        dir_app()


def test_a_missing_directory_is_refused_at_start_up(
    dir_app: Any, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="keys rotate --publish"):
        dir_app(TOKENAUTH_KEYS_DIR=str(tmp_path / "none"))


def test_publish_rotate_retire_in_one_process(
    dir_app: Any, keys_dir: Path, runner: FlaskCliRunner
) -> None:
    app = dir_app()
    first = kid_in(keys_dir, "signing")
    old = login(app)
    assert kid_of(old) == first

    assert cli(runner, keys_dir, "rotate", "--publish").exit_code == 0
    second = kid_in(keys_dir, "next")
    jwks = app.test_client().get(JWKS).json
    assert {k["kid"] for k in jwks["keys"]} == {first, second}  # type: ignore[index]
    assert kid_of(login(app)) == first  # a next key does not sign yet

    assert cli(runner, keys_dir, "rotate").exit_code == 0
    assert state(keys_dir) == {first: "previous", second: "signing"}
    new = login(app)
    assert kid_of(new) == second
    assert profile(app, old) == 200  # the previous key still verifies

    # It signed a moment ago: its tokens are still valid.
    refused = cli(runner, keys_dir, "retire", first)
    assert refused.exit_code != 0
    assert "--force" in refused.output
    assert profile(app, old) == 200

    assert cli(runner, keys_dir, "retire", first, "--force").exit_code == 0
    assert profile(app, old) == 401
    assert profile(app, new) == 200
    jwks = app.test_client().get(JWKS).json
    assert [k["kid"] for k in jwks["keys"]] == [second]  # type: ignore[index]


def generate_kid_beginning_with(prefix: str) -> Callable[[str], Any]:
    """``_keys.generate`` that draws keys until one's kid (its RFC 7638
    thumbprint) begins with ``prefix``: a 1-in-64 chance for one character,
    so the first few hundred draws find one."""
    real = _keys.generate

    def generate(algorithm: str) -> Any:
        for _ in range(20_000):
            private = real(algorithm)
            pem = _keys.private_pem(private)
            if _keys.SigningKey.load(pem, "test").kid.startswith(prefix):
                return private
        raise AssertionError(f"no kid beginning with {prefix!r}")

    return generate


@pytest.mark.parametrize(
    "words",
    [
        ("retire", "{kid}", "--force", "--dir", "{dir}"),
        ("retire", "--force", "{kid}", "--dir", "{dir}"),
        ("retire", "--dir", "{dir}", "--force", "{kid}"),
        ("retire", "--dir={dir}", "--force", "--", "{kid}"),
    ],
    ids=["kid-first", "force-first", "dir-first", "separator"],
)
def test_a_kid_that_begins_with_a_dash_is_retired(
    dir_app: Any,
    tmp_path: Path,
    runner: FlaskCliRunner,
    monkeypatch: pytest.MonkeyPatch,
    words: tuple[str, ...],
) -> None:
    """A base64url thumbprint can begin with '-': ``keys retire KID`` takes
    it as the kid, not as an option, wherever it stands; ``--`` works too."""
    monkeypatch.setattr(_keys, "generate", generate_kid_beginning_with("-"))
    directory = tmp_path / "dashed"
    assert cli(runner, directory, "rotate", "--publish").exit_code == 0
    first = kid_in(directory, "signing")
    assert first.startswith("-")
    app = dir_app(TOKENAUTH_KEYS_DIR=str(directory))
    old = login(app)
    assert cli(runner, directory, "rotate", "--publish").exit_code == 0
    assert cli(runner, directory, "rotate").exit_code == 0
    assert profile(app, old) == 200

    refused = cli(runner, directory, "retire", first)
    assert refused.exit_code != 0
    assert "--force" in refused.output  # it found the key: only too soon
    args = [w.format(kid=first, dir=directory) for w in words]
    result = runner.invoke(args=["tokenauth", "keys", *args])
    assert result.exit_code == 0, result.output
    assert f"Retired {first}." in result.output
    assert state(directory)[first] == "retired"
    assert profile(app, old) == 401


def test_retire_names_the_kids_it_knows(keys_dir: Path, runner: FlaskCliRunner) -> None:
    result = cli(runner, keys_dir, "retire", "-nosuchkid")
    assert result.exit_code != 0
    assert "No key '-nosuchkid'" in result.output
    assert kid_in(keys_dir, "signing") in result.output


def test_retire_refuses_the_signing_key_and_rotate_needs_a_next_key(
    keys_dir: Path, runner: FlaskCliRunner
) -> None:
    signing = kid_in(keys_dir, "signing")
    result = cli(runner, keys_dir, "retire", signing)
    assert result.exit_code != 0
    assert "is the signing key" in result.output
    result = cli(runner, keys_dir, "rotate")
    assert result.exit_code != 0
    assert "keys rotate --publish" in result.output
    assert state(keys_dir) == {signing: "signing"}


def test_list_shows_kid_alg_state_and_created(
    keys_dir: Path, runner: FlaskCliRunner
) -> None:
    cli(runner, keys_dir, "rotate", "--publish", "--alg", "ES256")
    result = cli(runner, keys_dir, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert f"{kid_in(keys_dir, 'signing')}  EdDSA  signing  created 20" in lines[0]
    assert f"{kid_in(keys_dir, 'next')}  ES256  next  created 20" in lines[1]


def test_a_malformed_reload_keeps_the_keys_and_logs(
    dir_app: Any,
    keys_dir: Path,
    runner: FlaskCliRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = dir_app()
    token = login(app)
    good = (keys_dir / "keys.json").read_text()
    (keys_dir / "keys.json").write_text('{"keys": {}}')
    with caplog.at_level(logging.ERROR, "flask_tokenauth"):
        assert profile(app, token) == 200
        assert kid_of(login(app)) == kid_of(token)
    assert "keeping the current keys" in caplog.text
    assert "exactly one signing key" in caplog.text
    # Fixed, it is read again.
    (keys_dir / "keys.json").write_text(good)
    assert cli(runner, keys_dir, "rotate", "--publish").exit_code == 0
    assert len(app.test_client().get(JWKS).json["keys"]) == 2  # type: ignore[index]


# --- A rotation on two gunicorn workers while clients keep calling ----------

#: How often each worker looks at the directory.
RELOAD_INTERVAL = 0.2
CLIENTS = 4
REQUEST_TIMEOUT = 10.0
#: Bounds of the whole rotation test.
ROTATION_TIMEOUT = 120.0
#: Fresh connections in a row that must all show a new state: gunicorn
#: cannot be asked for one worker, the kernel hands each connection to one.
STREAK = 20


def run_cli(directory: Path, *args: str) -> str:
    from click.testing import CliRunner

    from flask_tokenauth.cli import tokenauth_cli

    result = CliRunner().invoke(tokenauth_cli, ["keys", *args, "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    return result.output


def published(url: str) -> set[str]:
    response = requests.get(
        f"{url}{JWKS}", headers={"Connection": "close"}, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code == 200
    return {k["kid"] for k in response.json()["keys"]}


def wait_for_jwks(url: str, kids: set[str], deadline: float) -> None:
    """Wait the reload interval (after it, every worker reads the new state
    at its next request), then until ``STREAK`` fresh connections in a row
    publish exactly ``kids``."""
    time.sleep(RELOAD_INTERVAL)
    streak = 0
    while streak < STREAK:
        assert time.monotonic() < deadline, f"JWKS never showed {kids}"
        streak = streak + 1 if published(url) == kids else 0


class Caller(threading.Thread):
    """One client: logs in, then refreshes and calls the protected endpoint
    with each fresh token, until told to stop (or a bound is reached)."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = stop
        self.failures: list[str] = []
        self.kids: list[str] = []
        self.calls = 0
        #: Set once the client has used a token of ``self.wanted``.
        self.wanted: str | None = None
        self.seen_wanted = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # reported by the test, not lost in a thread
            self.failures.append(repr(e))

    def _run(self) -> None:
        email = f"rot-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": PASSWORD}
        response = requests.post(
            f"{self.url}/api/auth/register", json=body, timeout=REQUEST_TIMEOUT
        )
        assert response.status_code == 201, response.text
        cookie = response.cookies["refresh_token"]
        started = time.monotonic()
        while not self.stop.is_set() and self.calls < 5000:
            if time.monotonic() - started > ROTATION_TIMEOUT:
                break
            response = requests.post(
                f"{self.url}/api/auth/refresh",
                headers={"Cookie": f"refresh_token={cookie}"},
                timeout=REQUEST_TIMEOUT,
            )
            if response.status_code != 200:
                self.failures.append(f"refresh {response.status_code} {response.text}")
                return
            cookie = response.cookies["refresh_token"]
            token = response.json()["accessToken"]
            kid = kid_of(token)
            self.kids.append(kid)
            response = requests.get(
                f"{self.url}/api/profile",
                headers={"Authorization": f"Bearer {token}"},
                timeout=REQUEST_TIMEOUT,
            )
            self.calls += 1
            if response.status_code != 200:
                self.failures.append(f"profile {response.status_code} {response.text}")
                return
            if kid == self.wanted:
                self.seen_wanted.set()


@pytest.fixture
def rotating_server(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    engine = make_engine(postgres_url, {})
    upgrade(engine)
    directory = tmp_path / "keys"
    run_cli(directory, "rotate", "--publish")
    env = server_environment(
        TOKENAUTH_KEYS_DIR=str(directory),
        TOKENAUTH_KEYS_RELOAD_INTERVAL=str(RELOAD_INTERVAL),
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=postgres_url,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        TOKENAUTH_COOKIE_SECURE="false",
        TOKENAUTH_RATELIMIT_ENABLED="false",
        TOKENAUTH_REVOCATION="database",
    )
    workdir = tmp_path / "server"
    workdir.mkdir()
    command = [
        gunicorn,
        *gunicorn_options(gunicorn, threads=4, workers=2),
        "examples.app:create_app()",
    ]
    with running_server("rotate", command, env, workdir) as server:
        yield server.url, directory
        with engine.begin() as conn:
            names = ", ".join(table.name for table in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        engine.dispose()


@pytest.mark.slow
def test_rotation_on_two_workers_refuses_no_request(
    rotating_server: tuple[str, Path],
) -> None:
    url, directory = rotating_server
    deadline = time.monotonic() + ROTATION_TIMEOUT
    first = kid_in(directory, "signing")
    wait_for_jwks(url, {first}, deadline)
    body = {"email": f"old-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    response = requests.post(f"{url}/api/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    old_token = response.json()["accessToken"]
    assert kid_of(old_token) == first

    stop = threading.Event()
    callers = [Caller(url, stop) for _ in range(CLIENTS)]
    for caller in callers:
        caller.start()
    try:
        # 1. Publish the next key: every worker accepts and publishes it.
        run_cli(directory, "rotate", "--publish")
        second = kid_in(directory, "next")
        wait_for_jwks(url, {first, second}, deadline)
        # 2. Sign with it.
        for caller in callers:
            caller.wanted = second
        run_cli(directory, "rotate")
        wait_for_jwks(url, {first, second}, deadline)
        # Every client has used a token of the new key: no token of the old
        # one is left in flight.
        for caller in callers:
            remaining = deadline - time.monotonic()
            assert caller.seen_wanted.wait(max(remaining, 0)), caller.failures
        # 3. Retire the previous key (--force: the server's tokens live 15
        # minutes; the clients above hold none of the old key).
        run_cli(directory, "retire", first, "--force")
        wait_for_jwks(url, {second}, deadline)
        calls_after = [caller.calls for caller in callers]
        kids_after = [len(caller.kids) for caller in callers]
        # A few more rounds of every client on the retired state.
        for caller, before in zip(callers, calls_after, strict=True):
            while caller.calls < before + 3 and caller.is_alive():
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=REQUEST_TIMEOUT * 3)

    assert [c.failures for c in callers] == [[]] * CLIENTS
    assert all(c.calls > 0 for c in callers)
    for caller, seen in zip(callers, kids_after, strict=True):
        # While the workers reload, one may still sign with the old key,
        # the other with the new: both accept both.  Once retired, every
        # token is of the new key.
        assert set(caller.kids[seen:]) == {second}
    # The retired key's token is refused by whichever worker gets it.
    for _ in range(STREAK):
        response = requests.get(
            f"{url}/api/profile",
            headers={"Authorization": f"Bearer {old_token}", "Connection": "close"},
            timeout=REQUEST_TIMEOUT,
        )
        assert response.status_code == 401, response.text
