"""Part 5: resident size of one process over a long run.

A fresh interpreter (``python -m benchmarks.memory --worker``) serves, by
direct WSGI calls, protected requests each with an access token it has never
seen (the worst case for any cache of verified tokens), then a chain of
refreshes on PostgreSQL.  Its RSS (``/proc/self/statm``) is read after a
warm-up of a tenth of each phase, every twentieth after that, and at the
end; the parent prints them.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import subprocess
import sys
from typing import Any

from .common import Context, Wsgi, cookie_value, rss_mb

LIMIT_MB = 5.0


def run(ctx: Context) -> None:
    report = ctx.report
    requests = ctx.p(20_000, 100_000)
    refreshes = ctx.p(2_000, 10_000)
    mode = "redis" if ctx.redis_url else "off"
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--worker",
        "--database-url",
        ctx.postgres_url,
        "--revocation",
        mode,
        "--redis-url",
        ctx.redis_url or "",
        "--redis-prefix",
        ctx.redis_prefix,
        "--user-id",
        str(ctx.user_id),
        "--session-id",
        ctx.session_id,
        "--requests",
        str(requests),
        "--refreshes",
        str(refreshes),
    ]
    report.info(
        f"one process (revocation {mode}): {requests:,} protected requests, each"
        f" with a new token, then {refreshes:,} refreshes on PostgreSQL"
    )
    result = subprocess.run(
        command,
        cwd=ctx.code_root,
        env=ctx.server_env(mode),
        capture_output=True,
        text=True,
        timeout=ctx.p(300, 900),
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory worker failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    report.table(
        [
            (
                phase,
                f"{data[phase]['count']:,}",
                f"{data[phase]['seconds']:.0f}s",
                f"{data[phase]['after_warmup']:.1f}",
                f"{max(data[phase]['samples']):.1f}",
                f"{data[phase]['end']:.1f}",
                f"{data[phase]['end'] - data[phase]['after_warmup']:+.1f}",
            )
            for phase in ("requests", "refreshes")
        ],
        [
            "phase",
            "count",
            "time",
            "RSS after warm-up MB",
            "max MB",
            "end MB",
            "growth MB",
        ],
    )
    report.info(f"RSS at start {data['start']:.1f} MB")
    for phase, label in (
        ("requests", f"RSS growth over {requests:,} protected requests"),
        ("refreshes", f"RSS growth over {refreshes:,} refreshes"),
    ):
        growth = data[phase]["end"] - data[phase]["after_warmup"]
        report.check(
            label, growth, f"<= {LIMIT_MB:g} MB", growth <= LIMIT_MB, unit="MB"
        )


# ------------------------------------------------------------------ worker


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from flask_tokenauth._state import get_state

    from .apps import create_app

    app = create_app(
        {
            "database_url": args.database_url,
            "revocation": args.revocation,
            "redis_url": args.redis_url or None,
            "redis_prefix": args.redis_prefix,
            "bcrypt_rounds": 4,
        }
    )
    state = get_state(app)
    out: dict[str, Any] = {"start": rss_mb()}

    # Protected requests, each with a token never seen before.
    base = Wsgi.environ("GET", "/bench/ours")
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc: Any = None) -> None:
        if status[:3] != "200":
            statuses.append(status)

    def protected(n: int) -> None:
        while n > 0:
            batch = min(n, 1000)
            tokens = [
                state.access_tokens.issue(args.user_id, args.session_id)
                for _ in range(batch)
            ]
            for token in tokens:
                env = base.copy()
                env["wsgi.input"] = io.BytesIO()
                env["HTTP_AUTHORIZATION"] = "Bearer " + token
                result = app(env, start_response)
                for _ in result:
                    pass
                result.close()
            n -= batch
            if statuses:
                raise RuntimeError(f"protected request answered {statuses[0]}")

    out["requests"] = phase(protected, args.requests)

    # A chain of refreshes.
    with state.db.begin() as conn:
        token = state.refresh_tokens.start_family(conn, args.user_id).token
    wsgi = Wsgi(app)
    refresh_env = Wsgi.environ("POST", "/api/auth/refresh")

    def refresh(n: int) -> None:
        nonlocal token
        for _ in range(n):
            env = dict(refresh_env)
            env["HTTP_COOKIE"] = f"refresh_token={token}"
            status, body = wsgi.call(env)
            new = cookie_value(wsgi.header("Set-Cookie"))
            if status != 200 or not new:
                raise RuntimeError(f"refresh answered {status}: {body[:200]!r}")
            token = new

    out["refreshes"] = phase(refresh, args.refreshes)
    state.db.engine.dispose()
    return out


def phase(action: Any, count: int) -> dict[str, Any]:
    import time

    started = time.perf_counter()
    warmup = max(count // 10, 1)
    action(warmup)
    gc.collect()
    after = rss_mb()
    samples = [after]
    chunk = max((count - warmup) // 20, 1)
    done = warmup
    while done < count:
        n = min(chunk, count - done)
        action(n)
        done += n
        samples.append(rss_mb())
    gc.collect()
    end = rss_mb()
    samples.append(end)
    return {
        "count": count,
        "seconds": time.perf_counter() - started,
        "after_warmup": after,
        "end": end,
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--revocation", default="off")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--redis-prefix", default="tokenauth-bench:")
    parser.add_argument("--user-id", type=int, required=True)
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--refreshes", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(worker(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
