"""The measurement plan: every target through the same phases, interleaved in rounds.

All targets run at once (idle ones cost nothing); each phase (concurrency 1, 16, 64, then
streams at 1 and 16) is split into rounds, and each round visits every target in a rotated
order. Background load that drifts during the run (a shared machine) then hits every target
alike instead of whichever happened to be measured at the time. A phase's figure for a
target is its rounds combined: requests and seconds summed, percentiles the median of the
rounds'. After the phases each proxy is soaked to a fixed request count (bounded by time)
and its RSS read, then profiled under load.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from load import LoadResult, run_stream, run_wrk
from procs import rss_bytes
from targets import BenchEnv, Target

__all__ = ["CHAT", "Plan", "combine", "measure", "soak"]

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
    c1_s: float = 9
    c16_s: float = 6
    max_s: float = 6
    stream_c1_total: int = 3_000
    stream_c16_total: int = 20_000
    stream_s: float = 6
    rounds: int = 3
    soak_to: int = 100_000
    soak_max_s: float = 45
    soak_max_s_aigw: float = 80
    profile_s: float = 8

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            warm_s=1, c1_s=1, c16_s=1, max_s=1, stream_c1_total=50, stream_c16_total=100,
            stream_s=2, rounds=1, soak_to=0, soak_max_s=0, soak_max_s_aigw=0, profile_s=0,
        )  # fmt: skip


def bodies(target: Target) -> tuple[bytes, bytes]:
    """The plain and the streaming request body, naming the target's model."""
    chat = {**CHAT, "model": target.model}
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
    )


def _one(
    target: Target, env: BenchEnv, *, case: str, connections: int, seconds: float, total: float
) -> LoadResult:
    body, stream_body = bodies(target)
    if case.startswith("stream"):
        return run_stream(
            target.url, stream_body, target.headers, concurrency=connections,
            total=int(total), max_seconds=seconds, cpus=env.load_cpu, python=env.python,
        )  # fmt: skip
    return run_wrk(
        target.url, body, target.headers, connections=connections, seconds=seconds,
        cpus=env.load_cpu,
    )  # fmt: skip


def measure(targets: Sequence[Target], env: BenchEnv, plan: Plan, log: Log) -> dict[str, Any]:
    """Every phase for every target, interleaved; returns one result row per target."""
    rows: dict[str, dict[str, Any]] = {t.key: {"label": t.label, "served": 0} for t in targets}
    for target in targets:
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
    return rows


def soak(target: Target, row: dict[str, Any], env: BenchEnv, plan: Plan, log: Log) -> None:
    """Loads a proxy up to ``plan.soak_to`` requests in all (time-capped), then reads RSS."""
    if target.pid is None:
        row["rss_end"] = None
        return
    served = int(row["served"])
    if plan.soak_to > served:
        body, _ = bodies(target)
        cap = plan.soak_max_s_aigw if target.key.startswith("aigw") else plan.soak_max_s
        result = run_wrk(
            target.url, body, target.headers, connections=16, seconds=cap,
            cpus=env.load_cpu, stop_after=plan.soak_to - served,
        )  # fmt: skip
        row["soak"] = result.to_json()
        row["served"] = served + result.requests
        log(f"  {target.key} soak: {result.requests:,} more requests in {result.seconds:.1f} s")
    row["rss_end"] = rss_bytes(target.pid)


def line(result: LoadResult) -> str:
    text = f"{result.rps:,.0f} req/s, p50 {result.p50_us / 1000:.3f} ms, "
    text += f"p99 {result.p99_us / 1000:.3f} ms, errors {result.errors}"
    if result.ttft_p50_us is not None:
        text += f", TTFT p50 {result.ttft_p50_us / 1000:.3f} ms"
    return text
