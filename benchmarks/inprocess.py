"""In-process parts: the cost of one request, and memory over a long run.

``inprocess``: every variant (see :func:`benchmarks.worker.loop`) runs
``batch`` calls in its tree's worker, interleaved over variants and trees;
a ratio is the median over rounds of the ratio within a round.  The cost of
verifying a never-seen token alone is ``AccessTokens.verify / jwt.decode``
(in a revision without it ``(never-seen request - bare request) /
jwt.decode``), measured in the same round, with the key of each algorithm.

``memory``: a fresh worker per tree serves protected requests, each with a
token it has never seen, then a chain of refreshes, reading its RSS.
"""

from __future__ import annotations

import statistics
from typing import Any

ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")


def inprocess(ctx: Any) -> None:
    rounds, batch, warmup = ctx.p((15, 60, 100), (21, 100, 200))
    kinds = ("bare", "warm", "aal2", "cold")
    variants = [f"{c} {k}" for c in ctx.configs for k in kinds]
    variants += ["off pyjwt", "off fjwt", "EdDSA warm"]
    for alg in ALGORITHMS:  # HS256 is the off app, whose cold is "off cold"
        kinds = ("decode", "encode", "issue", "verify")
        kinds += () if alg == "HS256" else ("cold",)
        variants += [f"{alg} {k}" for k in kinds]
    us = run_variants(ctx, variants, rounds, batch, warmup)

    def ratio(a: str, b: str) -> dict[str, float]:
        return ctx.ratios(us, a, b)

    warm_rows(ctx, us)
    for c in ctx.configs:
        ctx.add(
            f"[{c}] never-seen token: protected / bare view",
            ratio(f"{c} cold", f"{c} bare"),
            "<= 1.6",
        )
        ctx.add(
            f"[{c}] never-seen: protected / minimal decorator",
            ratio(f"{c} cold", "off pyjwt"),
            "<= 1",
        )
        ctx.add(
            f"[{c}] Flask-JWT-Extended / warm protected",
            ratio("off fjwt", f"{c} warm"),
            ">= 3",
        )
        ctx.add(
            f"[{c}] warm protected request", ctx.absolute(us, f"{c} warm"), unit="us"
        )
        ctx.add(
            f"[{c}] never-seen protected request",
            ctx.absolute(us, f"{c} cold"),
            unit="us",
        )
    ctx.add("[off] minimal decorator / bare view", ratio("off pyjwt", "off bare"))
    ctx.add("[off] Flask-JWT-Extended / bare view", ratio("off fjwt", "off bare"))
    for alg in ALGORITHMS:
        cold = "off cold" if alg == "HS256" else f"{alg} cold"
        for n in ctx.trees:  # ours alone if the tree has it, else cold - bare
            us[n, f"{alg} alone"] = us.get((n, f"{alg} verify")) or [
                c - b for c, b in zip(us[n, cold], us[n, "off bare"], strict=True)
            ]
        verify = ratio(f"{alg} alone", f"{alg} decode")
        note = f"jwt.decode {statistics.median(us['after', f'{alg} decode']):.0f} us"
        goal = "<= 0.5" if alg == "HS256" else "<= 1.1"
        ctx.add(
            f"[{alg}] never-seen token: verification / jwt.decode",
            verify,
            goal,
            note=note,
        )
        if all((n, f"{alg} issue") in us for n in ctx.trees):
            ctx.add(
                f"[{alg}] issue a token / jwt.encode",
                ratio(f"{alg} issue", f"{alg} encode"),
            )
    ctx.add(
        "warm protected request, EdDSA / HS256",
        ratio("EdDSA warm", "off warm"),
        "<= 1.1",
    )


def warm(ctx: Any) -> None:
    """Only the first rows of ``inprocess`` (a warm token against the bare
    view, per configuration), with four times its rounds: the closer look
    for a change of the per-request path.  Run only when named
    (``--only warm``)."""
    rounds, batch, warmup = ctx.p((60, 60, 100), (84, 100, 200))
    variants = [f"{c} {k}" for c in ctx.configs for k in ("bare", "warm", "aal2")]
    warm_rows(ctx, run_variants(ctx, variants, rounds, batch, warmup))


def run_variants(
    ctx: Any, variants: list[str], rounds: int, batch: int, warmup: int
) -> dict[tuple[str, str], list[float]]:
    """Microseconds per call of each variant a tree has, per round."""
    missing = ctx.each("setup", variants, rounds * batch, warmup)
    runs = [(n, v) for v in variants for n in ctx.trees if v not in missing[n]]
    ctx.log(f"  {len(runs)} runs x {rounds} rounds x {batch} calls, interleaved")
    for n, lacking in missing.items():
        if lacking:
            ctx.log(f"  {n} lacks {', '.join(lacking)}")

    def measure(n: str, v: str) -> float:
        return float(ctx.trees[n].call("timed", v, batch, ctx.clock))

    us = ctx.interleave(runs, rounds, measure)
    for n, v in runs:
        ctx.log(f"  {n:6} {v:20} {statistics.median(us[n, v]):8.1f} us per call")
    return us


def warm_rows(ctx: Any, us: dict[tuple[str, str], list[float]]) -> None:
    # The first row: the zero-configuration default, SQLite.
    for c in ctx.configs:
        ctx.add(
            f"[{c}] warm token: protected / bare view",
            ctx.ratios(us, f"{c} warm", f"{c} bare"),
            "<= 1.1",
        )
        if any((n, f"{c} aal2") in us for n in ctx.trees):
            ctx.add(
                f"[{c}] warm aal 2 token on an aal=2 view / bare view",
                ctx.ratios(us, f"{c} aal2", f"{c} bare"),
                "<= 1.1",
            )


def memory(ctx: Any) -> None:
    requests, refreshes = ctx.p((20_000, 2_000), (100_000, 10_000))
    # The zero-configuration default on PostgreSQL: on SQLite the file's page
    # cache (2 MB by default) grows with the table over 10,000 refreshes.
    for config in ("default-pg",):
        rss = {
            n: t.fresh("memory", config, requests, refreshes)
            for n, t in ctx.trees.items()
        }
        ctx.samples[f"memory {config}"] = rss
        for phase, count in (("requests", requests), ("refreshes", refreshes)):
            what = (
                "protected requests, each a new token" if phase == "requests" else phase
            )
            growth = {n: r[phase][-1] - r[phase][0] for n, r in rss.items()}
            note = f"after warm-up {rss['after'][phase][0]:.0f} MB"
            ctx.add(
                f"[{config}] RSS growth over {count:,} {what}",
                growth,
                "<= 1",
                unit="MB",
                note=note,
            )


def logins(ctx: Any) -> None:
    """``POST /api/auth/login`` in process, per database: a right password
    (the configured bcrypt cost, a session row, two tokens) and one without
    a password (refused while the body is read: the request's own cost, no
    bcrypt, no query).  Run only when named (``--only logins``): it is the
    before/after of a change to how bodies are read."""
    rounds, good, bad = ctx.p((9, 4, 200), (15, 8, 400))
    configs = [c for c in ctx.configs if c.startswith("default")]
    us = run_variants(ctx, [f"{c} loginbad" for c in configs], rounds, bad, 50)
    for c in configs:
        ctx.add(
            f"[{c}] login refused at the body",
            ctx.absolute(us, f"{c} loginbad"),
            unit="us",
        )
    us = run_variants(ctx, [f"{c} login" for c in configs], rounds, good, 2)
    for c in configs:
        ctx.add(
            f"[{c}] login, right password",
            ctx.absolute(us, f"{c} login"),
            unit="us",
        )
