"""Real server processes for the tests: the example app (or a variant of it)
in its own gunicorn process, configured through the environment only and run
from an empty working directory, so that no ``.env`` of the checkout is read.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
#: Variables of the outer environment that the example app would read.
APP_VARIABLES = {
    "DATABASE_URL",
    "ACCESS_TOKEN_SECRET",
    "REFRESH_TOKEN_SECRET",
    "ACCESS_TOKEN_EXPIRES_IN",
    "REFRESH_TOKEN_EXPIRES_IN",
}


def server_environment(**variables: str) -> dict[str, str]:
    """This process's environment without the app's own variables, with the
    checkout on ``PYTHONPATH`` (for ``examples.app``) and ``variables``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOKENAUTH_") and k not in APP_VARIABLES
    }
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    env.update(variables)
    return env


def gunicorn_path() -> str | None:
    beside = Path(sys.executable).with_name("gunicorn")
    return str(beside) if beside.exists() else shutil.which("gunicorn")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def gunicorn_options(gunicorn: str, threads: int = 4, workers: int = 1) -> list[str]:
    options = [
        f"--workers={workers}",
        f"--threads={threads}",
        # Port 0: the kernel picks a free one, read back from the log.
        "--bind=127.0.0.1:0",
        "--graceful-timeout=3",
        "--timeout=30",
    ]
    usage = subprocess.run(
        [gunicorn, "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    if "--no-control-socket" in usage:
        # Gunicorn 24+ opens ~/.gunicorn/gunicorn.ctl, one path for both
        # servers: not wanted here.
        options.append("--no-control-socket")
    return options


def start_server(
    name: str, command: list[str], env: dict[str, str], workdir: Path
) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=workdir,  # no .env here
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for the cleanup
        )
    return Server(name, process, log)


def stop_server(server: Server) -> None:
    """Terminate the gunicorn master, which stops its worker; if it does not
    stop in time, kill its process group (the master is still alive then, so
    the group id is still ours)."""
    process = server.process
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until_ready(servers: list[Server], deadline: float) -> None:
    """Read each server's port from its log, then wait for /api/health."""
    pending = list(servers)
    while pending:
        for server in list(pending):
            if server.process.poll() is not None:
                pytest.fail(
                    f"gunicorn {server.name} exited with {server.process.returncode}:"
                    f"\n{server.log_tail()}"
                )
            if not server.url:
                found = re.search(
                    r"Listening at: (http://127\.0\.0\.1:\d+)", server.log_tail()
                )
                if not found:
                    continue
                server.url = found.group(1)
            try:
                response = requests.get(f"{server.url}/api/health", timeout=1)
            except requests.RequestException:
                continue
            if response.status_code == 200:
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            tails = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in pending)
            pytest.fail(f"gunicorn not ready after {START_TIMEOUT}s:\n{tails}")
        if pending:
            time.sleep(0.1)


@contextmanager
def running_server(
    name: str, command: list[str], env: dict[str, str], workdir: Path
) -> Iterator[Server]:
    """A gunicorn server, started, ready, and stopped on exit."""
    server = start_server(name, command, env, workdir)
    try:
        wait_until_ready([server], time.monotonic() + START_TIMEOUT)
        yield server
    finally:
        stop_server(server)


def wait_for(condition: Callable[[], Any], seconds: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; its last
    answer.  For what another process or thread does in its own time (a
    revocation copy catching up), never as a pause."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
