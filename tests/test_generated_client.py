"""A client generated from the served description works against the real
app: the proof that the document is usable, not merely valid.

The example app runs in gunicorn (SQLite, configured from the environment
as a deployment is); ``openapi-python-client`` generates a Python package
from the ``openapi.json`` that server answers, offline (a local file, and
every proxy variable pointing at a closed port, so that a fetch would
fail), into ``tmp_path``; the test imports that package and, only through
it, registers, logs in, lists the sessions with the Bearer token,
refreshes with the refresh cookie of the client's jar, logs out, and reads
a wrong password's typed error.

The generated client raises on any status the document does not list
(``raise_on_unexpected_status``), so every answer of the flow is checked
against the description too.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.cookiejar import CookieJar
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

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

pytestmark = pytest.mark.slow

PACKAGE = "tokenauth_generated_client"
COOKIE = "refresh_token"
#: What the generator cannot read in a valid OpenAPI 3.1 document, and
#: leaves out (it still generates the operation): a response of a media
#: type it has no model for.  ``GET /client.d.ts`` answers
#: ``application/typescript``; the generator knows JSON, text/*, binary and
#: multipart only.  Anything else it warns about fails the test.
KNOWN_WARNINGS = (re.compile(r"Unsupported content_type application/typescript"),)
GENERATE_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example app in gunicorn on its own SQLite database: its URL."""
    gunicorn = gunicorn_path()
    if gunicorn is None:
        service_missing("gunicorn is not installed")
    assert gunicorn is not None
    workdir = tmp_path_factory.mktemp("generated-client")
    url = f"sqlite:///{workdir / 'app.sqlite3'}"
    engine = make_engine(url, {})
    upgrade(engine)
    engine.dispose()
    env = server_environment(
        TOKENAUTH_ACCESS_SECRET=ACCESS_SECRET,
        TOKENAUTH_REFRESH_SECRET=REFRESH_SECRET,
        TOKENAUTH_DATABASE_URL=url,
        TOKENAUTH_BCRYPT_ROUNDS="4",
        # Plain http on 127.0.0.1: a Secure cookie would never be sent back.
        TOKENAUTH_COOKIE_SECURE="false",
    )
    command = [gunicorn, *gunicorn_options(gunicorn), "examples.app:create_app()"]
    server = start_server("generated-client", command, env, workdir)
    try:
        wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        yield server.url
    finally:
        stop_server(server)


def _generator() -> str:
    beside = Path(sys.executable).with_name("openapi-python-client")
    if not beside.exists():
        service_missing("openapi-python-client is not installed (extra 'test')")
    return str(beside)


