"""How much other work shared the machine during a run: the honest noise figure.

The load average counts this run's own processes too (a proxy and a load generator keep both
cores busy), so it cannot tell a quiet machine from a busy one while the run goes on. The
kernel's CPU counters can: the machine's busy time over the run (``/proc/stat``) minus the
CPU time of this harness and every process it started and reaped (``os.times``) is what
others used. ``steal`` is time the hypervisor gave to other machines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "noise"]


@dataclass(frozen=True)
class Snapshot:
    busy_s: float
    """CPU time of the whole machine spent on anything but idle, iowait and steal."""
    steal_s: float
    own_s: float
    """This process and its reaped children, user + system."""
    at: float

    @classmethod
    def take(cls) -> Snapshot:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system
        return cls(
            (user + nice + system + irq + softirq) / ticks, steal / ticks, own, times.elapsed
        )


def noise(before: Snapshot, after: Snapshot, cores: int) -> dict[str, float]:
    """Others' CPU over the run, in core-seconds and as a share of the machine.

    Valid once every process the run started has exited and been waited for.
    """
    wall = max(after.at - before.at, 1e-9)
    others = max(0.0, (after.busy_s - before.busy_s) - (after.own_s - before.own_s))
    steal = after.steal_s - before.steal_s
    return {
        "wall_s": round(wall, 1),
        "others_cpu_s": round(others, 1),
        "others_share": round(others / (wall * cores), 4),
        "steal_s": round(steal, 1),
        "own_cpu_s": round(after.own_s - before.own_s, 1),
    }
