"""What the parts share: the run's database and Redis prefix, statistics,
the report, direct WSGI calls, gunicorn servers and wrk."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
LUA = HERE / "lua"

EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"
UNKNOWN_EMAIL = "nobody@example.com"
WRONG_PASSWORD = "wrong horse battery staple"


# --------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of ``numerator[r] / denominator[r]``: each ratio
    compares two variants measured moments apart, so load that comes and
    goes (other processes) cancels out better than in a ratio of medians."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True) if b]
    return median(ratios)


def ratio_spread(numerator: Sequence[float], denominator: Sequence[float]) -> str:
    """The interquartile range of the per-round ratios, e.g. ``0.91-1.02``."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True) if b]
    if len(ratios) < 2:
        return "-"
    return f"{percentile(ratios, 25):.2f}-{percentile(ratios, 75):.2f}"


def rotate(items: Sequence[Any], shift: int) -> list[Any]:
    """``items`` starting at position ``shift``: each round of an interleaved
    comparison starts with another variant, so none is always first."""
    shift %= max(len(items), 1)
    return list(items[shift:]) + list(items[:shift])


# ------------------------------------------------------------------- report


@dataclass
class Check:
    part: str
    label: str
    value: float
    target: str
    ok: bool | None  # None: shown for information, no target
    unit: str = "x"

    def line(self) -> str:
        number = _fmt(self.value, self.unit)
        if self.unit == "x" and self.ok is not None and number[:-1] in self.target:
            # Shown at two decimals the value would equal the target it misses
            # (or just meets): show three.
            number = f"{self.value:.3f}x"
        if self.ok is None:
            return f"{self.label}: {number}"
        verdict = "OK" if self.ok else "MISS"
        return f"{self.label}: {number} (target {self.target}) {verdict}"


def _fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "":
        return f"{value:g}"
    return f"{value:.1f} {unit}" if abs(value) < 1000 else f"{value:,.0f} {unit}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)  # part -> cpuload.Load
    failures: dict[str, str] = field(default_factory=dict)
    #: Per-round samples, by part and variant, for --json.
    raw: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    part: str = ""

    def samples(self, samples: dict[Any, list[float]]) -> None:
        self.raw.setdefault(self.part, {}).update(
            {
                " ".join(map(str, k)) if isinstance(k, tuple) else str(k): list(v)
                for k, v in samples.items()
            }
        )

    def section(self, title: str) -> None:
        print(f"\n=== {title} ===", flush=True)

    def info(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def check(
        self,
        label: str,
        value: float,
        target: str | None = None,
        ok: bool | None = None,
        unit: str = "x",
    ) -> Check:
        """Record a figure; with a target, ``ok`` says whether it is met."""
        if target is not None and value != value:
            ok = False
        item = Check(self.part, label, value, target or "", ok, unit)
        self.checks.append(item)
        print(f"  {item.line()}", flush=True)
        return item

    def at_most(self, label: str, value: float, limit: float, unit: str = "x") -> None:
        target = f"<= {limit:g}{unit if unit == 'x' else ' ' + unit}"
        self.check(label, value, target, value <= limit, unit)

    def at_least(self, label: str, value: float, limit: float, unit: str = "x") -> None:
        target = f">= {limit:g}{unit if unit == 'x' else ' ' + unit}"
        self.check(label, value, target, value >= limit, unit)

    def within(
        self, label: str, value: float, low: float, high: float, unit: str = "x"
    ) -> None:
        target = f"{low:g}-{high:g}{unit if unit == 'x' else ' ' + unit}"
        self.check(label, value, target, low <= value <= high, unit)

    def table(self, rows: Iterable[Sequence[Any]], header: Sequence[str]) -> None:
        rows = [[str(c) for c in row] for row in rows]
        widths = [
            max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
            for i, h in enumerate(header)
        ]
        line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))
        print("    " + line.rstrip())
        for row in rows:
            cells = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            print("    " + "  ".join(cells).rstrip())
        sys.stdout.flush()


# ---------------------------------------------------------------- context


@dataclass
class Context:
    """What every part gets: options, the run's database, Redis and user."""

    quick: bool
    report: Report
    workdir: Path
    postgres_url: str  # SQLAlchemy URL (postgresql+psycopg2://...) of the run's db
    redis_url: str | None
    redis_prefix: str
    server_cpus: str | None
    client_cpus: str | None
    threads: int
    #: Where ``flask_tokenauth`` and ``benchmarks`` are imported from: the
    #: checkout, or a snapshot of a git revision (``--rev``).
    code_root: Path = ROOT
    user_id: int = 0
    session_id: str = ""
    _app: Any = None

    def p(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def app(self) -> Any:
        """An in-process app on the run's database (revocation off), for
        minting tokens and seeding."""
        if self._app is None:
            from .apps import create_app

            self._app = create_app(self.app_options("off"))
        return self._app

    def close(self) -> None:
        if self._app is not None:
            from flask_tokenauth._state import get_state

            get_state(self._app).db.engine.dispose()
            self._app = None

    def app_options(self, revocation: str, **extra: Any) -> dict[str, Any]:
        options = {
            "database_url": self.postgres_url,
            "revocation": revocation,
            "redis_url": self.redis_url,
            "redis_prefix": self.redis_prefix,
            "bcrypt_rounds": 4,
        }
        options.update(extra)
        return options

    def server_env(self, revocation: str, bcrypt_rounds: int = 4) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TOKENAUTH_", "BENCH_"))
        }
        env.update(
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(self.code_root), env.get("PYTHONPATH")])
            ),
            BENCH_DATABASE_URL=self.postgres_url,
            BENCH_REVOCATION=revocation,
            BENCH_REDIS_URL=self.redis_url or "",
            BENCH_REDIS_PREFIX=self.redis_prefix,
            BENCH_BCRYPT_ROUNDS=str(bcrypt_rounds),
        )
        return env


