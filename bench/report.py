"""Turning measurements into the markdown table and PNG chart in ``bench/results/``.

Added latency is a target's latency minus the floor's (direct to the upstream) measured in the
same run; throughput is per core because every proxy is pinned to one core. Every figure is
also given as a ratio to the floor and to LiteLLM, and the aigw rows are checked against the
targets of DESIGN.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "chart", "markdown"]

TARGETS = {
    "added_p50_ms": 0.5,
    "added_p99_ms": 1.5,
    "rps_c16": 4000.0,
    "rss_mb": 60.0,
    "added_ttft_p50_ms": 0.5,
}
Results = Mapping[str, Any]


def _get(row: Results, case: str, field: str) -> float | None:
    """A figure of one phase; None when absent or when no request completed in the phase."""
    if row.get(case, {}).get("requests", 1) == 0:
        return None
    value = row.get(case, {}).get(field)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def derived(rows: Mapping[str, Results]) -> dict[str, dict[str, float | None]]:
    """Per target: added latencies (ms), throughput and RSS (MB)."""
    floor = rows.get("direct", {})
    out: dict[str, dict[str, float | None]] = {}
    for key, row in rows.items():

        def added(case: str, field: str, row: Results = row) -> float | None:
            mine, base = _get(row, case, field), _get(floor, case, field)
            return None if mine is None or base is None else (mine - base) / 1000

        rss, rss_start = row.get("rss_end"), row.get("rss_start")
        out[key] = {
            "p50_ms": _ms(_get(row, "c1", "p50_us")),
            "p99_ms": _ms(_get(row, "c1", "p99_us")),
            "added_p50_ms": added("c1", "p50_us"),
            "added_p99_ms": added("c1", "p99_us"),
            "ttft_p50_ms": _ms(_get(row, "stream_c1", "ttft_p50_us")),
            "added_ttft_p50_ms": added("stream_c1", "ttft_p50_us"),
            "added_ttft_p99_ms": added("stream_c1", "ttft_p99_us"),
            "rps_c16": _get(row, "c16", "rps"),
            "p99_c16_ms": _ms(_get(row, "c16", "p99_us")),
            "rps_max": _get(row, "max", "rps"),
            "rps_soak": _get(row, "soak", "rps"),
            "stream_rps_c16": _get(row, "stream_c16", "rps"),
            "rss_mb": rss / 2**20 if rss else None,
            "rss_start_mb": rss_start / 2**20 if rss_start else None,
            "served": float(row.get("served", 0)),
        }
    return out


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}\N{MULTIPLICATION SIGN}"


def markdown(results: Results) -> str:
    rows: Mapping[str, Results] = results["targets"]
    d = derived(rows)
    labels = {k: r["label"] for k, r in rows.items()}
    machine = results["machine"]
    lines = [
        "# aigw benchmark results",
        "",
        f"**Machine:** {machine['line']}",
        "",
        f"**Command:** `{results['command']}`; run at {results['started']} UTC, "
        f"took {results['elapsed_s']:.0f} s. Load: {results['load_line']}",
        "",
        "Proxies pinned to one core (so requests/s are per core); the fake upstream, Redis and the "
        "load generators (wrk for plain requests, `bench/load.py` for streams) share the other; "
        f"all at nice {results.get('nice', 0)}, in a network namespace with only loopback: "
        f"{'yes' if results.get('network_namespace') else 'no'}. "
        "Added latency = target minus direct-to-upstream, same run, same load tool. "
        "Non-streaming at concurrency 1, 16 and 64 (max throughput); streaming TTFT = time to "
        "the first content token.",
        "",
        "## Summary",
        "",
        "| target | added p50 c=1 (ms) | added p99 c=1 (ms) | added TTFT p50 c=1 (ms) "
        "| req/s/core c=16 | max req/s/core (c=64) | sustained req/s/core (soak, c=16) "
        "| RSS (MB) after N requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, v in d.items():
        served = int(v["served"] or 0)
        rss = "n/a"
        if v["rss_mb"] is not None:
            rss = (
                f"{v['rss_mb']:.1f} after {served:,} (after warm-up: {_fmt(v['rss_start_mb'], 1)})"
            )
        lines.append(
            f"| {labels[key]} | {_fmt(v['added_p50_ms'], 3)} | {_fmt(v['added_p99_ms'], 3)} "
            f"| {_fmt(v['added_ttft_p50_ms'], 3)} | {_fmt(v['rps_c16'])} | {_fmt(v['rps_max'])} "
            f"| {_fmt(v['rps_soak'])} | {rss} |"
        )
    floor, lite = d.get("direct", {}), d.get("litellm", {})
    lines += [
        "",
        "## Ratios",
        "",
        "To the floor: latency and TTFT as multiples of direct-to-upstream, throughput as a "
        "fraction of it. To LiteLLM: added latency, throughput and RSS over LiteLLM's. "
        "n/a: not measured, or no request completed within a phase's rounds.",
        "",
        "| target | p50 ÷ floor | p99 ÷ floor | TTFT p50 ÷ floor | req/s c=16 ÷ floor "
        "| added p50 ÷ LiteLLM | added p99 ÷ LiteLLM | req/s c=16 ÷ LiteLLM | RSS ÷ LiteLLM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, v in d.items():
        lines.append(
            f"| {labels[key]} | {_ratio(v['p50_ms'], floor.get('p50_ms'))} "
            f"| {_ratio(v['p99_ms'], floor.get('p99_ms'))} "
            f"| {_ratio(v['ttft_p50_ms'], floor.get('ttft_p50_ms'))} "
            f"| {_ratio(v['rps_c16'], floor.get('rps_c16'))} "
            f"| {_ratio(v['added_p50_ms'], lite.get('added_p50_ms'))} "
            f"| {_ratio(v['added_p99_ms'], lite.get('added_p99_ms'))} "
            f"| {_ratio(v['rps_c16'], lite.get('rps_c16'))} "
            f"| {_ratio(v['rss_mb'], lite.get('rss_mb'))} |"
        )
    lines += ["", "## Raw measurements", "", *_raw_table(rows), ""]
    lines += _targets_check(d, labels, max(results.get("load_average") or [0.0]))
    lines += _evidence(rows)
    skipped = results.get("skipped") or {}
    if skipped:
        lines += ["", "## Not measured", ""]
        lines += [f"- `{k}`: {why}" for k, why in skipped.items()]
    for key, summary in (results.get("profiles") or {}).items():
        first = summary.split("### Self time (top frame)")[0]
        lines += ["", f"## Profile: {labels.get(key, key)} (wrk c=16, py-spy)", "", first.strip()]
        lines += ["", f"Full tables: [profile-{key}.md](profile-{key}.md)."]
    lines += ["", "![chart](results.png)", ""]
    return "\n".join(lines)


def _evidence(rows: Mapping[str, Results]) -> list[str]:
    """What the sidecars said they did: bundle, policies, and Redis traffic for shared state."""
    out: list[str] = []
    for key, row in rows.items():
        evidence = row.get("evidence")
        if not evidence:
            continue
        bundle = (evidence.get("status") or {}).get("bundle") or {}
        text = f"- `{key}`: bundle revision {bundle.get('revision')}, policies "
        text += f"{bundle.get('policies')}, routes {bundle.get('routes')}"
        calls = evidence.get("redis_calls")
        if calls is not None:
            busiest = ", ".join(f"{c} {n:,}" for c, n in sorted(calls.items(), key=lambda x: -x[1]))
            text += f"; Redis served: {busiest or 'nothing'}"
        out.append(text)
    return ["", "## What the sidecars reported", "", *out] if out else []


def _raw_table(rows: Mapping[str, Results]) -> list[str]:
    head = [
        "| target | case | requests | errors | seconds | req/s | p50 (ms) | p99 (ms) "
        "| TTFT p50 (ms) | TTFT p99 (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in rows.items():
        for case in ("c1", "c16", "max", "stream_c1", "stream_c16", "soak"):
            r = row.get(case)
            if not r:
                continue
            head.append(
                f"| {key} | {case} | {r['requests']:,} | {r['errors']} | {r['seconds']:.1f} "
                f"| {_fmt(r['rps'])} | {_fmt(_ms(r['p50_us']), 3)} | {_fmt(_ms(r['p99_us']), 3)} "
                f"| {_fmt(_ms(r.get('ttft_p50_us')), 3)} | {_fmt(_ms(r.get('ttft_p99_us')), 3)} |"
            )
    return head


def _targets_check(
    d: Mapping[str, Mapping[str, float | None]], labels: Mapping[str, str], load: float
) -> list[str]:
    keys = [k for k in ("aigw-full", "aigw") if k in d]
    if not keys:
        return ["## DESIGN targets", "", "The aigw sidecar was not measured in this run."]
    lines = ["## DESIGN targets", ""]
    if load > 1.0:
        lines += [
            f"**Not a verdict:** other work loaded this machine during the run (load average "
            f"up to {load:.1f} on {os.cpu_count()} cores). Judge the targets on an idle machine.",
            "",
        ]
    lines += ["| target | " + " | ".join(labels[k] for k in keys) + " |"]
    lines.append("|---|" + "---:|" * len(keys))
    checks = [
        ("added p50 c=1 ≤ 0.5 ms", "added_p50_ms", True),
        ("added p99 c=1 ≤ 1.5 ms", "added_p99_ms", True),
        ("req/s on one core c=16 ≥ 4,000", "rps_c16", False),
        ("RSS ≤ 60 MB after the soak", "rss_mb", True),
        ("stream adds ≤ 0.5 ms to TTFT (p50)", "added_ttft_p50_ms", True),
    ]
    for text, field, at_most in checks:
        cells = []
        for k in keys:
            value = d[k][field]
            if value is None:
                cells.append("n/a")
                continue
            ok = value <= TARGETS[field] if at_most else value >= TARGETS[field]
            cells.append(f"{_fmt(value, 3)} {'✅' if ok else '❌'}")
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return lines


def chart(results: Results, out: Path) -> None:
    """Four panels: added latency, TTFT, throughput per core, RSS."""
    import matplotlib  # noqa: PLC0415 - optional, heavy

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = results["targets"]
    d = derived(rows)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        (axes[0][0], ["added_p50_ms", "added_p99_ms"], "added latency c=1 (ms, log)", True),
        (axes[0][1], ["added_ttft_p50_ms", "added_ttft_p99_ms"], "added TTFT c=1 (ms, log)", True),
        (axes[1][0], ["rps_c16", "rps_max"], "requests/s per core (c=16, c=64)", False),
        (axes[1][1], ["rss_mb"], "RSS after the run (MB)", False),
    ]
    goals = {  # DESIGN's targets for the sidecar, drawn as dashed lines
        0: [(0.5, "target p50 0.5 ms"), (1.5, "target p99 1.5 ms")],
        1: [(0.5, "target TTFT 0.5 ms")],
        2: [(4000.0, "target 4,000 req/s")],
        3: [(60.0, "target 60 MB")],
    }
    width = 0.8
    for number, (ax, fields, title, log) in enumerate(panels):
        for value, text in goals[number]:
            ax.axhline(value, linestyle="--", linewidth=0.8, color="grey", label=text)
        keys = [k for k in d if not (log and k == "direct")]  # the floor adds nothing to itself
        step = width / len(fields)
        for i, field in enumerate(fields):
            values = [max(d[k][field] or 0.0, 1e-3) if log else (d[k][field] or 0.0) for k in keys]
            xs = [x + i * step for x in range(len(keys))]
            bars = ax.bar(xs, values, step, label=field)
            ax.bar_label(bars, labels=[_fmt(d[k][field], 2) for k in keys], fontsize=7)
        ax.set_xticks([x + width / 2 - step / 2 for x in range(len(keys))], keys, fontsize=8)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"aigw bench — {results['machine']['line']}\n{results.get('load_line', '')}", fontsize=8
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
