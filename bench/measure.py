"""The measurement plan: every target through the same phases, interleaved in rounds.

All targets run at once (idle ones cost nothing); each phase (concurrency 1, 16, 64, then
streams at 1 and 16) is split into rounds, and each round visits every target in a rotated
order. Background load that drifts during the run (a shared machine) then hits every target
alike instead of whichever happened to be measured at the time. A phase's figure for a
target is its rounds combined: requests, seconds and the proxy's CPU time summed,
percentiles the median of the rounds'. CPU per call (the proxy's user + system time, all
threads and children, over the requests it served in the phase) is the steadiest figure on
a shared machine: waiting for a time slice adds latency, not CPU.

After the phases some proxies are soaked towards a fixed request count, bounded by time, and
their RSS read. wrk runs a whole ``-d`` even after a Lua stop, so the soak is a series of
time-bounded wrk runs, each sized from the rate seen so far: every run's requests are divided
by that run's real duration.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from load import UNIQUE, LoadResult, run_stream, run_wrk
from procs import cpu_seconds, rss_bytes
from targets import BenchEnv, Target

__all__ = [
    "CHAT",
    "Plan",
    "bodies",
    "broadest",
    "combine",
    "measure",
    "soak",
    "soak_chunk_seconds",
]

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello to the benchmark in a few words please"}],
    "max_tokens": 16,
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Fixed durations (seconds) and request counts: the run is bounded by construction."""

    warm_s: float = 2
    c1_s: float = 6
    c16_s: float = 6
    max_s: float = 3
    stream_c1_total: int = 2_000
    stream_c16_total: int = 20_000
    stream_s: float = 4
    rounds: int = 3
    soak_to: int = 100_000
    soak_max_s: float = 30
    soak_max_s_aigw: float = 70
    soaked: tuple[str, ...] = ("passthrough", "aigw")
    """Targets soaked (RSS over many calls) besides the aigw row with the most steps; the
    others' RSS is read after the phases."""
    profile_s: float = 5

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            warm_s=1, c1_s=1, c16_s=1, max_s=1, stream_c1_total=50, stream_c16_total=100,
            stream_s=2, rounds=1, soak_to=0, soak_max_s=0, soak_max_s_aigw=0, profile_s=0,
        )  # fmt: skip


def bodies(target: Target) -> tuple[bytes, bytes]:
    """The plain and the streaming request body, naming the target's model.

    Unless the target asks for one fixed body (a cache hit), the prompt carries
    :data:`load.UNIQUE`, so every request differs (an exact cache misses every time).
    """
    chat = {**CHAT, "model": target.model}
    if target.unique_bodies:
        text = f"{CHAT['messages'][0]['content']}, request {UNIQUE}"  # type: ignore[index]
        chat["messages"] = [{"role": "user", "content": text}]
    stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(chat).encode(), json.dumps(stream).encode()


def combine(parts: Sequence[LoadResult]) -> LoadResult:
    """Rounds of one phase as one result: sums, and the median of each percentile."""

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return LoadResult(
        requests=sum(p.requests for p in parts),
        seconds=sum(p.seconds for p in parts),
        errors=sum(p.errors for p in parts),
        p50_us=median([p.p50_us for p in parts]) or 0.0,
        p99_us=median([p.p99_us for p in parts]) or 0.0,
        ttft_p50_us=median([p.ttft_p50_us for p in parts]),
        ttft_p99_us=median([p.ttft_p99_us for p in parts]),
        cpu_s=None if any(p.cpu_s is None for p in parts) else sum(p.cpu_s or 0 for p in parts),
        round_cpu_us=tuple(c for p in parts if (c := p.cpu_us_per_call) is not None),
    )


def _one(
    target: Target, env: BenchEnv, *, case: str, connections: int, seconds: float, total: float
) -> LoadResult:
    """One load run, with the proxy's CPU time over it."""
    body, stream_body = bodies(target)
    cpu_before = cpu_seconds(target.pid) if target.pid else None
    if case.startswith("stream"):
        result = run_stream(
            target.url, stream_body, target.headers, concurrency=connections,
            total=int(total), max_seconds=seconds, cpus=env.load_cpu, python=env.python,
        )  # fmt: skip
    else:
        result = run_wrk(
            target.url, body, target.headers, connections=connections, seconds=seconds,
            cpus=env.load_cpu,
        )  # fmt: skip
    if target.pid is None or cpu_before is None:
        return result
    return dataclasses.replace(result, cpu_s=cpu_seconds(target.pid) - cpu_before)