# ----------------------------------------------------------------- database


@contextmanager
def run_database(postgres_url: str, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated; dropped after."""
    from sqlalchemy import create_engine, text

    from flask_tokenauth._db import make_engine, normalize_url
    from flask_tokenauth._migrate import upgrade

    # pool_pre_ping: the server may have been restarted meanwhile.
    admin = create_engine(
        normalize_url(postgres_url), isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    name = f"tokenauth_bench_{uuid.uuid4().hex[:10]}"
    wait_for_postgres(admin, 30)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalize_url(postgres_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        engine = make_engine(rendered, {})
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield rendered
    finally:
        if keep:
            print(f"  (kept database {name})")
        else:
            wait_for_postgres(admin, 30)
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def wait_for_postgres(engine: Any, timeout: float) -> None:
    """Until ``engine`` connects (a server being restarted), at most ``timeout``."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + timeout
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def seed_user(ctx: Context, password_hash: str) -> None:
    """The benchmark user (password ``PASSWORD``) and one session for the
    access tokens of the in-process parts."""
    from sqlalchemy import insert

    from flask_tokenauth._state import get_state
    from flask_tokenauth.models import User

    state = get_state(ctx.app())
    now = datetime.now(timezone.utc)
    with state.db.begin() as conn:
        ctx.user_id = conn.execute(
            insert(User.__table__)  # type: ignore[arg-type]
            .values(
                email=EMAIL, password_hash=password_hash, created_at=now, updated_at=now
            )
            .returning(User.__table__.c.id)
        ).scalar_one()
        issued = state.refresh_tokens.start_family(conn, ctx.user_id)
    ctx.session_id = issued.family_id


def mint_access_tokens(ctx: Context, count: int) -> list[str]:
    """``count`` distinct access tokens of the benchmark user's session."""
    from flask_tokenauth._state import get_state

    state = get_state(ctx.app())
    issue = state.access_tokens.issue
    return [issue(ctx.user_id, ctx.session_id) for _ in range(count)]


def mint_fjwt_tokens(ctx: Context, count: int, refresh: bool = False) -> list[str]:
    from flask_jwt_extended import create_access_token, create_refresh_token

    make = create_refresh_token if refresh else create_access_token
    with ctx.app().app_context():
        return [make(identity=str(ctx.user_id)) for _ in range(count)]


def issue_refresh_tokens(ctx: Context, count: int) -> list[str]:
    """``count`` refresh tokens, each the first of a session of its own."""
    from flask_tokenauth._state import get_state

    state = get_state(ctx.app())
    with state.db.begin() as conn:
        return [
            state.refresh_tokens.start_family(conn, ctx.user_id).token
            for _ in range(count)
        ]


# ---------------------------------------------------------- direct WSGI calls


class Wsgi:
    """Direct WSGI calls into an app: the whole Flask request cycle, no test
    client and no sockets."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status = status
        self.headers = headers
        return None

    @staticmethod
    def environ(
        method: str, path: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        from werkzeug.test import EnvironBuilder

        builder = EnvironBuilder(path=path, method=method, headers=headers or {})
        try:
            return builder.get_environ()
        finally:
            builder.close()

    def call(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO()
        result = self.app(env, self._start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(self.status[:3]), body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def cookie_value(set_cookie: str | None, name: str = "refresh_token") -> str | None:
    if not set_cookie:
        return None
    match = re.search(rf"(?:^|[;,]\s*){name}=([^;]*)", set_cookie)
    return match.group(1) if match and match.group(1) else None


# ------------------------------------------------------------------- rss


def rss_mb(pid: int | None = None) -> float:
    """Resident set size in MB, from /proc/<pid>/statm."""
    path = f"/proc/{pid or 'self'}/statm"
    with open(path) as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# ------------------------------------------------------------------ processes


def executable(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def pinned(command: list[str], cpus: str | None) -> list[str]:
    taskset = shutil.which("taskset")
    if cpus and taskset:
        return [taskset, "-c", cpus, *command]
    return command


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    workers: int
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def pids(self) -> list[int]:
        """The master and its workers."""
        master = self.process.pid
        found = [master]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(entry))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time of the master and its workers so far (the
        hypervisor's steal time is not in it)."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def errors(self, last: int = 5) -> list[str]:
        """The last distinct exception lines of the server's log."""
        found = re.findall(
            r"^([\w.]*(?:Error|Exception|Exit)\b.*)$", self.log_text(), re.MULTILINE
        )
        distinct: list[str] = []
        for line in reversed(found):
            if line not in distinct:
                distinct.append(line[:200])
            if len(distinct) == last:
                break
        return distinct


_CONTROL_SOCKET: bool | None = None


def gunicorn_command(workers: int, threads: int) -> list[str]:
    global _CONTROL_SOCKET
    gunicorn = executable("gunicorn")
    if gunicorn is None:
        raise RuntimeError("gunicorn is not installed (pip install gunicorn)")
    command = [
        gunicorn,
        f"--workers={workers}",
        "--bind=127.0.0.1:0",
        "--graceful-timeout=3",
        "--timeout=120",
        "--backlog=256",
    ]
    if threads > 1:
        command += ["--worker-class=gthread", f"--threads={threads}"]
    else:
        command += ["--worker-class=sync"]
    if _CONTROL_SOCKET is None:
        usage = subprocess.run(
            [gunicorn, "--help"], capture_output=True, text=True, timeout=30
        ).stdout
        _CONTROL_SOCKET = "--no-control-socket" in usage
    if _CONTROL_SOCKET:
        command.append("--no-control-socket")
    return [*command, "benchmarks.apps:create_app()"]


def describe_config(workers: int, threads: int) -> str:
    return f"-w {workers}" + (f" --threads {threads}" if threads > 1 else " (sync)")


def start_server(
    ctx: Context,
    name: str,
    *,
    workers: int,
    threads: int,
    revocation: str,
    cpus: str | None,
    bcrypt_rounds: int = 4,
) -> Server:
    log = ctx.workdir / f"gunicorn-{name}.log"
    command = pinned(gunicorn_command(workers, threads), cpus)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ctx.code_root,  # gunicorn puts its directory first on sys.path
            env=ctx.server_env(revocation, bcrypt_rounds),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for the cleanup
        )
    return Server(name, process, log, workers)


