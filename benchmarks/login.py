"""Part 4: logins at bcrypt cost 12.

* the bound: ``cores / (time of one bcrypt.checkpw at cost 12)``, measured
  in this process before and after the load phases;
* logins/s under a steady load (``2 x cores`` clients), counted over a
  window that starts after a ramp-up: completions in the window over its
  duration;
* an unknown email vs a wrong password, one login at a time, interleaved;
* a protected view probed at a fixed pace (one request every 20 ms, a
  connection each) while idle and while the login load runs, for
  ``-w 2`` sync workers and ``-w 2 --threads N``.

Both servers run side by side (unpinned: bcrypt needs every core), one
loaded at a time, phases interleaved.  Rate limits are off.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

import bcrypt

from .common import (
    EMAIL,
    PASSWORD,
    UNKNOWN_EMAIL,
    WRONG_PASSWORD,
    Context,
    Server,
    describe_config,
    http_call,
    median,
    mint_access_tokens,
    percentile,
    rotate,
    servers,
    warm_up,
)

LOGIN = "/api/auth/login"
PROBE_INTERVAL = 0.020


def login_body(email: str, password: str) -> bytes:
    return json.dumps({"email": email, "password": password}).encode()


JSON = {"Content-Type": "application/json"}


class LoginLoad:
    """``clients`` threads logging in back to back until stopped."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.completions: list[float] = []
        self.failures = 0
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, daemon=True) for _ in range(clients)
        ]

    def _loop(self) -> None:
        body = login_body(EMAIL, PASSWORD)
        while not self._stop.is_set():
            try:
                status, _, _ = http_call(
                    self.port, "POST", LOGIN, body, JSON, timeout=30
                )
            except OSError:
                status = -1
            with self._lock:
                if status == 200:
                    self.completions.append(time.monotonic())
                else:
                    self.failures += 1
                    self.statuses[status] += 1

    def __enter__(self) -> LoginLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def rate(self, start: float, end: float) -> float:
        with self._lock:
            inside = [t for t in self.completions if start <= t <= end]
        if len(inside) < 2:
            return float("nan")
        return (len(inside) - 1) / (inside[-1] - inside[0])


def probe(port: int, token: str, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of GET /bench/ours, one every PROBE_INTERVAL."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    failures = 0
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * PROBE_INTERVAL
        now = time.monotonic()
        if now - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        t0 = time.perf_counter()
        try:
            status, _, _ = http_call(
                port, "GET", "/bench/ours", headers=headers, timeout=30
            )
        except OSError:
            status = -1
        if status == 200:
            latencies.append((time.perf_counter() - t0) * 1000)
        else:
            failures += 1
        n += 1
    return latencies, failures


def checkpw_seconds(samples: int) -> list[float]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12))
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        bcrypt.checkpw(PASSWORD.encode(), hashed)
        times.append(time.perf_counter() - t0)
    return times


