"""Schemathesis against the example app under gunicorn on PostgreSQL: every
operation of the served description fuzzed, then the stateful phase that
follows its OpenAPI links (register, login, refresh, logout; the sessions).

Run it with ``make fuzz`` (CI: ``make test`` runs it), or
``.venv/bin/python -m tests.fuzz [schemathesis options...]``; extra options
are passed on to ``schemathesis run`` (``--max-examples 5`` for a quick
look, ``--include-operation-id login`` for one operation).

What it does, in order, each step undone on the way out however it ends:

1. a throwaway PostgreSQL database on ``TEST_POSTGRES_URL``
   (:func:`tests.conftest.throwaway_database`), migrated by the CLI a host
   runs (``flask tokenauth db upgrade``);
2. ``examples.app`` under gunicorn, 2 workers, on a free 127.0.0.1 port,
   configured through its environment only (:data:`SETTINGS`: every flow of
   :data:`tests.openapi_helpers.FULL_CONFIG` on, fresh secrets), from an
   empty working directory, so no ``.env`` of the checkout is read;
3. ``schemathesis run <server>/api/auth/openapi.json`` with the repository's
   ``schemathesis.toml`` (the checks, the bounds, the seed: see there), its
   reports (JUnit, NDJSON) written to ``FUZZ_REPORT_DIR`` (default
   ``build/fuzz``);
4. gunicorn stopped by its PID, the database dropped.

The exit status is schemathesis's: 0 when no check failed.  Without
PostgreSQL or gunicorn the run is skipped (status 0, saying why), unless
``REQUIRE_SERVICES=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from .conftest import POSTGRES_URL, throwaway_database
from .openapi_helpers import FULL_CONFIG
from .servers import (
    ROOT,
    gunicorn_options,
    gunicorn_path,
    running_server,
    server_environment,
)

APP = "examples.app:create_app()"
#: A hard stop for schemathesis, far above a normal run (about 3 minutes on
#: a loaded 2-core box): a hung run fails CI instead of blocking it.
TIMEOUT = 15 * 60
#: High enough that no limit is reached in a run: a limit spent early would
#: turn the rest of the run into 429s that never reach the views, and the
#: fuzzer is one client address.  (429 stays described, for the operations
#: that have a limit; the limits themselves are tested in
#: tests/test_ratelimit.py and tests/test_lockout.py.)
UNLIMITED = "100000/minute"

#: The example app's environment for the run, besides its secrets and
#: database: every flow on, as in the description's tests.
SETTINGS: dict[str, str] = {
    **{
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in FULL_CONFIG.items()
    },
    # http://127.0.0.1: a Secure cookie would never come back to /refresh.
    "TOKENAUTH_COOKIE_SECURE": "false",
    # The cheapest cost bcrypt allows: thousands of hashes in a run; the
    # cost of a real one is measured in benchmarks/, not here.
    "TOKENAUTH_BCRYPT_ROUNDS": "4",
    **{
        f"TOKENAUTH_RATELIMIT_{name}": UNLIMITED
        for name in (
            "REGISTER",
            "LOGIN",
            "REFRESH",
            "LOGIN_FAILURES",
            "ACCOUNT_FAILURES",
            "MAIL",
        )
    },
}


def environment(database_url: str) -> dict[str, str]:
    """The example app's environment: the tutorial's names for the database
    and fresh secrets, then :data:`SETTINGS`."""
    return server_environment(
        DATABASE_URL=database_url,
        ACCESS_TOKEN_SECRET=secrets.token_urlsafe(48),
        REFRESH_TOKEN_SECRET=secrets.token_urlsafe(48),
        **SETTINGS,
    )


def migrate(env: dict[str, str], workdir: Path) -> None:
    """``flask tokenauth db upgrade``, as a host deploys."""
    flask = str(Path(sys.executable).with_name("flask"))
    subprocess.run(
        [flask, "--app", APP, "tokenauth", "db", "upgrade"],
        cwd=workdir,
        env=env,
        check=True,
        timeout=120,
    )


def fuzz_account(url: str) -> dict[str, str]:
    """A user the fuzzer logs in as (``[auth.dynamic.openapi]`` of
    ``schemathesis.toml``, again after any 401: the fuzzer logs itself out),
    so that the operations behind a token are fuzzed past the token check;
    its address and password, as ``FUZZ_EMAIL`` and ``FUZZ_PASSWORD``."""
    account = {"email": "fuzz@example.com", "password": secrets.token_urlsafe(24)}
    response = requests.post(f"{url}/api/auth/register", json=account, timeout=30)
    response.raise_for_status()
    return {"FUZZ_EMAIL": account["email"], "FUZZ_PASSWORD": account["password"]}


def schemathesis(url: str, arguments: list[str]) -> int:
    """``schemathesis run`` against ``url``, logged in as :func:`fuzz_account`;
    its exit status."""
    reports = Path(os.environ.get("FUZZ_REPORT_DIR", ROOT / "build" / "fuzz"))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{url}/api/auth/openapi.json",
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(reports),
        *arguments,
    ]
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    try:
        env = {**os.environ, **fuzz_account(url)}
        return subprocess.run(command, cwd=ROOT, env=env, timeout=TIMEOUT).returncode
    finally:
        print(f"schemathesis: {time.monotonic() - started:.0f} s", flush=True)


def service_missing(reason: str) -> int:
    """Skip locally (status 0, saying why), fail in CI (``REQUIRE_SERVICES=1``,
    set by ``.ci/run``), as the test suite does."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        print(f"{reason} (REQUIRE_SERVICES=1)", file=sys.stderr)
        return 2
    print(f"{reason}: fuzzing skipped", file=sys.stderr)
    return 0


def main(arguments: list[str]) -> int:
    gunicorn = gunicorn_path()
    if gunicorn is None:
        return service_missing("gunicorn is not installed")
    with ExitStack() as stack:
        try:
            database_url = stack.enter_context(
                throwaway_database(POSTGRES_URL, "tokenauth_fuzz_")
            )
        except Exception as e:
            return service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {e}")
        workdir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenauth-fuzz-"))
        )
        env = environment(database_url)
        migrate(env, workdir)
        command = [gunicorn, *gunicorn_options(gunicorn, threads=4, workers=2), APP]
        with running_server("fuzz", command, env, workdir) as server:
            print(f"example app: {server.url} (pid {server.process.pid})", flush=True)
            status = schemathesis(server.url, arguments)
        if status:
            print(f"--- gunicorn log (tail):\n{server.log_tail()}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