def _offline_environment() -> dict[str, str]:
    """This environment with every proxy at a closed port: the generator
    reads a local file, and any download it tried would fail."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    closed = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed, NO_PROXY="")
    return env


def generate(document: Path, into: Path) -> tuple[Path, str]:
    """Generate the client package of ``document`` in ``into``; its path
    and the generator's output."""
    config = into / "generator.yaml"
    # No post hooks: they run ruff over the output (slow, and not needed to
    # import it).
    config.write_text("post_hooks: []\n")
    package = into / PACKAGE
    result = subprocess.run(
        [
            _generator(),
            "generate",
            f"--path={document}",
            f"--output-path={package}",
            "--meta=none",
            f"--config={config}",
        ],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT,
        env=_offline_environment(),
        cwd=into,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return package, output


def unknown_warnings(output: str) -> list[str]:
    """The generator's warnings (one block each, from ``WARNING`` to the
    next blank-line-separated ``WARNING`` or the end) that
    :data:`KNOWN_WARNINGS` does not explain."""
    blocks = re.split(r"\n(?=WARNING )", output)
    return [
        block
        for block in blocks
        if block.lstrip().startswith("WARNING")
        and not any(known.search(block) for known in KNOWN_WARNINGS)
    ]


@pytest.fixture(scope="module")
def api(
    example_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The package generated from the running server's description,
    imported (and unloaded afterwards)."""
    workdir = tmp_path_factory.mktemp("client-package")
    response = requests.get(f"{example_server}/api/auth/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    document = workdir / "openapi.json"
    document.write_bytes(response.content)
    package, output = generate(document, workdir)
    assert (package / "__init__.py").is_file(), output
    assert unknown_warnings(output) == []
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(api: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{api.__name__}.{name}")


@pytest.fixture
def clients() -> Iterator[ExitStack]:
    """Closes the generated clients (their httpx connections) a test opens."""
    with ExitStack() as stack:
        yield stack


def test_generated_client_signs_in_refreshes_and_logs_out(
    api: ModuleType, example_server: str, clients: ExitStack
) -> None:
    register = _module(api, "api.auth.register")
    login = _module(api, "api.auth.login")
    refresh = _module(api, "api.auth.refresh")
    logout = _module(api, "api.auth.logout")
    list_sessions = _module(api, "api.sessions.list_sessions")
    models = _module(api, "models")

    # One cookie jar for the anonymous and the authenticated client: the
    # generated clients hand it to httpx, which keeps (not copies) a
    # CookieJar it is given.
    jar = CookieJar()

    def refresh_cookie() -> str | None:
        values = [c.value for c in jar if c.name == COOKIE]
        assert len(values) <= 1, values
        return values[0] if values else None

    anonymous = clients.enter_context(
        api.Client(
            base_url=example_server, cookies=jar, raise_on_unexpected_status=True
        )
    )
    email = "generated@example.com"

    registered = register.sync_detailed(
        client=anonymous, body=models.RegisterBody(email=email, password=PASSWORD)
    )
    assert registered.status_code == 201
    assert isinstance(registered.parsed, models.Session)
    assert registered.parsed.user.email == email
    assert refresh_cookie() is not None

    session = login.sync(
        client=anonymous, body=models.LoginBody(email=email, password=PASSWORD)
    )
    assert isinstance(session, models.Session), session
    assert session.user.id == registered.parsed.user.id
    login_cookie = refresh_cookie()
    assert login_cookie is not None

    user = clients.enter_context(
        api.AuthenticatedClient(
            base_url=example_server,
            token=session.access_token,
            cookies=jar,
            raise_on_unexpected_status=True,
        )
    )
    listed = list_sessions.sync(client=user)
    assert isinstance(listed, models.ListSessionsResponse200), listed
    assert len(listed.sessions) == 2  # the registration's and the login's
    assert [s.current for s in listed.sessions].count(True) == 1

    # The refresh reads the cookie from the jar, and the jar takes its
    # successor.
    renewed = refresh.sync(client=user)
    assert isinstance(renewed, models.AccessToken), renewed
    assert renewed.access_token != session.access_token
    assert refresh_cookie() not in (None, login_cookie)
    again = clients.enter_context(
        api.AuthenticatedClient(
            base_url=example_server,
            token=renewed.access_token,
            raise_on_unexpected_status=True,
        )
    )
    assert isinstance(list_sessions.sync(client=again), models.ListSessionsResponse200)

    out = logout.sync_detailed(client=user)
    assert out.status_code == 200
    assert refresh_cookie() is None
    refused = refresh.sync(client=user)
    assert isinstance(refused, models.RefreshResponse401), refused
    assert refused.code == models.RefreshResponse401Code.REFRESH_TOKEN_MISSING


def test_generated_client_types_a_wrong_password(
    api: ModuleType, example_server: str, clients: ExitStack
) -> None:
    """The 401 is a model of its own (the document narrows ``Error``'s
    ``code`` to the operation's codes, which the generator makes an enum),
    that reads as the shared ``Error`` model too."""
    login = _module(api, "api.auth.login")
    models = _module(api, "models")
    client = clients.enter_context(
        api.Client(base_url=example_server, raise_on_unexpected_status=True)
    )
    answer = login.sync_detailed(
        client=client,
        body=models.LoginBody(email="nobody@example.com", password="not the password"),
    )
    assert answer.status_code == 401
    refused = answer.parsed
    assert isinstance(refused, models.LoginResponse401), refused
    assert refused.code is models.LoginResponse401Code.INVALID_CREDENTIALS
    error = models.Error.from_dict(refused.to_dict())
    assert error.code == "INVALID_CREDENTIALS"
    assert error.error