def bcrypt_parallel(threads: int, seconds: float) -> float:
    """checkpw/s of ``threads`` threads doing nothing else (bcrypt releases
    the GIL): what the cores really give, beside the bound's arithmetic."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12))
    stop = time.monotonic() + seconds
    times: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        while time.monotonic() < stop:
            bcrypt.checkpw(PASSWORD.encode(), hashed)
            with lock:
                times.append(time.monotonic())

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(times) / (max(times, default=start) - start)


def run(ctx: Context) -> None:
    report = ctx.report
    rounds = ctx.p(1, 2)
    idle_s, ramp_s, window_s, loaded_s = ctx.p((1.5, 1, 4, 3), (3, 1.5, 8, 5))
    pairs = ctx.p(6, 15)
    cores = len(os.sched_getaffinity(0))
    clients = 2 * cores
    mode = "redis" if ctx.redis_url else "off"
    configs = {"sync": (2, 1), "threads": (2, ctx.threads)}
    token = mint_access_tokens(ctx, 1)[0]

    checks = checkpw_seconds(2)
    parallel: list[float] = []
    specs = [
        {
            "name": f"login-{name}",
            "workers": w,
            "threads": t,
            "revocation": mode,
            "cpus": None,
            "bcrypt_rounds": 12,
        }
        for name, (w, t) in configs.items()
    ]
    report.info(
        f"servers unpinned (revocation {mode}, rate limits off), {clients} login"
        f" clients; windows: idle probe {idle_s}s, ramp {ramp_s}s, logins {window_s}s,"
        f" probe under load {loaded_s}s; {rounds} round(s)"
    )
    rates: dict[str, list[float]] = {c: [] for c in configs}
    idle: dict[str, list[float]] = {c: [] for c in configs}
    loaded: dict[str, list[float]] = {c: [] for c in configs}
    probe_failures = {c: 0 for c in configs}
    login_failures = {c: 0 for c in configs}
    failure_statuses: Counter[int] = Counter()
    with servers(ctx, specs) as started:
        by_config = dict(zip(configs, started, strict=True))
        for server in started:
            warm_up(
                server.port,
                [("GET", "/bench/ours", {"Authorization": f"Bearer {token}"})],
                10,
            )
            http_call(server.port, "POST", LOGIN, login_body(EMAIL, PASSWORD), JSON)
        for i in range(rounds):
            # The bound, measured between the load phases (CPU speed drifts).
            checks += checkpw_seconds(1)
            parallel.append(bcrypt_parallel(cores, ctx.p(2, 3)))
            for config in rotate(list(configs), i):
                port = by_config[config].port
                lat, bad = probe(port, token, idle_s)
                idle[config] += lat
                probe_failures[config] += bad
                with LoginLoad(port, clients) as load:
                    time.sleep(ramp_s)
                    window_start = time.monotonic()
                    time.sleep(window_s)
                    rates[config].append(load.rate(window_start, time.monotonic()))
                    lat, bad = probe(port, token, loaded_s)
                    loaded[config] += lat
                    probe_failures[config] += bad
                login_failures[config] += load.failures
                failure_statuses.update(load.statuses)
        unknown, wrong, same_body = timing(by_config["threads"], pairs)
        if sum(login_failures.values()) or sum(probe_failures.values()):
            for server in started:
                for line in server.errors():
                    report.info(f"{server.name} log: {line}")
    checks += checkpw_seconds(2)

    one = median(checks)
    bound = cores / one
    report.info(
        f"bcrypt.checkpw at cost 12: {one * 1000:.0f} ms (median of {len(checks)});"
        f" bound = {cores} cores / {one * 1000:.0f} ms = {bound:.2f} logins/s;"
        f" {cores} threads doing nothing but checkpw: {median(parallel):.2f}/s"
    )
    report.table(
        [
            (
                f"{name}: {describe_config(*configs[name])}",
                f"{median(rates[name]):.2f}/s",
                f"{median(rates[name]) / bound:.2f}x",
                str(login_failures[name]),
            )
            for name in configs
        ],
        ["server", "logins", "x bound", "failed"],
    )
    if failure_statuses:
        report.info(
            "WARNING: failed logins by status (-1: no answer):"
            f" {dict(failure_statuses)}"
        )
    recommended = median(rates["threads"])
    report.at_least(
        f"logins/s with {describe_config(*configs['threads'])} / bcrypt bound",
        recommended / bound,
        0.9,
    )
    report.check(
        f"logins/s with {describe_config(*configs['sync'])} / bcrypt bound",
        median(rates["sync"]) / bound,
    )
    report.info(
        f"unknown email {median(unknown) * 1000:.0f} ms, wrong password"
        f" {median(wrong) * 1000:.0f} ms (medians of {pairs}, one at a time);"
        f" same 401 body: {'yes' if same_body else 'NO'}"
    )
    report.within(
        "unknown-email / wrong-password login time",
        median(unknown) / median(wrong),
        0.9,
        1.1,
    )
    report.info(
        f"GET /bench/ours (@login_required) every {PROBE_INTERVAL * 1000:.0f} ms,"
        " latency in ms:"
    )
    report.table(
        [
            (
                f"{name}: {describe_config(*configs[name])}",
                f"{percentile(idle[name], 50):.1f}",
                f"{percentile(idle[name], 99):.1f}",
                f"{percentile(loaded[name], 50):.1f}",
                f"{percentile(loaded[name], 99):.1f}",
                f"{max(loaded[name], default=float('nan')):.0f}",
                str(len(loaded[name])),
                str(probe_failures[name]),
            )
            for name in configs
        ],
        [
            "server",
            "idle p50",
            "idle p99",
            "logins p50",
            "logins p99",
            "max",
            "n",
            "failed",
        ],
    )
    limit = one * 1000
    for name in configs:
        p99 = percentile(loaded[name], 99)
        label = f"[{name}] p99 of a protected request during logins (ms)"
        if name == "threads":
            report.check(
                label, p99, f"< one checkpw, {limit:.0f} ms", p99 < limit, unit="ms"
            )
        else:
            report.check(label, p99, unit="ms")


def timing(server: Server, pairs: int) -> tuple[list[float], list[float], bool]:
    """Login times of an unknown email and of a wrong password, alternating."""
    unknown: list[float] = []
    wrong: list[float] = []
    bodies: set[bytes] = set()
    cases = [("unknown", UNKNOWN_EMAIL, PASSWORD), ("wrong", EMAIL, WRONG_PASSWORD)]
    for i in range(pairs):
        for name, email, password in rotate(cases, i):
            t0 = time.perf_counter()
            status, _, body = http_call(
                server.port, "POST", LOGIN, login_body(email, password), JSON
            )
            elapsed = time.perf_counter() - t0
            if status != 401:
                raise RuntimeError(f"login of {name} answered {status}: {body[:200]!r}")
            bodies.add(body)
            (unknown if name == "unknown" else wrong).append(elapsed)
    return unknown, wrong, len(bodies) == 1
