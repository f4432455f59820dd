"""Part 1: in-process cost of one protected request.

Direct WSGI calls (the whole Flask request cycle, no sockets, no test
client) into apps of one shape (:mod:`benchmarks.apps`), one per revocation
store.  Every variant sends an ``Authorization`` header (the bare view
ignores it).  Variants run round-robin, ``batch`` requests each, the order
rotating every round; the figure of a variant is the median over rounds of
its mean time per request.
"""

from __future__ import annotations

import gc
import io
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt

from . import apps
from .common import (
    Context,
    Wsgi,
    median,
    mint_access_tokens,
    mint_fjwt_tokens,
    paired_ratio,
    percentile,
    rotate,
)

MODES = ("off", "redis", "database")


@dataclass
class Variant:
    name: str
    run: Callable[[int], int]  # runs n requests, returns how many were not 200


def wsgi_variant(name: str, app: Any, path: str, headers: Iterator[str]) -> Variant:
    base = Wsgi.environ("GET", path)
    bad = [0]

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        if status[:3] != "200":
            bad[0] += 1

    def run(n: int) -> int:
        bad[0] = 0
        call = app
        for _ in range(n):
            env = base.copy()
            env["wsgi.input"] = io.BytesIO()
            env["HTTP_AUTHORIZATION"] = next(headers)
            result = call(env, start_response)
            for _chunk in result:
                pass
            result.close()
        return bad[0]

    return Variant(name, run)


def decode_variant(tokens: Iterator[str]) -> Variant:
    """``jwt.decode`` alone, for reference (no request at all)."""

    def run(n: int) -> int:
        for _ in range(n):
            jwt.decode(
                next(tokens),
                apps.ACCESS_SECRET,
                algorithms=[apps.ALGORITHM],
                issuer=apps.ISSUER,
                audience=apps.AUDIENCE,
                options={"require": apps.REQUIRED_CLAIMS},
            )
        return 0

    return Variant("jwt.decode alone", run)


def bearer(tokens: list[str]) -> Iterator[str]:
    return iter(["Bearer " + t for t in tokens])


def run(ctx: Context) -> None:
    from .apps import create_app

    report = ctx.report
    rounds = ctx.p(15, 31)
    batch = ctx.p(80, 150)
    warmup = ctx.p(150, 300)
    per_list = rounds * batch + warmup
    modes = [m for m in MODES if m != "redis" or ctx.redis_url]
    if "redis" not in modes:
        report.info("Redis unreachable: the redis variants are skipped")

    started = time.perf_counter()
    warm = "Bearer " + mint_access_tokens(ctx, 1)[0]
    variants: list[Variant] = []
    for mode in modes:
        app = create_app(ctx.app_options(mode))
        variants.append(
            wsgi_variant(f"bare [{mode}]", app, "/bench/bare", itertools.repeat(warm))
        )
        variants.append(
            wsgi_variant(
                f"ours warm [{mode}]", app, "/bench/ours", itertools.repeat(warm)
            )
        )
        variants.append(
            wsgi_variant(
                f"ours cold [{mode}]",
                app,
                "/bench/ours",
                bearer(mint_access_tokens(ctx, per_list)),
            )
        )
        if mode == "off":
            variants.append(
                wsgi_variant(
                    "pyjwt decorator",
                    app,
                    "/bench/pyjwt",
                    bearer(mint_access_tokens(ctx, per_list)),
                )
            )
            variants.append(
                wsgi_variant(
                    "Flask-JWT-Extended",
                    app,
                    "/bench/fjwt",
                    bearer(mint_fjwt_tokens(ctx, per_list)),
                )
            )
    variants.append(decode_variant(iter(mint_access_tokens(ctx, per_list))))
    report.info(
        f"{len(variants)} variants, {rounds} rounds x {batch} requests each,"
        f" interleaved (tokens minted in {time.perf_counter() - started:.1f}s)"
    )

    for variant in variants:
        bad = variant.run(warmup)
        if bad:
            raise RuntimeError(
                f"{variant.name}: {bad} of {warmup} warm-up requests were not 200"
            )

    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(rounds):
        for variant in rotate(variants, r):
            gc.collect()
            start = time.perf_counter()
            bad = variant.run(batch)
            elapsed = time.perf_counter() - start
            if bad:
                raise RuntimeError(f"{variant.name}: {bad} requests were not 200")
            samples[variant.name].append(elapsed / batch * 1e6)

    report.samples(samples)
    us = {name: median(values) for name, values in samples.items()}
    spread = {
        name: (percentile(values, 75) - percentile(values, 25)) / median(values) * 100
        for name, values in samples.items()
    }

    def ratio(a: str, b: str) -> float:
        return paired_ratio(samples[a], samples[b])

    report.info(
        "median time per request; ratios are medians over rounds of the"
        " ratio within each round; IQR = interquartile range over rounds / median:"
    )
    report.table(
        [
            (
                name,
                f"{us[name]:.1f} us",
                f"{ratio(name, 'bare [off]'):.2f}x",
                f"{spread[name]:.0f}%",
            )
            for name in samples
        ],
        ["variant", "median", "x bare [off]", "IQR"],
    )

    report.info("references (revocation off app):")
    report.check("pyjwt decorator / bare view", ratio("pyjwt decorator", "bare [off]"))
    report.check(
        "Flask-JWT-Extended / bare view", ratio("Flask-JWT-Extended", "bare [off]")
    )
    report.check("jwt.decode alone", us["jwt.decode alone"], unit="us")
    for mode in modes:
        bare, warm, cold = (
            f"bare [{mode}]",
            f"ours warm [{mode}]",
            f"ours cold [{mode}]",
        )
        report.info(f"TOKENAUTH_REVOCATION={mode!r}:")
        report.at_most(
            f"[{mode}] warm @login_required / bare view", ratio(warm, bare), 1.15
        )
        report.at_most(
            f"[{mode}] cold @login_required / bare view", ratio(cold, bare), 2.0
        )
        report.at_most(
            f"[{mode}] cold @login_required / pyjwt decorator",
            ratio(cold, "pyjwt decorator"),
            1.0,
        )
        report.check(
            f"[{mode}] warm @login_required / pyjwt decorator",
            ratio(warm, "pyjwt decorator"),
        )
        report.at_least(
            f"[{mode}] Flask-JWT-Extended / warm @login_required",
            ratio("Flask-JWT-Extended", warm),
            3.0,
        )
        report.check(
            f"[{mode}] Flask-JWT-Extended / cold @login_required",
            ratio("Flask-JWT-Extended", cold),
        )
