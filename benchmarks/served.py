"""Over HTTP: gunicorn serves ``benchmarks.app``, wrk (with ``lua/``)
makes the load, one server per code version, runs interleaved.

* ``gunicorn``: requests/s of ``@login_required`` vs the bare view in every
  configuration (``-w 2 --threads 4``; ``-w 2`` sync too for off and Redis),
  beside the minimal decorator and Flask-JWT-Extended; ``wrk -t1 -c16``, one
  token.  Servers pinned to CPU 0, wrk to CPU 1 (``BENCH_SERVER_CPUS``,
  ``BENCH_CLIENT_CPUS``); the servers' CPU time per request cross-checks.
* ``refresh`` (zero-config default on PostgreSQL): rotations/s at
  concurrency 1 and 8 beside Flask-JWT-Extended's refresh and the
  tutorial's; the same-token race; database round trips per rotation.
* ``login``: logins/s vs ``cores / one bcrypt.checkpw`` (cost 12), unknown
  email vs wrong password, a protected request every 20 ms while idle and
  while logins run.  Servers unpinned (bcrypt needs every core).
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
LOGIN, REFRESH, TUTORIAL = "/api/auth/login", "/api/auth/refresh", "/bench/tutorial"
BODY = {"email": "bench@example.com", "password": "correct horse battery staple"}
SERVER_CPUS = os.environ.get("BENCH_SERVER_CPUS", "0")
CLIENT_CPUS = os.environ.get("BENCH_CLIENT_CPUS", "1")


def pinned(command: list[str], cpus: str) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def wrk(args: list[str], seconds: float, script: str = "") -> dict[str, Any]:
    """``wrk`` pinned to the client CPUs; its req/s, requests and errors."""
    lua = ["-s", str(LUA / script)] if script else []
    command = ["wrk", f"-d{max(1, round(seconds))}s", "--timeout", "10s", *lua, *args]
    out = subprocess.run(
        pinned(command, CLIENT_CPUS), capture_output=True, text=True, check=True
    ).stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        return sum(float(x) for x in found.groups()) if found else 0.0

    errors = number(r"Non-2xx or 3xx responses:\s+(\d+)") + number(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    )
    rps, requests = number(r"Requests/sec:\s+([\d.]+)"), number(r"(\d+) requests in")
    return {"rps": rps, "requests": requests, "errors": errors, "out": out}


class Server:
    """A gunicorn master serving ``benchmarks.app:create_app()`` of a tree."""

    def __init__(self, tree: Any, config: str, threads: int, cpus: str) -> None:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        command = f"{gunicorn} -w 2 -b 127.0.0.1:0 --graceful-timeout 3".split()
        command += f"-k gthread --threads {threads}".split() if threads > 1 else []
        usage = subprocess.run([gunicorn, "--help"], capture_output=True, text=True)
        if "--no-control-socket" in usage.stdout:  # gunicorn >= 25
            command.append("--no-control-socket")
        self.log = tree.tmp / f"gunicorn-{config}-{threads}.log"
        env = {**os.environ, **tree.env, "BENCH_CONFIG": config}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                pinned([*command, "benchmarks.app:create_app()"], cpus),
                **dict(cwd=tree.root, env={**env, "PYTHONPATH": str(tree.root)}),
                **dict(stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
            )
        self.port = 0

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
        text = self.log.read_text()
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
        self.port = int(found.group(1)) if found else 0
        with suppress(OSError):
            booted = text.count("Booting worker") >= 2
            return booted and get(self.port, "/bench/bare")[0] == 200
        return False

    def cpu(self) -> float:
        """CPU seconds of the master and its workers so far (steal excluded)."""
        total = 0
        for pid in os.listdir("/proc"):
            with suppress(OSError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if self.process.pid in (int(pid), int(stat[1])):
                    total += int(stat[11]) + int(stat[12])
        return total / os.sysconf("SC_CLK_TCK")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def servers(ctx: Any, config: str, threads: int, cpus: str) -> Iterator[Any]:
    """One server per code version, ready; always stopped."""
    started = {n: Server(tree, config, threads, cpus) for n, tree in ctx.trees.items()}
    try:
        deadline = time.monotonic() + 60
        while not all(s.ready() for s in started.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn not ready after 60 s")
            time.sleep(0.2)
        yield started
    finally:
        for server in started.values():
            with suppress(ProcessLookupError):
                server.process.terminate()
                try:
                    server.process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(server.process.pid, signal.SIGKILL)


def get(port: int, path: str, method: str = "GET", **headers: str) -> Any:
    """One request on a connection of its own: (status, body)."""
    conn = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = headers.pop("body", None)
        conn.request(
            method, path, body, {k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def gunicorn(ctx: Any) -> None:
    rounds, seconds = ctx.p(3, 6), ctx.p(1, 2)
    groups = [(c, 4) for c in ctx.configs]
    groups += [(c, 1) for c in ("off", "redis") if c in ctx.configs]
    for config, threads in groups:
        group(ctx, config, threads, rounds, seconds)


def group(ctx: Any, config: str, threads: int, rounds: int, seconds: int) -> None:
    paths = ["bare", "ours"] + (["pyjwt", "fjwt"] if config == "off" else [])
    token, fjwt = ctx.each("mint", config, 1), ctx.each("fjwt_tokens", False, 1)
    with servers(ctx, config, threads, SERVER_CPUS) as started:
        auth = {
            (n, p): f"Bearer {(fjwt if p == 'fjwt' else token)[n][0]}"
            for n in started
            for p in paths
        }
        for (n, p), value in auth.items():
            for _ in range(20):
                get(started[n].port, f"/bench/{p}", Authorization=value)

        def measure(n: str, p: str) -> tuple[float, float]:
            before = started[n].cpu()
            header = f"Authorization: {auth[n, p]}"
            result = wrk(
                ["-t1", "-c16", "-H", header, started[n].url(f"/bench/{p}")],
                seconds,
            )
            if result["errors"]:
                ctx.log(f"  {n} {config} {p}: {result['errors']:.0f} errors")
            cpu = (started[n].cpu() - before) / max(result["requests"], 1)
            return result["rps"], cpu

        runs = ctx.interleave([(n, p) for p in paths for n in started], rounds, measure)
    rps = {r: [x[0] for x in v] for r, v in runs.items()}
    cpu = ctx.ratios({r: [x[1] for x in v] for r, v in runs.items()}, "bare", "ours")
    label = f"[{config}, -w 2 {f'--threads {threads}' if threads > 1 else 'sync'}]"
    ctx.add(
        f"{label} protected / bare req/s",
        ctx.ratios(rps, "ours", "bare"),
        ">= 0.95",
        note=f"bare/protected server CPU per request {ctx.fmt(cpu)}",
    )
    if config == "off":
        for a, b in (("pyjwt", "bare"), ("fjwt", "bare"), ("ours", "fjwt")):
            ctx.add(f"{label} {a} / {b} req/s", ctx.ratios(rps, a, b))


def refresh(ctx: Any) -> None:
    rounds, seconds = ctx.p(2, 3), ctx.p(2, 3)
    fjwt = ctx.each("refresh_tokens", "fjwt", 1)
    with servers(ctx, "default-pg", 4, SERVER_CPUS) as started:

        def rotations(n: str, kind: str, concurrency: int, seconds: float) -> float:
            load = [f"-t{concurrency}", f"-c{concurrency}"]
            if kind == "fjwt":
                header = f"Authorization: Bearer {fjwt[n][0]}"
                url = started[n].url("/bench/fjwt/refresh")
                return float(
                    wrk([*load, "-H", header, url], seconds, "post.lua")["rps"]
                )
            path = REFRESH if kind == "ours" else f"{TUTORIAL}/refresh"
            tokens = ctx.trees[n].call("refresh_tokens", kind, concurrency * 4)
            file = ctx.trees[n].tmp / "tokens.txt"
            file.write_text("\n".join(tokens) + "\n")
            args = [started[n].url(path), "--", path, str(file), str(concurrency)]
            result = wrk([*load, *args], seconds, "refresh.lua")
            if not re.search(r"ROTATIONS ok=\d+ failed=0\b", result["out"]):
                ctx.log(f"  {n} {kind}: refused rotations: {result['out'][-200:]}")
            return float(result["rps"])

        runs = [(n, v) for v in ("ours", "tutorial", "fjwt") for n in started]
        for n, v in runs:
            rotations(n, v, 1, 1)  # every worker connected
        for c in (1, 8):
            rps = ctx.interleave(
                runs, rounds, lambda n, v, c=c: rotations(n, v, c, seconds)
            )
            label = f"[default-pg, c={c}] refresh:"
            ctx.add(
                f"{label} ours / Flask-JWT-Extended's",
                ctx.ratios(rps, "ours", "fjwt"),
                ">= 1",
            )
            ctx.add(f"{label} ours / tutorial's", ctx.ratios(rps, "ours", "tutorial"))
            ctx.add(f"{label} ours rotations/s", ctx.absolute(rps, "ours"), unit="/s")
        race(ctx, started)
    trips = ctx.each("round_trips", ctx.p(20, 50))
    for kind in ("ours", "tutorial"):
        label = f"[default-pg] {kind}: database round trips per rotation"
        values = {n: statistics.median(t[kind][0]) for n, t in trips.items()}
        note = " | ".join(trips["after"][kind][1])
        ctx.add(label, values, "<= 1" if kind == "ours" else "", unit="", note=note)


def race(ctx: Any, started: dict[str, Server]) -> None:
    """8 clients send one refresh token at once, ``trials`` times; more than
    one success is a double-spend."""
    trials = ctx.p(20, 100)
    tokens = {k: ctx.each("refresh_tokens", k, trials) for k in ("ours", "tutorial")}

    def trial(n: str, kind: str) -> int:
        token, barrier, codes = (
            tokens[kind][n].pop(),
            threading.Barrier(8, timeout=10),
            [],
        )
        path = REFRESH if kind == "ours" else f"{TUTORIAL}/refresh"

        def send() -> None:
            conn = HTTPConnection("127.0.0.1", started[n].port, timeout=30)
            with suppress(OSError, threading.BrokenBarrierError):
                conn.connect()
                barrier.wait()
                conn.request("POST", path, "", {"Cookie": f"refresh_token={token}"})
                codes.append(conn.getresponse().status)
            conn.close()

        run_all([threading.Thread(target=send) for _ in range(8)])
        return codes.count(200)

    wins = ctx.interleave([(n, k) for k in tokens for n in started], trials, trial)
    for k in tokens:
        label = f"same-token race, {k}: trials with a double-spend (of {trials})"
        double = {n: sum(w > 1 for w in wins[n, k]) for n in started}
        none = sum(w == 0 for w in wins["after", k])
        goal = "<= 0" if k == "ours" else ""
        ctx.add(label, double, goal, unit="", note=f"trials without a success: {none}")


def probe(port: int, token: str, seconds: float) -> list[float]:
    """Latencies (ms) of GET /bench/ours, one every 20 ms, a connection each."""
    latencies: list[float] = []
    start = time.monotonic()
    while (due := start + len(latencies) * 0.02) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        t0 = time.perf_counter()
        status, _ = get(port, "/bench/ours", Authorization=f"Bearer {token}")
        latencies.append((time.perf_counter() - t0) * 1000 if status == 200 else 1e9)
    return latencies


def login(ctx: Any) -> None:
    import bcrypt

    ramp, window, loaded = ctx.p((1, 4, 3), (1.5, 8, 5))
    cores = len(os.sched_getaffinity(0))
    hashed, checks, parallel = bcrypt.hashpw(b"x", bcrypt.gensalt(12)), [], []
    tokens = ctx.each("mint", "default-pg", 1)
    body = ["--", json.dumps(BODY)]
    with (
        servers(ctx, "default-pg", 4, "") as threads,
        servers(ctx, "default-pg", 1, "") as sync,
    ):
        by_kind = {"threads": threads, "sync": sync}

        def measure(n: str, kind: str) -> tuple[float, list[float], list[float]]:
            checks.extend(timer(bcrypt.checkpw, b"x", hashed) for _ in range(2))
            # What the cores give: 2 x cores checkpw at once, nothing else.
            spin = [
                threading.Thread(target=bcrypt.checkpw, args=(b"x", hashed))
                for _ in range(2 * cores)
            ]
            parallel.append(len(spin) / timer(run_all, spin))
            server, token = by_kind[kind][n], tokens[n][0]
            idle = probe(server.port, token, ramp + 1)
            args = [f"-t{2 * cores}", f"-c{2 * cores}", server.url(LOGIN), *body]
            out: list[dict[str, Any]] = []
            load = threading.Thread(
                target=lambda: out.append(wrk(args, ramp + window + loaded, "post.lua"))
            )
            load.start()
            time.sleep(ramp + window)
            busy = probe(server.port, token, loaded)
            load.join()
            if out[0]["errors"]:
                ctx.log(f"  {n} {kind}: failed logins: {out[0]['out'][-300:]}")
            return out[0]["rps"], idle, busy

        runs = ctx.interleave(
            [(n, k) for k in by_kind for n in ctx.trees], ctx.p(1, 2), measure
        )
        timing = {n: unknown_vs_wrong(threads[n].port, ctx.p(6, 15)) for n in ctx.trees}
    one = statistics.median(checks)
    bound = cores / one
    for kind in ("threads", "sync"):
        label = "-w 2 --threads 4" if kind == "threads" else "-w 2 sync"
        logins = {
            n: statistics.median(x[0] for x in runs[n, kind]) / bound for n in ctx.trees
        }
        note = f"bound {cores} cores / {one * 1000:.0f} ms = {bound:.2f}/s;"
        note += f" checkpw alone {statistics.median(parallel):.2f}/s"
        ctx.add(
            f"[{label}] logins/s / bcrypt bound",
            logins,
            ">= 0.9" if kind == "threads" else "",
            note=note,
        )
    note = "same 401 body" if timing["after"][1] else "401 bodies DIFFER"
    ctx.add(
        "unknown-email / wrong-password login time",
        {n: v[0] for n, v in timing.items()},
        "in 0.9..1.1",
        note=note,
    )
    for kind in ("threads", "sync"):
        idle = [ms for x in runs["after", kind] for ms in x[1]]
        busy = {n: [ms for x in runs[n, kind] for ms in x[2]] for n in ctx.trees}
        goal = f"< {one * 1000:.0f}" if kind == "threads" else ""
        note = f"idle p50 {percentile(idle, 50):.1f}, p99 {percentile(idle, 99):.1f}"
        note += f"; during logins p50 {percentile(busy['after'], 50):.1f} ms"
        ctx.add(
            f"[{kind}] p99 of a protected request during logins",
            {n: percentile(v, 99) for n, v in busy.items()},
            goal,
            unit="ms",
            note=note,
        )


def run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def timer(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def unknown_vs_wrong(port: int, pairs: int) -> tuple[float, bool]:
    """Login times of an unknown email and of a wrong password, alternating,
    after 3 pairs of warm-up (each worker makes its dummy hash on first
    need); and whether their 401 bodies are the same."""
    times: dict[str, list[float]] = {"unknown": [], "wrong": []}
    bodies = set()
    for i in range(-3, pairs):
        for kind in ["unknown", "wrong"] if i % 2 else ["wrong", "unknown"]:
            field = "email" if kind == "unknown" else "password"
            body = json.dumps({**BODY, field: "nobody@example.com"})
            t0 = time.perf_counter()
            status, answer = get(
                port, LOGIN, "POST", body=body, Content_Type="application/json"
            )
            times[kind] += [time.perf_counter() - t0] if i >= 0 else []
            if status != 401:
                raise RuntimeError(f"login of {kind}: {status} {answer[:200]!r}")
            bodies.add(answer)
    ratio = statistics.median(times["unknown"]) / statistics.median(times["wrong"])
    return ratio, len(bodies) == 1


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]
