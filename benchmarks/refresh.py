"""Part 3: refresh-token rotation on PostgreSQL.

* rotations/s end to end over HTTP: gunicorn (2 workers x N threads, pinned
  to ``--server-cpus``) and wrk (pinned to ``--client-cpus``) with a Lua
  script in which each connection keeps its own cookie chain, at
  concurrency 1 and 8; ours beside the tutorial's strategy (SELECT, UPDATE,
  INSERT, see :mod:`benchmarks.apps`) and beside Flask-JWT-Extended's
  refresh route (a new access token, no database), interleaved;
* the same-token race: N clients send one refresh token at once, many
  trials, for ours and for the tutorial's strategy; a trial with more than
  one success is a double-spend;
* database round trips per rotation, counted at the wire by a proxy in
  front of PostgreSQL (:mod:`benchmarks.pgproxy`), in-process.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from http.client import HTTPConnection
from typing import Any

from sqlalchemy import make_url

from .common import (
    LUA,
    Context,
    Wsgi,
    cookie_value,
    describe_config,
    issue_refresh_tokens,
    median,
    mint_fjwt_tokens,
    paired_ratio,
    rotate,
    run_wrk,
    servers,
)
from .pgproxy import RoundTripCounter, short

SPARES = 3
OURS = "/api/auth/refresh"
TUTORIAL = "/bench/tutorial/refresh"
FJWT = "/bench/fjwt/refresh"


def run(ctx: Context) -> None:
    report = ctx.report
    mode = "redis" if ctx.redis_url else "off"
    workers, threads = 2, ctx.threads
    report.info(
        f"gunicorn {describe_config(workers, threads)} (revocation {mode}) on CPU"
        f" {ctx.server_cpus or 'any'}; wrk on CPU {ctx.client_cpus or 'any'},"
        " one thread per connection; PostgreSQL unpinned"
    )
    spec = {
        "name": "refresh",
        "workers": workers,
        "threads": threads,
        "revocation": mode,
        "cpus": ctx.server_cpus,
    }
    with servers(ctx, [spec]) as (server,):
        try:
            throughput(ctx, server.url)
            race(ctx, server.port)
        finally:
            for line in server.errors():
                report.info(f"server log: {line}")
    round_trips(ctx, mode)


def throughput(ctx: Context, url: str) -> None:
    report = ctx.report
    rounds = ctx.p(2, 4)
    duration = ctx.p(2, 4)
    fjwt_token = mint_fjwt_tokens(ctx, 1, refresh=True)[0]
    variants = ["ours", "tutorial", "Flask-JWT-Extended"]
    # A short warm-up of every route, so that both workers are connected.
    for name in variants:
        one_run(ctx, url, name, 2, 1, fjwt_token)
    for concurrency in (1, 8):
        rps: dict[str, list[float]] = {v: [] for v in variants}
        failed: Counter[str] = Counter()
        for i in range(rounds):
            for name in rotate(variants, i):
                value, bad = one_run(ctx, url, name, concurrency, duration, fjwt_token)
                rps[name].append(value)
                failed[name] += bad
        report.samples({(f"c={concurrency}", k): v for k, v in rps.items()})
        figures = {name: median(values) for name, values in rps.items()}

        def ratio(a: str, b: str, rps: dict[str, list[float]] = rps) -> float:
            return paired_ratio(rps[a], rps[b])

        report.info(f"concurrency {concurrency} ({rounds} x {duration}s each):")
        report.table(
            [
                (
                    name,
                    f"{figures[name]:,.0f} /s",
                    f"{ratio(name, 'ours'):.2f}x",
                    str(failed[name]),
                )
                for name in variants
            ],
            ["refresh", "median", "x ours", "failed"],
        )
        report.check(f"[c={concurrency}] ours rotations/s", figures["ours"], unit="/s")
        report.check(
            f"[c={concurrency}] ours / tutorial strategy (SELECT, UPDATE, INSERT)",
            ratio("ours", "tutorial"),
        )
        report.check(
            f"[c={concurrency}] ours / Flask-JWT-Extended refresh (no database)",
            ratio("ours", "Flask-JWT-Extended"),
        )
        if sum(failed.values()):
            report.info(f"WARNING: refused refreshes: {dict(failed)}")


def one_run(
    ctx: Context,
    url: str,
    name: str,
    concurrency: int,
    duration: float,
    fjwt_token: str,
) -> tuple[float, int]:
    if name == "Flask-JWT-Extended":
        result = run_wrk(
            url + FJWT,
            duration=duration,
            connections=concurrency,
            threads=concurrency,
            headers=[f"Authorization: Bearer {fjwt_token}"],
            script=LUA / "post.lua",
            cpus=ctx.client_cpus,
        )
        return result.rps, result.non_2xx + result.socket_errors
    tokens = issue_refresh_tokens(ctx, concurrency * (1 + SPARES))
    path = ctx.workdir / f"tokens-{name}-{concurrency}.txt"
    path.write_text("\n".join(tokens) + "\n")
    result = run_wrk(
        url + (OURS if name == "ours" else TUTORIAL),
        duration=duration,
        connections=concurrency,
        threads=concurrency,
        script=LUA / "refresh.lua",
        script_args=[OURS if name == "ours" else TUTORIAL, str(path), str(concurrency)],
        cpus=ctx.client_cpus,
    )
    found = re.search(r"ROTATIONS ok=(\d+) failed=(\d+)", result.output)
    if not found:
        raise RuntimeError(f"refresh.lua printed no summary:\n{result.output[-2000:]}")
    return result.rps, int(found.group(2)) + result.socket_errors


def race(ctx: Context, port: int) -> None:
    report = ctx.report
    trials = ctx.p(20, 100)
    clients = 8
    strategies = {"ours": OURS, "tutorial": TUTORIAL}
    tokens = iter(issue_refresh_tokens(ctx, trials * len(strategies)))
    outcomes: dict[str, list[int]] = {name: [] for name in strategies}
    statuses: dict[str, Counter[int]] = {name: Counter() for name in strategies}
    for t in range(trials):
        for name in rotate(list(strategies), t):
            codes = race_once(port, strategies[name], next(tokens), clients)
            statuses[name].update(codes)
            outcomes[name].append(sum(1 for c in codes if c == 200))
    report.info(
        f"same-token race: {clients} clients send one refresh token at once,"
        f" {trials} trials each, interleaved"
    )
    for name in strategies:
        wins = outcomes[name]
        double = sum(1 for w in wins if w > 1)
        none = sum(1 for w in wins if w == 0)
        detail = (
            f"successes per trial {dict(sorted(Counter(wins).items()))},"
            f" statuses {dict(sorted(statuses[name].items()))}"
        )
        label = f"{name}: trials with a double-spend (of {trials})"
        if name == "ours":
            report.check(label, double, "0", double == 0 and none == 0, unit="")
        else:
            report.check(label, double, unit="")
        report.info(f"  {detail}")


def race_once(port: int, path: str, token: str, clients: int) -> list[int]:
    barrier = threading.Barrier(clients, timeout=10)
    codes = [0] * clients
    connections = [
        HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(clients)
    ]

    def send(i: int) -> None:
        conn = connections[i]
        try:
            conn.connect()
            barrier.wait()
            conn.request(
                "POST", path, body=b"", headers={"Cookie": f"refresh_token={token}"}
            )
            response = conn.getresponse()
            response.read()
            codes[i] = response.status
        except (OSError, threading.BrokenBarrierError):
            codes[i] = -1
        finally:
            conn.close()

    workers = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=40)
    return codes


def round_trips(ctx: Context, mode: str) -> None:
    from .apps import create_app

    report = ctx.report
    count = ctx.p(20, 50)
    url = make_url(ctx.postgres_url)
    with RoundTripCounter(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(
            host="127.0.0.1",
            port=proxy.port,
            query={**url.query, "sslmode": "disable", "gssencmode": "disable"},
        ).render_as_string(hide_password=False)
        app = create_app(ctx.app_options(mode, database_url=proxied))
        wsgi = Wsgi(app)
        try:
            report.info(
                f"database round trips per rotation, counted at the wire ({count}"
                " rotations, in-process, after 3 of warm-up):"
            )
            for name, path in (("ours", OURS), ("tutorial", TUTORIAL)):
                counts, sequence = count_rotations(ctx, wsgi, proxy, path, count)
                value = median(counts)
                text = " | ".join(short(s) for s in sequence)
                label = f"{name}: round trips per rotation"
                if name == "ours":
                    report.check(label, value, "1 round trip", value <= 1, unit="")
                else:
                    report.check(label, value, unit="")
                report.info(f"  one rotation: {text}")
        finally:
            from flask_tokenauth._state import get_state

            get_state(app).db.engine.dispose()


def count_rotations(
    ctx: Context, wsgi: Wsgi, proxy: RoundTripCounter, path: str, count: int
) -> tuple[list[int], list[str]]:
    token = issue_refresh_tokens(ctx, 1)[0]
    base = Wsgi.environ("POST", path)
    counts: list[int] = []
    sequence: list[str] = []
    for i in range(count + 3):
        env: dict[str, Any] = dict(base)
        env["HTTP_COOKIE"] = f"refresh_token={token}"
        mark = proxy.mark()
        status, body = wsgi.call(env)
        done = proxy.since(mark)
        if status != 200:
            raise RuntimeError(f"{path}: rotation answered {status}: {body[:200]!r}")
        new = cookie_value(wsgi.header("Set-Cookie"))
        if not new:
            raise RuntimeError(f"{path}: no new cookie")
        token = new
        if i >= 3:
            counts.append(len(done))
            sequence = done
    return counts, sequence
