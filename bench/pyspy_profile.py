"""Where a proxy spends its time: py-spy samples it under load, we summarise the stacks.

``py-spy record --format raw`` writes collapsed stacks (``f1;f2;...;fn count``). The summary
gives, per function, the share of samples where it is on the stack (inclusive) and at the top
(self), and a coarse split by package (aiohttp, asyncio/uvloop, json, aigw_sidecar...), which
is what tells whether governance code or plumbing costs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

__all__ = ["record", "summarise"]

_LINE = re.compile(r":\d+\)$")
_GROUPS = (
    ("aigw_sidecar", "aigw sidecar code"),
    ("aigw_contract", "aigw contract (bundle models)"),
    ("aiohttp/", "aiohttp (HTTP server and client)"),
    ("multidict", "multidict/yarl"),
    ("yarl", "multidict/yarl"),
    ("json/", "json"),
    ("redis", "redis client"),
    ("prometheus_client", "prometheus_client"),
    ("opentelemetry", "opentelemetry"),
    ("asyncio/", "asyncio"),
    ("uvloop", "asyncio"),
)


def record(pid: int, seconds: float, out: Path) -> Path | None:
    """Samples ``pid`` for ``seconds`` into ``out`` (collapsed stacks); None without py-spy."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return None
    command = [py_spy, "record", "--rate", "250", "--duration", str(max(1, round(seconds)))]
    command += ["--format", "raw", "--output", str(out), "--pid", str(pid), "--nonblocking"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    return out if done.returncode == 0 and out.exists() else None


def _group(frame: str) -> str | None:
    for needle, name in _GROUPS:
        if needle in frame:
            return name
    return None


def summarise(lines: Iterable[str], top: int = 25) -> str:
    """A markdown summary of collapsed stacks."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for raw in lines:
        stack, _, count_text = raw.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        groups[_group(frames[-1]) or "other (interpreter, stdlib, idle)"] += count
    if not total:
        return "No samples.\n"
    out = [f"{total} samples.\n", "### Self time by package (top frame)\n"]
    out += ["| share | package |", "|---:|---|"]
    out += [f"| {n / total:.1%} | {name} |" for name, n in groups.most_common()]
    out += ["", "### Self time (top frame)\n", "| share | function |", "|---:|---|"]
    out += [f"| {n / total:.1%} | `{f}` |" for f, n in self_counts.most_common(top)]
    aigw = [(f, n) for f, n in inclusive.most_common() if "aigw_sidecar" in f][:top]
    out += ["", "### aigw sidecar functions, inclusive\n", "| share | function |", "|---:|---|"]
    out += [f"| {n / total:.1%} | `{f}` |" for f, n in aigw]
    return "\n".join(out) + "\n"
