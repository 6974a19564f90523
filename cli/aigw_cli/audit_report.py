"""``aigw audit report FILE... --by tenant,use_case --since 24h``: answers from the trail.

Reads the call records of audit files (``docs/audit.md``) whose ``time`` falls in the
window ``[until - since, until)`` and prints, per group of the ``--by`` dimensions:

- calls, errors and error rate, retries (attempts beyond the first) and retry rate,
  blocked calls, cache hit rate;
- tokens (input, output, cached) and cost in USD;
- the top movers against the window of the same length just before it: the cost change
  and what moved with it (more calls, longer prompts, more retries, a lower cache hit rate);
- policy triggers: decisions by step, code and action (blocked, warned, observed, ...).

``--format table`` (the terminal), ``csv`` (one row per group) or ``json`` (all of it);
``--chart PATH.png`` draws cost over time for the top groups (matplotlib, imported only
here: never by the sidecar).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["Group", "Window", "add_report_arguments", "load_calls", "run_report", "summarize"]

DIMENSIONS = (
    "tenant",
    "use_case",
    "app",
    "route",
    "backend",
    "model",
    "provider",
    "operation",
    "api",
    "status",
    "error_type",
    "policy",
    "namespace",
)
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--by",
        default="tenant,use_case",
        help=f"comma-separated dimensions (of {', '.join(DIMENSIONS)}; default tenant,use_case)",
    )
    parser.add_argument("--since", default="24h", help="window length: 30m, 24h, 7d (default 24h)")
    parser.add_argument(
        "--until", help="end of the window, ISO 8601 UTC (default: now); e.g. 2026-12-01T12:00:00"
    )
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--top", type=int, default=5, help="top movers and chart lines (5)")
    parser.add_argument("--chart", type=Path, help="write a PNG of cost over time by top group")


def _usd(amount: Decimal) -> str:
    return f"{amount:.9f}"


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 24h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class Call:
    """The fields of one call record a report reads."""

    time: datetime
    keys: dict[str, str]
    cost: Decimal
    input: int
    output: int
    cached: int
    attempts: int
    error: bool
    blocked: bool
    cache_hit: bool
    triggers: list[tuple[str, str, str]]


def _call(record: dict[str, Any]) -> Call | None:
    if record.get("kind") != "call" or not isinstance(record.get("time"), str):
        return None
    try:
        when = parse_time(record["time"])
    except ValueError:
        return None
    usage = record.get("usage") or {}
    policy = record.get("policy") or {}
    pod = record.get("pod") or {}
    keys = {d: str(record.get(d)) for d in DIMENSIONS if d in record}
    keys["policy"] = str(policy.get("name"))
    keys["namespace"] = str(pod.get("namespace"))
    decisions = record.get("decisions") or []
    triggers = [
        (str(d.get("step")), str(d.get("code")), str(d.get("action")))
        for d in decisions
        if isinstance(d, dict) and d.get("action") not in ("allow", "route")
    ]
    status = record.get("status")
    return Call(
        time=when,
        keys=keys,
        cost=Decimal(record.get("cost_usd") or "0"),
        input=int(usage.get("input") or 0),
        output=int(usage.get("output") or 0),
        cached=int(usage.get("cached") or 0),
        attempts=len(record.get("attempts") or []),
        error=isinstance(status, int) and status >= 400,
        blocked=any(action == "blocked" for _, _, action in triggers),
        cache_hit=record.get("cache") == "hit",
        triggers=triggers,
    )


def load_calls(paths: Iterable[Path]) -> list[Call]:
    from aigw_sidecar.audit import iter_records  # noqa: PLC0415 - the one reader of records

    calls = [c for r in iter_records(paths) if (c := _call(r)) is not None]
    calls.sort(key=lambda c: c.time)
    return calls


@dataclass
class Group:
    """Totals of one group of calls."""

    key: tuple[str, ...]
    calls: int = 0
    errors: int = 0
    blocked: int = 0
    retries: int = 0
    retried_calls: int = 0
    cache_hits: int = 0
    input: int = 0
    output: int = 0
    cached: int = 0
    cost: Decimal = Decimal(0)
    triggers: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, call: Call) -> None:
        self.calls += 1
        self.errors += call.error
        self.blocked += call.blocked
        self.retries += max(0, call.attempts - 1)
        self.retried_calls += call.attempts > 1
        self.cache_hits += call.cache_hit
        self.input += call.input
        self.output += call.output
        self.cached += call.cached
        self.cost += call.cost
        self.triggers.update(call.triggers)

    def rate(self, part: int) -> float:
        return part / self.calls if self.calls else 0.0

    def row(self, dims: Sequence[str]) -> dict[str, Any]:
        return {
            **dict(zip(dims, self.key, strict=True)),
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": round(self.rate(self.errors), 4),
            "retries": self.retries,
            "retry_rate": round(self.rate(self.retried_calls), 4),
            "blocked": self.blocked,
            "cache_hit_rate": round(self.rate(self.cache_hits), 4),
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cached_tokens": self.cached,
            "cost_usd": _usd(self.cost),
        }


@dataclass
class Window:
    start: datetime
    end: datetime
    groups: dict[tuple[str, ...], Group]
    total: Group


def summarize(calls: Iterable[Call], dims: Sequence[str], start: datetime, end: datetime) -> Window:
    groups: dict[tuple[str, ...], Group] = {}
    total = Group(("all",))
    for call in calls:
        if not start <= call.time < end:
            continue
        key = tuple(call.keys.get(d, "None") for d in dims)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key)
        group.add(call)
        total.add(call)
    return Window(start, end, groups, total)


def movers(now: Window, before: Window, top: int) -> list[dict[str, Any]]:
    """Groups by the size of their cost change, with what moved alongside."""
    out = []
    for key in set(now.groups) | set(before.groups):
        a = before.groups.get(key, Group(key))
        b = now.groups.get(key, Group(key))
        change = b.cost - a.cost
        drivers: dict[str, Any] = {
            "calls": b.calls - a.calls,
            "avg_input_tokens": round(b.input / max(1, b.calls) - a.input / max(1, a.calls), 1),
            "retries_per_call": round(b.retries / max(1, b.calls) - a.retries / max(1, a.calls), 3),
            "cache_hit_rate": round(b.rate(b.cache_hits) - a.rate(a.cache_hits), 4),
        }
        out.append(
            {
                "key": list(key),
                "cost_before_usd": _usd(a.cost),
                "cost_usd": _usd(b.cost),
                "change_usd": _usd(change),
                "drivers": drivers,
            }
        )
    out.sort(key=lambda m: abs(Decimal(str(m["change_usd"]))), reverse=True)
    return out[:top]


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        for r in rows
    ]
    return "\n".join(lines)


def chart(calls: Sequence[Call], dims: Sequence[str], window: Window, top: int, path: Path) -> None:
    """Cost over time (bucketed) of the ``top`` groups by cost, as a PNG."""
    import matplotlib  # noqa: PLC0415 - the report's chart only; never the sidecar

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    span = (window.end - window.start).total_seconds()
    bucket = max(60.0, span / 48)
    ranked = sorted(window.groups.values(), key=lambda g: g.cost, reverse=True)[:top]
    wanted = {g.key for g in ranked}
    series: dict[tuple[str, ...], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for call in calls:
        if not window.start <= call.time < window.end:
            continue
        key = tuple(call.keys.get(d, "None") for d in dims)
        if key in wanted:
            slot = int((call.time - window.start).total_seconds() // bucket)
            series[key][slot] += float(call.cost)
    slots = int(span // bucket) + 1
    figure, axes = plt.subplots(figsize=(10, 5))
    for group in ranked:
        values = series[group.key]
        xs = [(window.start + timedelta(seconds=i * bucket)).timestamp() for i in range(slots)]
        axes.plot(xs, [values.get(i, 0.0) for i in range(slots)], label="/".join(group.key))
    ticks = axes.get_xticks()
    axes.set_xticks(ticks, [datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M") for t in ticks])
    axes.set_title(f"cost (USD per {int(bucket // 60)} min) by {', '.join(dims)}")
    axes.set_ylabel("USD")
    axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_report(args: argparse.Namespace) -> int:
    dims = [d.strip() for d in args.by.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    try:
        if unknown or not dims:
            raise ValueError(f"unknown dimension(s) {unknown}; choose from {', '.join(DIMENSIONS)}")
        length = parse_duration(args.since)
        end = parse_time(args.until) if args.until else datetime.now(UTC)
        calls = load_calls(args.files)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    now = summarize(calls, dims, end - length, end)
    before = summarize(calls, dims, end - 2 * length, end - length)
    rows = [g.row(dims) for g in sorted(now.groups.values(), key=lambda g: g.cost, reverse=True)]
    moved = movers(now, before, args.top)
    triggers = [
        {"step": s, "code": c, "action": a, "count": n}
        for (s, c, a), n in now.total.triggers.most_common()
    ]
    if args.chart is not None:
        chart(calls, dims, now, args.top, args.chart)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "window": {"start": now.start.isoformat(), "end": now.end.isoformat()},
                    "by": dims,
                    "groups": rows,
                    "total": now.total.row(["all"]),
                    "movers": moved,
                    "triggers": triggers,
                },
                indent=2,
            )
        )
        return 0
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=[*dims, *Group(()).row([]).keys()])
        writer.writeheader()
        writer.writerows(rows)
        return 0
    columns = [*dims, "calls", "error_rate", "retry_rate", "blocked", "cache_hit_rate"]
    columns += ["input_tokens", "output_tokens", "cost_usd"]
    print(f"window {now.start:%Y-%m-%d %H:%M} .. {now.end:%Y-%m-%d %H:%M} UTC")
    print(
        _table([*rows, {dims[0]: "(all)", **now.total.row(["all"])}], columns)
        if rows
        else "no calls"
    )
    if moved:
        print("\ntop movers (cost change against the window before)")
        mover_rows = [
            {
                "group": "/".join(m["key"]),
                "before": m["cost_before_usd"],
                "now": m["cost_usd"],
                "change": m["change_usd"],
                **m["drivers"],
            }
            for m in moved
        ]
        print(_table(mover_rows, list(mover_rows[0])))
    if triggers:
        print("\npolicy triggers")
        print(_table(triggers, ["step", "code", "action", "count"]))
    return 0