def measure(targets: Sequence[Target], env: BenchEnv, plan: Plan, log: Log) -> dict[str, Any]:
    """Every phase for every target, interleaved; returns one result row per target."""
    rows: dict[str, dict[str, Any]] = {
        t.key: {"label": t.label, "steps": list(t.steps), "served": 0} for t in targets
    }
    loads: list[float] = []
    for target in targets:
        rows[target.key]["rss_idle"] = rss_bytes(target.pid) if target.pid else None
        body, _ = bodies(target)
        warm = run_wrk(target.url, body, target.headers, connections=4, seconds=plan.warm_s,
                       cpus=env.load_cpu)  # fmt: skip
        rows[target.key]["served"] += warm.requests
        rows[target.key]["rss_start"] = rss_bytes(target.pid) if target.pid else None
    rounds = max(1, plan.rounds)
    phases = [  # case, connections, seconds, request count (streams)
        ("c1", 1, plan.c1_s / rounds, 0.0),
        ("c16", 16, plan.c16_s / rounds, 0.0),
        ("max", 64, plan.max_s / rounds, 0.0),
        ("stream_c1", 1, plan.stream_s / rounds, plan.stream_c1_total / rounds),
        ("stream_c16", 16, plan.stream_s / rounds, plan.stream_c16_total / rounds),
    ]
    for case, connections, seconds, total in phases:
        loads.append(os.getloadavg()[0])
        parts: dict[str, list[LoadResult]] = {t.key: [] for t in targets}
        for index in range(rounds):
            shift = index % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                result = _one(
                    target, env, case=case, connections=connections, seconds=seconds, total=total
                )
                parts[target.key].append(result)
        for target in targets:
            result = combine(parts[target.key])
            rows[target.key][case] = result.to_json()
            rows[target.key]["served"] += result.requests
            log(f"  {target.key} {case}: {line(result)}")
    for row in rows.values():
        row["load_during"] = [round(x, 2) for x in loads]
    return rows


def soak_chunk_seconds(remaining: int, rate: float, time_left: float) -> int:
    """Whole seconds of the next soak run: enough for ``remaining`` requests at ``rate``
    (plus 5%), at least 1, at most what ``time_left`` allows (0: stop)."""
    if remaining <= 0 or time_left < 1:
        return 0
    wanted = math.ceil(remaining / max(rate, 1.0) * 1.05)
    return max(1, min(wanted, math.floor(time_left)))


def broadest(targets: Sequence[Target]) -> str | None:
    """The measured aigw row with the most steps (the full pipeline once every step exists)."""
    rows = [t for t in targets if t.key.startswith("aigw") and t.unique_bodies]
    return max(rows, key=lambda t: len(t.steps)).key if rows else None


def soak(
    target: Target, row: dict[str, Any], env: BenchEnv, plan: Plan, log: Log, *, also: str | None
) -> None:
    """Loads a proxy towards ``plan.soak_to`` requests in all (time-capped), then reads RSS.

    Only the targets named in ``plan.soaked`` and ``also`` are soaked; the others get their
    RSS read.
    """
    if target.pid is None:
        row["rss_end"] = None
        return
    served = int(row["served"])
    if target.key in (*plan.soaked, also) and plan.soak_to > served:
        body, _ = bodies(target)
        time_left = plan.soak_max_s_aigw if target.key.startswith("aigw") else plan.soak_max_s
        rate = float(row.get("c16", {}).get("rps") or 100.0)
        parts: list[LoadResult] = []
        while seconds := soak_chunk_seconds(plan.soak_to - served, rate, time_left):
            cpu_before = cpu_seconds(target.pid)
            result = run_wrk(
                target.url, body, target.headers, connections=16, seconds=seconds,
                cpus=env.load_cpu,
            )  # fmt: skip
            result = dataclasses.replace(result, cpu_s=cpu_seconds(target.pid) - cpu_before)
            parts.append(result)
            served += result.requests
            time_left -= result.seconds
            rate = result.rps or rate
        if parts:
            result = combine(parts)
            row["soak"] = result.to_json()
            log(f"  {target.key} soak: {result.requests:,} more requests in "
                f"{result.seconds:.1f} s ({len(parts)} wrk runs): {line(result)}")  # fmt: skip
        row["served"] = served
    row["rss_end"] = rss_bytes(target.pid)


def line(result: LoadResult) -> str:
    text = f"{result.rps:,.0f} req/s, p50 {result.p50_us / 1000:.3f} ms, "
    text += f"p99 {result.p99_us / 1000:.3f} ms, errors {result.errors}"
    if result.ttft_p50_us is not None:
        text += f", TTFT p50 {result.ttft_p50_us / 1000:.3f} ms"
    if result.cpu_us_per_call is not None:
        text += f", CPU {result.cpu_us_per_call:.0f} us/call"
    return text
