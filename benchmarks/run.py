"""The benchmark command: ``python -m benchmarks [--quick] [--only PARTS]``.

Parts (issue 4's goals):

1. ``inprocess``  per-request cost of ``@login_required`` (warm and cold
   token) vs a bare view, a minimal ``jwt.decode`` decorator and
   Flask-JWT-Extended, with revocation off / Redis / database;
2. ``gunicorn``   requests/s of the same views under gunicorn, with wrk;
3. ``refresh``    rotations/s over HTTP at concurrency 1 and 8 beside the
   tutorial's strategy and Flask-JWT-Extended's refresh route, the
   same-token race, and database round trips per rotation;
4. ``login``      logins/s vs the bcrypt bound, unknown email vs wrong
   password, protected-request latency while logins run;
5. ``memory``     resident size over many protected requests and refreshes;
6. ``keys``       issue and verify costs per algorithm vs PyJWT with a loaded
   key, and a warm-token request with EdDSA vs HS256 (issue 12).

Each part runs against a fresh PostgreSQL database of its own run (created
and dropped here) and a Redis key prefix of its own.  Figures are printed as
they come, then a summary of every goal with its target.  Exit status: 0,
or 1 if a part failed to run (or, with ``--strict``, missed a target).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import cpuload
from .common import PASSWORD, ROOT, Context, Report, run_database, seed_user

PARTS = ("inprocess", "gunicorn", "refresh", "login", "memory", "keys")
TITLES = {
    "inprocess": "1. in-process cost per protected request",
    "gunicorn": "2. protected vs unprotected view under gunicorn (wrk)",
    "refresh": "3. refresh: rotations/s, same-token race, round trips (PostgreSQL)",
    "login": "4. login: throughput vs the bcrypt bound, timing, service under load",
    "memory": "5. memory over a long run",
    "keys": "6. signing keys: issue/verify per algorithm vs PyJWT, warm EdDSA vs HS256",
}


def part_runner(name: str) -> Callable[[Context], None]:
    if name == "inprocess":
        from .inprocess import run
    elif name == "gunicorn":
        from .served import run
    elif name == "refresh":
        from .refresh import run
    elif name == "login":
        from .login import run
    elif name == "keys":
        from .keys import run
    else:
        from .memory import run
    return run


def parse_parts(value: str) -> list[str]:
    chosen = []
    for item in value.replace(" ", "").split(","):
        if not item:
            continue
        if item.isdigit() and 1 <= int(item) <= len(PARTS):
            item = PARTS[int(item) - 1]
        matches = [p for p in PARTS if p.startswith(item)]
        if len(matches) != 1:
            raise argparse.ArgumentTypeError(
                f"unknown part {item!r}: choose from {', '.join(PARTS)} (or 1-6)"
            )
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of flask_tokenauth against issue 4's goals.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs (~3 minutes)"
    )
    parser.add_argument(
        "--only",
        type=parse_parts,
        default=list(PARTS),
        metavar="PARTS",
        help=f"comma-separated subset: {', '.join(PARTS)} (or 1-6)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL",
            os.environ.get(
                "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
            ),
        ),
        help="server to create the run's database on (env BENCH_POSTGRES_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(
            "BENCH_REDIS_URL",
            os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        ),
        help="Redis for the revocation store (env BENCH_REDIS_URL)",
    )
    parser.add_argument(
        "--server-cpus",
        default="0",
        help="CPUs (taskset -c) of the gunicorn servers of parts 2 and 3; '' for none",
    )
    parser.add_argument(
        "--client-cpus",
        default="1",
        help="CPUs (taskset -c) of wrk in parts 2 and 3; '' for none",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="threads per worker of the threaded config",
    )
    parser.add_argument(
        "--rev",
        help="benchmark flask_tokenauth as of this git revision (e.g. HEAD, for"
        " 'before' figures) instead of the working tree",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the run's database"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a target is missed"
    )
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="tokenauth-bench-")
    try:
        return _main(args, Path(tmp.name))
    finally:
        tmp.cleanup()


def _main(args: argparse.Namespace, tmp: Path) -> int:
    code_root = ROOT
    if args.rev:
        code_root = _snapshot(args.rev, tmp / "code")
    # Before anything imports flask_tokenauth: the snapshot, if any, first.
    sys.path.insert(0, str(code_root))
    import flask_tokenauth

    cpus = os.cpu_count() or 1
    if cpus < 2 and (args.server_cpus or args.client_cpus):
        args.server_cpus = args.client_cpus = ""
    print(
        f"flask_tokenauth benchmarks, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC,"
        f" {platform.python_implementation()} {platform.python_version()},"
        f" {cpus} CPUs ({_cpu_model()}), {'quick' if args.quick else 'full'} run,"
        f" parts: {', '.join(args.only)}",
        flush=True,
    )
    print(f"  {_versions()}")
    print(
        f"  flask_tokenauth from {Path(flask_tokenauth.__file__).parent}"
        f" ({_code_state(args.rev)})"
    )

    redis_url = _redis_or_none(args.redis_url)
    if redis_url is None:
        print(f"  Redis not reachable at {args.redis_url}: Redis variants skipped")
    report = Report()
    total_start = time.monotonic()
    try:
        database = run_database(args.postgres_url, keep=args.keep_db)
        url = database.__enter__()
    except Exception as e:
        print(f"PostgreSQL not usable at {args.postgres_url}: {e}", file=sys.stderr)
        return 1
    prefix = f"tokenauth-bench:{uuid.uuid4().hex[:10]}:"
    ctx = Context(
        quick=args.quick,
        report=report,
        workdir=tmp,
        code_root=code_root,
        postgres_url=url,
        redis_url=redis_url,
        redis_prefix=prefix,
        server_cpus=args.server_cpus or None,
        client_cpus=args.client_cpus or None,
        threads=args.threads,
    )
    try:
        from flask_tokenauth._passwords import hash_password

        seed_user(ctx, hash_password(PASSWORD, 12))
        for part in args.only:
            report.part = part
            report.section(TITLES[part])
            _warn_if_busy(report)
            start = time.monotonic()
            cpu_before = cpuload.sample()
            try:
                part_runner(part)(ctx)
            except Exception as e:
                report.failures[part] = f"{type(e).__name__}: {e}"
                print(f"  PART FAILED: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
            finally:
                report.durations[part] = time.monotonic() - start
                load = cpuload.between(cpu_before, cpuload.sample())
                report.load[part] = load
                print(
                    f"  ({part}: {report.durations[part]:.0f}s; {load.describe()})",
                    flush=True,
                )
                if load.others > 0.10 or load.steal > 0.10:
                    print(
                        "  WARNING: other processes or machines took a share of the"
                        " CPUs during this part: its figures are noisy (interleaved"
                        " ratios less so); rerun it on a quiet machine",
                        flush=True,
                    )
    finally:
        ctx.close()
        database.__exit__(None, None, None)
        if redis_url:
            _clean_redis(redis_url, prefix)

    total = time.monotonic() - total_start
    _summary(report, total)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": datetime.now(timezone.utc).isoformat(),
                    "quick": args.quick,
                    "cpus": cpus,
                    "checks": [c.__dict__ for c in report.checks],
                    "durations": report.durations,
                    "cpu_load": {k: v.__dict__ for k, v in report.load.items()},
                    "failures": report.failures,
                    "samples": report.raw,
                },
                indent=2,
                default=str,
            )
        )
    if report.failures:
        return 1
    if args.strict and any(c.ok is False for c in report.checks):
        return 1
    return 0


def _summary(report: Report, total: float) -> None:
    print("\n=== summary: goals of issue 4 ===")
    for part in PARTS:
        checks = [c for c in report.checks if c.part == part and c.ok is not None]
        if part not in report.durations:
            continue
        load = report.load.get(part)
        noise = f", steal {load.steal:.0%}, others {load.others:.0%}" if load else ""
        print(f"  {TITLES[part]} ({report.durations[part]:.0f}s{noise})")
        if part in report.failures:
            print(f"    FAILED: {report.failures[part]}")
        for check in checks:
            print(f"    {check.line()}")
    met = sum(1 for c in report.checks if c.ok)
    missed = sum(1 for c in report.checks if c.ok is False)
    print(f"  {met} targets met, {missed} missed, total {total:.0f}s", flush=True)


def _warn_if_busy(report: Report) -> None:
    """Say so when other processes keep the CPUs busy: the figures of a
    2-core machine are then noisy (ratios less so, being interleaved)."""
    busy = _busy_fraction(0.5)
    if busy is not None and busy > 0.15:
        report.info(
            f"WARNING: the CPUs were {busy:.0%} busy before this part started (other"
            " processes): its figures will be noisy"
        )


def _busy_fraction(seconds: float) -> float | None:
    def sample() -> tuple[int, int]:
        fields = [
            int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]
        ]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total1, idle1 = sample()
        time.sleep(seconds)
        total2, idle2 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total2 - total1
    return None if total <= 0 else 1 - (idle2 - idle1) / total


def _snapshot(rev: str, target: Path) -> Path:
    """``flask_tokenauth/`` and ``alembic/`` as of ``rev`` (git archive), with
    ``benchmarks/`` of the working tree beside them."""
    import subprocess

    target.mkdir(parents=True)
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            "--format=tar",
            rev,
            "flask_tokenauth",
            "alembic",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    subprocess.run(
        ["tar", "-x", "-C", str(target)], input=archive, check=True, timeout=60
    )
    (target / "benchmarks").symlink_to(ROOT / "benchmarks", target_is_directory=True)
    return target


def _code_state(rev: str | None) -> str:
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(ROOT), *args],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    if rev:
        return f"git {rev} = {git('rev-parse', '--short', rev)}"
    dirty = git("status", "--porcelain", "--", "flask_tokenauth")
    head = git("rev-parse", "--short", "HEAD")
    return f"working tree on {head}" + (", with uncommitted changes" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in (
        "flask",
        "pyjwt",
        "flask-jwt-extended",
        "sqlalchemy",
        "psycopg2-binary",
        "gunicorn",
        "bcrypt",
    ):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    wrk = shutil.which("wrk")
    parts.append("wrk " + ("present" if wrk else "missing"))
    return ", ".join(parts)


def _redis_or_none(url: str) -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return url
    except Exception:
        return None


def _clean_redis(url: str, prefix: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except Exception:
        pass


if __name__ == "__main__":
    sys.exit(main())
