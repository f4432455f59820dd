"""Time the host suite without flask_tokenauth, with it (``tokenauth_tables``)
and with it the slow way (our migrations per test), interleaved::

    .venv/bin/python tests/host_suite/measure.py [runs]

Each run is a fresh ``pytest`` process; the figure is pytest's own
"passed in" time (collection and the tests, imports of the test modules
included), the median of the runs, and the wall time of the process.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent
MODES = {"without": "0", "with tokenauth_tables": "1", "with migrations": "migrations"}


def run(mode: str) -> tuple[float, float]:
    args = ["-q", "-p", "no:cacheprovider", "--confcutdir", str(SUITE), str(SUITE)]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        env={**os.environ, "HOST_SUITE_TOKENAUTH": mode},
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    found = re.search(r"25 passed in ([0-9.]+)s", result.stdout)
    assert found, result.stdout
    return float(found.group(1)), wall


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in MODES}
    for _ in range(runs):
        for name, mode in MODES.items():
            times[name].append(run(mode))
    base = statistics.median(t for t, _ in times["without"])
    base_wall = statistics.median(w for _, w in times["without"])
    for name, values in times.items():
        median = statistics.median(t for t, _ in values)
        wall = statistics.median(w for _, w in values)
        print(
            f"{name:22s} pytest {median:.2f} s ({median / base:.2f}x)"
            f"   process {wall:.2f} s ({wall / base_wall:.2f}x)"
        )


if __name__ == "__main__":
    main()
