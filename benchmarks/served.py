"""Part 2: requests/s of a protected view vs the unprotected one under
gunicorn, measured with wrk.

Two server configurations (2 sync workers; 2 workers x N threads), each with
revocation off and with Redis: four servers of the same app, started
together and idle while another is measured.  Every wrk run of every
(server, view) variant is interleaved round-robin.  The servers are pinned
to ``--server-cpus``, wrk (one thread, 16 connections, the same token on
every request) to ``--client-cpus``; PostgreSQL and Redis are not pinned.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import (
    Context,
    Server,
    describe_config,
    median,
    mint_access_tokens,
    mint_fjwt_tokens,
    paired_ratio,
    ratio_spread,
    rotate,
    run_wrk,
    servers,
    warm_up,
)

CONNECTIONS = 16


@dataclass
class Run:
    config: str
    name: str
    server: Server
    path: str
    token: str


def run(ctx: Context) -> None:
    report = ctx.report
    # Short runs, many rounds: the hypervisor's steal time comes and goes
    # within seconds, and each round's ratios pair runs seconds apart.
    rounds = ctx.p(3, 9)
    duration = ctx.p(1, 2)
    modes = ["off", "redis"] if ctx.redis_url else ["off"]
    configs = {"sync": (2, 1), "threads": (2, ctx.threads)}
    report.info(
        f"pinning: gunicorn on CPU {ctx.server_cpus or 'any'}, wrk -t1 -c{CONNECTIONS}"
        f" on CPU {ctx.client_cpus or 'any'} (PostgreSQL, Redis unpinned);"
        f" {rounds} round(s) x {duration}s per variant, interleaved"
    )
    ours = mint_access_tokens(ctx, 1)[0]
    fjwt = mint_fjwt_tokens(ctx, 1)[0]
    specs = [
        {
            "name": f"{config}-{mode}",
            "workers": workers,
            "threads": threads,
            "revocation": mode,
            "cpus": ctx.server_cpus,
        }
        for config, (workers, threads) in configs.items()
        for mode in modes
    ]
    with servers(ctx, specs) as started:
        by_name = {s.name: s for s in started}
        runs: list[Run] = []
        for config in configs:
            off = by_name[f"{config}-off"]
            runs += [
                Run(config, "bare", off, "/bench/bare", ours),
                Run(config, "ours", off, "/bench/ours", ours),
                Run(config, "pyjwt decorator", off, "/bench/pyjwt", ours),
                Run(config, "Flask-JWT-Extended", off, "/bench/fjwt", fjwt),
            ]
            if "redis" in modes:
                red = by_name[f"{config}-redis"]
                runs += [
                    Run(config, "bare [redis]", red, "/bench/bare", ours),
                    Run(config, "ours [redis]", red, "/bench/ours", ours),
                ]
        for r in runs:
            warm_up(
                r.server.port,
                [("GET", r.path, {"Authorization": f"Bearer {r.token}"})],
                20,
            )
        rps: dict[tuple[str, str], list[float]] = {(r.config, r.name): [] for r in runs}
        cpu: dict[tuple[str, str], list[float]] = {(r.config, r.name): [] for r in runs}
        problems: dict[tuple[str, str], int] = {}
        for i in range(rounds):
            for r in rotate(runs, i):
                cpu_before = r.server.cpu_seconds()
                result = run_wrk(
                    r.server.url + r.path,
                    duration=duration,
                    connections=CONNECTIONS,
                    headers=[f"Authorization: Bearer {r.token}"],
                    cpus=ctx.client_cpus,
                )
                rps[(r.config, r.name)].append(result.rps)
                used = r.server.cpu_seconds() - cpu_before
                cpu[(r.config, r.name)].append(used / max(result.requests, 1) * 1e6)
                if not result.clean:
                    key = (r.config, r.name)
                    problems[key] = (
                        problems.get(key, 0) + result.non_2xx + result.socket_errors
                    )
    report.samples(rps)
    report.samples({("cpu-us", *k): v for k, v in cpu.items()})
    figures = {key: median(values) for key, values in rps.items()}

    def ratio(config: str, a: str, b: str) -> float:
        return paired_ratio(rps[(config, a)], rps[(config, b)])

    def cpu_ratio(config: str, a: str, b: str) -> float:
        return paired_ratio(cpu[(config, a)], cpu[(config, b)])

    report.info(
        "median req/s; ratios are medians over rounds of the ratio within a round;"
        " server CPU/req = CPU time of the gunicorn processes (without steal) per"
        " request, whose inverse ratio estimates the req/s ratio where steal"
        " time makes req/s noisy"
    )
    for config, (workers, threads) in configs.items():
        report.info(f"gunicorn {describe_config(workers, threads)}:")
        names = [name for (c, name) in figures if c == config]
        report.table(
            [
                (
                    name,
                    f"{figures[(config, name)]:,.0f} req/s",
                    f"{ratio(config, name, 'bare'):.2f}x",
                    ratio_spread(rps[(config, name)], rps[(config, "bare")]),
                    f"{median(cpu[(config, name)]):.0f} us",
                    f"{cpu_ratio(config, 'bare', name):.2f}x",
                    str(problems.get((config, name), 0)),
                )
                for name in names
            ],
            [
                "variant",
                "median",
                "x bare",
                "IQR of ratio",
                "server CPU/req",
                "bare CPU / this",
                "errors",
            ],
        )
        for mode in modes:
            suffix = "" if mode == "off" else f" [{mode}]"
            report.at_least(
                f"[{config}, revocation {mode}] @login_required / unprotected req/s",
                ratio(config, "ours" + suffix, "bare" + suffix),
                0.95,
            )
            report.check(
                f"[{config}, revocation {mode}]   same, from server CPU per request",
                cpu_ratio(config, "bare" + suffix, "ours" + suffix),
            )
        report.check(
            f"[{config}] pyjwt decorator / unprotected req/s",
            ratio(config, "pyjwt decorator", "bare"),
        )
        report.check(
            f"[{config}] Flask-JWT-Extended / unprotected req/s",
            ratio(config, "Flask-JWT-Extended", "bare"),
        )
        report.check(
            f"[{config}] ours / Flask-JWT-Extended req/s",
            ratio(config, "ours", "Flask-JWT-Extended"),
        )
    if problems:
        report.info(f"WARNING: non-2xx responses or socket errors: {problems}")
        for server in started:
            for line in server.errors():
                report.info(f"{server.name} log: {line}")