def wait_ready(servers: Sequence[Server], timeout: float = 60.0) -> None:
    """Each server's port (from its log), all its workers booted, and a 200
    from /bench/bare."""
    deadline = time.monotonic() + timeout
    pending = list(servers)
    while pending:
        for server in list(pending):
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn {server.name} exited with {server.process.returncode}:\n"
                    + server.log_text()[-3000:]
                )
            text = server.log_text()
            if not server.port:
                found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
                if not found:
                    continue
                server.port = int(found.group(1))
            if text.count("Booting worker") < server.workers:
                continue
            try:
                status, _, _ = http_call(server.port, "GET", "/bench/bare", timeout=2)
            except OSError:
                continue
            if status == 200:
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            tails = "\n".join(f"--- {s.name}:\n{s.log_text()[-2000:]}" for s in pending)
            raise RuntimeError(f"gunicorn not ready after {timeout:.0f}s:\n{tails}")
        if pending:
            time.sleep(0.1)


def stop_server(server: Server) -> None:
    """TERM the gunicorn master; KILL its process group if it lingers."""
    process = server.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Workers that outlived their master (they should not) share its group.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def servers(ctx: Context, specs: Sequence[dict[str, Any]]) -> Iterator[list[Server]]:
    """Start gunicorn servers (``start_server`` keyword dicts with a
    ``name``), wait for them, and always stop them."""
    started: list[Server] = []
    try:
        for spec in specs:
            started.append(start_server(ctx, **spec))
        wait_ready(started)
        yield started
    finally:
        for server in started:
            stop_server(server)


# ---------------------------------------------------------------------- http


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own."""
    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def warm_up(
    port: int, requests: Iterable[tuple[str, str, dict[str, str]]], repeat: int = 30
) -> None:
    """A few requests of each kind, so that every worker has imported and
    connected what it needs before anything is measured."""
    for _ in range(repeat):
        for method, path, headers in requests:
            http_call(port, method, path, headers=headers, timeout=10)


# ----------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency_ms: dict[str, float]
    output: str

    @property
    def clean(self) -> bool:
        return self.non_2xx == 0 and self.socket_errors == 0 and self.requests > 0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    headers: Sequence[str] = (),
    script: Path | None = None,
    script_args: Sequence[str] = (),
    cpus: str | None = None,
    latency: bool = False,
) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    for header in headers:
        command += ["-H", header]
    if latency:
        command.append("--latency")
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    result = subprocess.run(
        pinned(command, cpus),
        capture_output=True,
        text=True,
        timeout=duration + 30,
    )
    out = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {out[-2000:]}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    percentiles: dict[str, float] = {}
    for label, number, unit in re.findall(
        r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M
    ):
        percentiles[label] = float(number) * _UNITS_MS[unit]
    socket_errors = 0
    if errors:
        connect, read, write, timeout = (int(x) for x in errors.groups())
        # A sync worker closes every connection after its response; wrk
        # reconnects, which is not an error, but a refused connect is.
        socket_errors = connect + write + timeout + read
    return WrkResult(
        rps=float(rps.group(1)) if rps else 0.0,
        requests=int(total.group(1)) if total else 0,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        latency_ms=percentiles,
        output=out,
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value
