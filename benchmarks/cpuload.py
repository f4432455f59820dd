"""Who else used the CPUs while a part ran.

On a 2-core machine a benchmark is only as good as its neighbours are
quiet.  Two kinds of neighbours are measured from ``/proc``:

* the hypervisor's *steal* time: CPU time given to other virtual machines;
* other processes: all busy CPU time, less this process and the children it
  has reaped (servers, wrk, workers: each part reaps its own), less the
  PostgreSQL and Redis servers (they serve this benchmark; another user of
  the same servers is counted as ours, an approximation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVICES = {"postgres", "redis-server"}
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    stat: list[int]
    mine: float
    services: float


def sample() -> Sample:
    try:
        stat = [
            int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]
        ]
    except (OSError, ValueError):
        stat = []
    times = os.times()
    mine = times.user + times.system + times.children_user + times.children_system
    return Sample(stat, mine, _services())


def _services() -> float:
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        if name not in SERVICES and not name.startswith("postgres"):
            continue
        fields = text.rsplit(")", 1)[1].split()
        # utime, stime, and the reaped children's (PostgreSQL's backends)
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / _TICK


@dataclass
class Load:
    steal: float  # share of all CPU time
    others: float  # share of all CPU time

    def describe(self) -> str:
        return (
            f"CPU time stolen by the hypervisor {self.steal:.1%}, used by other"
            f" processes {self.others:.1%}"
        )


def between(before: Sample, after: Sample) -> Load:
    if len(before.stat) < 8 or len(after.stat) < 8:
        return Load(float("nan"), float("nan"))
    delta = [b - a for a, b in zip(before.stat, after.stat, strict=False)]
    total = sum(delta)
    if total <= 0:
        return Load(float("nan"), float("nan"))
    # user, nice, system, irq, softirq (guest time is already within user)
    busy = (delta[0] + delta[1] + delta[2] + delta[5] + delta[6]) / _TICK
    ours = (after.mine - before.mine) + (after.services - before.services)
    others = max(busy - ours, 0.0) * _TICK / total
    return Load(delta[7] / total, others)
