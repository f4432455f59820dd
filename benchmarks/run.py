"""``python -m benchmarks [--quick] [--only PARTS] [--rev COMMIT]``: run the
parts, then print one table of every target and its ratio.

Each code version (the working tree, ``after``; with ``--rev``, the library
as of that commit, ``before``) gets a worker process with its tree first on
``sys.path``, a PostgreSQL database, a SQLite file and a Redis prefix of its
own; its gunicorn servers run from its tree.  Every part alternates between
the versions within each round, so before and after are measured side by
side.  This module imports no flask_tokenauth: the workers do.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import inprocess, served

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("inprocess", "gunicorn", "refresh", "login", "memory")
#: Parts that run only when ``--only`` names them: a closer look at some rows
#: of another part.
NAMED_ONLY = ("warm", "logins")
CONFIGS = ("default-sqlite", "default-pg", "redis", "off")


def _use_tree(root: str) -> None:
    sys.path.insert(0, root)


def _dispatch(function: str, *args: Any) -> Any:
    from . import worker

    return getattr(worker, function)(*args)


@dataclass
class Tree:
    """One code version: its files, databases and worker process."""

    root: Path
    env: dict[str, str]
    tmp: Path
    pool: Any = None
    library: str = ""

    def start(self) -> ProcessPoolExecutor:
        spawn = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(1, spawn, _use_tree, (str(self.root),))
        self.library = pool.submit(_dispatch, "prepare", self.env).result()
        return pool

    def call(self, function: str, *args: Any) -> Any:
        self.pool = self.pool or self.start()
        return self.pool.submit(_dispatch, function, *args).result()

    def fresh(self, function: str, *args: Any) -> Any:
        """``function`` in a new worker process (for memory)."""
        with self.start() as pool:
            return pool.submit(_dispatch, function, *args).result()


@dataclass
class Row:
    label: str
    values: dict[str, float]
    goal: str = ""  # "<= 1.15", ">= 0.95", "< 250", "in 0.9..1.1"
    ok: bool | None = None
    unit: str = "x"
    note: str = ""
    paired: float | None = None  # after/before, median over rounds


@dataclass
class Context:
    quick: bool
    trees: dict[str, Tree]
    configs: list[str]
    clock: str = "wall"  # the in-process timer: "wall" or "cpu" (--clock)
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)

    def p(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def log(self, text: str) -> None:
        print(text, flush=True)

    def each(self, function: str, *args: Any) -> dict[str, Any]:
        """``function`` of the worker of every tree, by tree."""
        return {n: tree.call(function, *args) for n, tree in self.trees.items()}

    def interleave(
        self, runs: list[tuple[str, str]], rounds: int, measure: Callable[..., Any]
    ) -> dict[tuple[str, str], list[Any]]:
        """``measure(tree, variant)`` of every run, ``rounds`` times: all runs
        in each round, the order rotating by one each round and reversed
        every other round (so that no run always follows the same one)."""
        out: dict[tuple[str, str], list[Any]] = {run: [] for run in runs}
        for i in range(rounds):
            order = runs if i % 2 == 0 else runs[::-1]
            for run in order[i % len(runs) :] + order[: i % len(runs)]:
                out[run].append(measure(*run))
        self.samples[f"{len(self.samples)}"] = {" ".join(r): v for r, v in out.items()}
        return out

    def ratios(
        self, samples: dict[Any, list[float]], a: str, b: str
    ) -> dict[str, float]:
        """Per tree, the median over rounds of ``a / b`` within each round."""
        return {n: paired(samples[n, a], samples[n, b]) for n in self.trees}

    def absolute(self, samples: dict[Any, list[float]], a: str) -> dict[str, float]:
        values = {n: statistics.median(samples[n, a]) for n in self.trees}
        if "before" in self.trees:
            values["after/before"] = paired(samples["after", a], samples["before", a])
        return values

    def add(
        self, label: str, values: dict[str, float], goal: str = "", **kw: Any
    ) -> None:
        """A row of the table; with a ``goal``, met or not by ``after``."""
        row = Row(label, values, goal, paired=values.pop("after/before", None), **kw)
        if goal:
            op, limit = goal.split()
            low, _, high = limit.partition("..")
            v, x = values["after"], float(low)
            ok = {"<=": v <= x, ">=": v >= x, "<": v < x}.get(op)
            row.ok = ok if ok is not None else x <= v <= float(high)
            row.goal = goal.replace("in ", "") + ("x" if row.unit == "x" else "")
        self.rows.append(row)
        line = [self.fmt(values.get(n, float("nan")), row.unit) for n in self.trees]
        self.log(f"  {label}: {' -> '.join(line)} {row.goal} {verdict(row)}")

    def fmt(self, value: float | dict[str, float], unit: str = "x") -> str:
        if isinstance(value, dict):
            return " -> ".join(self.fmt(value[n], unit) for n in self.trees)
        if value != value:
            return "n/a"
        return f"{value:.2f}x" if unit == "x" else f"{value:,.{1 if unit else 0}f}"


def paired(a: list[float], b: list[float]) -> float:
    ratios = [x / y for x, y in zip(a, b, strict=True) if y]
    return statistics.median(ratios) if ratios else float("nan")


def verdict(row: Row) -> str:
    return "" if row.ok is None else "OK" if row.ok else "MISS"


def table(ctx: Context, noise: dict[str, str]) -> None:
    """The one table, in the order the parts added their rows."""
    two = "before" in ctx.trees
    head = ["target", *(["before", "after", "after/before"] if two else ["value"])]
    lines = [[*head, "goal", "", "note"]]
    for row in ctx.rows:
        unit = "" if row.unit in ("x", "") else f" ({row.unit})"
        cells = [row.label + unit]
        cells += [ctx.fmt(row.values.get(n, float("nan")), row.unit) for n in ctx.trees]
        if two:
            after, before = row.values.get("after", 0), row.values.get("before", 0)
            ratio = after / before if before else float("nan")
            cells.append(ctx.fmt(ratio if row.paired is None else row.paired))
        lines.append([*cells, row.goal, verdict(row), row.note[:72]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print("\n" + "=" * 30 + " targets and figures " + "=" * 30)
    for line in lines:
        cells = [
            c.rjust(w) if 0 < i < len(line) - 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    met, missed = (sum(r.ok is ok for r in ctx.rows) for ok in (True, False))
    print(f"{met} targets met, {missed} missed.  Noise (share of the CPUs):")
    for part, text in noise.items():
        print(f"  {part}: {text}")


def cpu_sample() -> tuple[list[int], float]:
    """/proc/stat's first line, and the CPU seconds of this run's processes
    (this one, its children, reaped or not) and of PostgreSQL and Redis."""
    stat = [int(x) for x in Path("/proc/stat").read_text().split()[1:11]]
    t = os.times()
    ours = t.user + t.system + t.children_user + t.children_system
    for pid in os.listdir("/proc"):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            continue
        fields = text.rsplit(")", 1)[1].split()
        name = text[text.find("(") + 1 : text.rfind(")")]
        if name.startswith(("postgres", "redis")) or int(fields[1]) == os.getpid():
            ours += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return stat, ours


def noise(before: tuple[list[int], float], after: tuple[list[int], float]) -> str:
    """Shares of all CPU time the hypervisor stole and other processes used
    while a part ran: above 10%, its absolute figures are noisy (its
    interleaved ratios less so)."""
    delta = [b - a for a, b in zip(before[0], after[0], strict=True)]
    total = sum(delta[:8]) or 1
    busy = delta[0] + delta[1] + delta[2] + delta[5] + delta[6]
    ours = (after[1] - before[1]) * os.sysconf("SC_CLK_TCK")
    others, steal = max(busy - ours, 0) / total, delta[7] / total
    warn = "  NOISY: rerun on a quiet machine" if max(others, steal) > 0.1 else ""
    return f"steal {steal:.0%}, other processes {others:.0%}{warn}"


def snapshot(rev: str, target: Path) -> Path:
    """flask_tokenauth/ and alembic/ as of ``rev``, beside this benchmarks/."""
    target.mkdir(parents=True)
    command = ["git", "-C", str(ROOT), "archive", rev, "flask_tokenauth", "alembic"]
    archive = subprocess.run(command, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    (target / "benchmarks").symlink_to(ROOT / "benchmarks")
    return target


def databases(url: str, names: list[str], drop: bool = False) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            if drop:
                kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                conn.execute(text(f"{kill} WHERE datname = :n"), {"n": name})
            conn.execute(text(f'{"DROP" if drop else "CREATE"} DATABASE "{name}"'))
    engine.dispose()


def redis_ok(url: str, prefix: str = "") -> bool:
    """Whether Redis answers; with a prefix, delete its keys."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
        for key in client.scan_iter(match=f"{prefix}*") if prefix else ():
            client.delete(key)
        return True
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument(
        "--only", default="", help=f"comma-separated of {PARTS + NAMED_ONLY}"
    )
    parser.add_argument("--rev", help="also measure the library as of this commit")
    parser.add_argument("--json", type=Path, help="also write rows and samples here")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="in-process timer: wall clock, or the worker thread's CPU time"
        " (steadier on a machine shared with other work; blind to I/O waits)",
    )
    args = parser.parse_args(argv)
    only = [o for o in args.only.split(",") if o]
    parts = [p for p in PARTS if not only or any(p.startswith(o) for o in only)]
    parts += [p for p in NAMED_ONLY if p in only]
    pg = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
    pg = pg.replace("postgresql://", "postgresql+psycopg2://", 1)
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    redis = redis if redis_ok(redis) else ""
    run = uuid.uuid4().hex[:8]
    names = (["before"] if args.rev else []) + ["after"]
    dbs = [f"tokenauth_bench_{run}_{n}" for n in names]
    with tempfile.TemporaryDirectory(prefix="tokenauth-bench-") as tmp:
        trees = {}
        for n, db in zip(names, dbs, strict=True):
            root = snapshot(args.rev, Path(tmp) / n) if n == "before" else ROOT
            env = {"BENCH_PG": f"{pg.rsplit('/', 1)[0]}/{db}", "BENCH_REDIS": redis}
            env["BENCH_SQLITE"] = f"sqlite:///{tmp}/{n}.sqlite3"
            env["BENCH_PREFIX"] = f"tokenauth-bench:{run}:{n}:"
            trees[n] = Tree(root, env, Path(tmp) / f"{n}-files")
        configs = [c for c in CONFIGS if c != "redis" or redis]
        ctx = Context(args.quick, trees, configs, args.clock)
        print(
            f"flask_tokenauth benchmarks, {datetime.now(timezone.utc):%Y-%m-%d %H:%M}"
            f" UTC, Python {platform.python_version()}, {os.cpu_count()} CPUs,"
            f" {'quick' if args.quick else 'full'} run of {', '.join(parts)}"
            + ("" if redis else "; Redis unreachable: its rows are skipped"),
            flush=True,
        )
        databases(pg, dbs)
        noises: dict[str, str] = {}
        try:
            for n, tree in trees.items():
                tree.tmp.mkdir()
                tree.call("setup", [], 0, 0)
                revision = f" = {args.rev}" if n == "before" else " (working tree)"
                print(f"  {n}{revision}: flask_tokenauth from {tree.library}")
            for part in parts:
                print(f"\n--- {part}", flush=True)
                start, cpu = time.monotonic(), cpu_sample()
                try:
                    (getattr(inprocess, part, None) or getattr(served, part))(ctx)
                except Exception:
                    traceback.print_exc()
                    ctx.rows.append(Row(f"{part}: FAILED (see above)", {}, ok=False))
                took = f"{time.monotonic() - start:.0f} s"
                noises[part] = f"{took}, {noise(cpu, cpu_sample())}"
        finally:
            for tree in trees.values():
                if tree.pool:
                    tree.pool.shutdown()
                if redis:
                    redis_ok(redis, tree.env["BENCH_PREFIX"])
            databases(pg, dbs, drop=True)
    table(ctx, noises)
    if args.json:
        rows = [r.__dict__ for r in ctx.rows]
        data = {"rows": rows, "noise": noises, "samples": ctx.samples}
        args.json.write_text(json.dumps(data, default=str, indent=1))
    failed = any(r.ok is False and not r.values for r in ctx.rows)
    return 1 if failed or (args.strict and any(r.ok is False for r in ctx.rows)) else 0
