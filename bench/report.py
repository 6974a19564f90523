"""Turning measurements into ``results.md``: CPU per call first, ratios to the passthrough.

CPU per call (the proxy's user + system time, all threads and children, over the requests
it served) leads, because on a shared machine waiting for a time slice moves latency and
throughput but not the CPU a call costs. Added latency is a target's latency minus the
floor's (direct to the upstream) in the same run; throughput is per core because every proxy
is pinned to one. DESIGN's targets are ratios to the bare aiohttp passthrough of the same
run; each step's marginal cost is its row minus the minimal aigw row. The chart is drawn by
``chart.py`` from the same :func:`derived` figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["FLOOR", "PYTHON_FLOOR", "derived", "fmt", "markdown", "ratio", "targets"]

FLOOR, PYTHON_FLOOR = "direct", "passthrough"
Results = Mapping[str, Any]
Figures = dict[str, float | None]
NOISY_SHARE = 0.10
"""Above this share of the machine used by others during the run, say the run was noisy."""
RSS_FLAT_MB = 5.0
"""Growth over the soak that still counts as flat."""


def _get(row: Results, case: str, field: str) -> float | None:
    """A figure of one phase; None when absent or when no request completed in the phase."""
    if row.get(case, {}).get("requests", 1) == 0:
        return None
    value = row.get(case, {}).get(field)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def _mb(value: Any) -> float | None:
    return value / 2**20 if value else None


def derived(rows: Mapping[str, Results]) -> dict[str, Figures]:
    """Per target: CPU per call (us), latencies and added latencies (ms), req/s, RSS (MB)."""
    floor = rows.get(FLOOR, {})
    out: dict[str, Figures] = {}
    for key, row in rows.items():

        def added(case: str, field: str, row: Results = row) -> float | None:
            mine, base = _get(row, case, field), _get(floor, case, field)
            return None if mine is None or base is None else (mine - base) / 1000

        figures: Figures = {
            f"cpu_{case}": _get(row, case, "cpu_us_per_call")
            for case in ("c1", "c16", "max", "stream_c1", "stream_c16", "soak")
        }
        figures |= {
            "p50_ms": _ms(_get(row, "c1", "p50_us")),
            "added_p50_ms": added("c1", "p50_us"),
            "added_p99_ms": added("c1", "p99_us"),
            "ttft_p50_ms": _ms(_get(row, "stream_c1", "ttft_p50_us")),
            "added_ttft_p50_ms": added("stream_c1", "ttft_p50_us"),
            "added_ttft_p99_ms": added("stream_c1", "ttft_p99_us"),
            "rps_c16": _get(row, "c16", "rps"),
            "rps_max": _get(row, "max", "rps"),
            "rps_soak": _get(row, "soak", "rps"),
            "stream_rps_c16": _get(row, "stream_c16", "rps"),
            "rss_idle_mb": _mb(row.get("rss_idle")),
            "rss_start_mb": _mb(row.get("rss_start")),
            "rss_mb": _mb(row.get("rss_end")),
            "served": float(row.get("served", 0)),
        }
        out[key] = figures
    return out


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}\N{MULTIPLICATION SIGN}"


def _with_ratio(d: Mapping[str, Figures], key: str, field: str, digits: int = 2) -> str:
    value = d[key][field]
    base = d.get(PYTHON_FLOOR, {}).get(field)
    if value is None or key in (FLOOR, PYTHON_FLOOR) or base is None:
        return fmt(value, digits)
    return f"{fmt(value, digits)} ({_x(ratio(value, base))})"


def targets(d: Mapping[str, Figures], stand_in: str | None = None) -> list[dict[str, Any]]:
    """DESIGN's targets, each with its figure as a ratio to the passthrough and a verdict.

    Without an ``aigw-full`` row, the full pipeline's targets are also checked on
    ``stand_in`` (the row with the most steps that exist), marked as not the target.
    """
    checks: list[dict[str, Any]] = []
    full = "aigw-full" if "aigw-full" in d or not stand_in else stand_in

    def check(key: str, what: str, field: str, limit: float, at_most: bool) -> None:
        mine = d.get(key, {}).get(field)
        value = ratio(mine, d.get(PYTHON_FLOOR, {}).get(field))
        met = None if value is None else (value <= limit if at_most else value >= limit)
        sign = "\N{LESS-THAN OR EQUAL TO}" if at_most else "\N{GREATER-THAN OR EQUAL TO}"
        checks.append({"row": key, "what": what, "value": value, "met": met,
                       "limit": f"{sign} {limit:g}\N{MULTIPLICATION SIGN}"})  # fmt: skip

    for key, cpu, p50, rps in (("aigw", 1.2, 1.1, 0.85), (full, 1.6, 1.3, 0.65)):
        check(key, "CPU per call, c=16", "cpu_c16", cpu, True)
        check(key, "added p50, c=1", "added_p50_ms", p50, True)
        if key == full:
            check(key, "added TTFT p50, c=1", "added_ttft_p50_ms", p50, True)
        check(key, "req/s, c=16", "rps_c16", rps, False)
    check("aigw-cache-hit", "added p50, c=1 (below the passthrough's)", "added_p50_ms", 1.0, True)
    idle = d.get("aigw", {}).get("rss_idle_mb")
    checks.append({"row": "aigw", "what": "RSS idle, tracing off (MB)", "value": idle,
                   "limit": "\N{LESS-THAN OR EQUAL TO} 60 MB",
                   "met": None if idle is None else idle <= 60})  # fmt: skip
    soaked = d.get(full, {})
    growth = None
    if soaked.get("rss_mb") is not None and soaked.get("rss_start_mb") is not None:
        growth = (soaked["rss_mb"] or 0) - (soaked["rss_start_mb"] or 0)
    served = soaked.get("served") or 0
    flat: bool | None = None
    why = ""
    if growth is not None and growth > RSS_FLAT_MB:
        flat = False  # grown past the limit already, however few calls
    elif growth is not None and served < 1e5:
        why = "fewer than 100,000 calls within the soak's time cap"
    elif growth is not None:
        flat = True
    checks.append({"row": full, "what": f"RSS growth over {served:,.0f} calls (MB)",
                   "value": growth, "met": flat, "why": why,
                   "limit": f"flat (\N{LESS-THAN OR EQUAL TO} {RSS_FLAT_MB:g} MB over "
                   "\N{GREATER-THAN OR EQUAL TO} 100,000 calls)"})  # fmt: skip
    return checks


def _redis_per_call(row: Results) -> str | None:
    calls = (row.get("evidence") or {}).get("redis_calls")
    served = row.get("served") or 0
    if not calls or not served:
        return None
    scripts = sum(n for c, n in calls.items() if c in ("eval", "evalsha", "fcall", "fcall_ro"))
    total = sum(n for c, n in calls.items() if c not in ("eval", "evalsha", "fcall", "fcall_ro"))
    busiest = ", ".join(
        f"{c} {n / served:.1f}" for c, n in sorted(calls.items(), key=lambda x: -x[1])[:6]
    )
    return (f"{scripts / served:.2f} script calls and {total / served:.1f} commands "
            f"(inside scripts included) per call; {busiest}")  # fmt: skip


def markdown(results: Results) -> str:
    rows: Mapping[str, Results] = results["targets"]
    d = derived(rows)
    label = {k: r["label"] for k, r in rows.items()}
    machine, noise = results["machine"], results.get("noise") or {}
    share = noise.get("others_share")
    quiet = share is not None and share <= NOISY_SHARE
    lines = [
        "# aigw benchmark results",
        "",
        f"**Machine:** {machine['line']}",
        "",
        f"**Command:** `{results['command']}`; run at {results['started']} UTC, "
        f"took {results['elapsed_s']:.0f} s.",
        "",
        f"**Load:** {results['load_line']}. "
        + (
            "Quiet enough: the figures are comparable."
            if quiet
            else "**Noisy**: other work shared the cores, so latency and throughput moved; "
            "judge by CPU per call and by ratios within this run."
        ),
        "",
        "Proxies pinned to one core (requests/s are per core); the fake upstream, Redis, "
        "Collectors and the load generators (wrk, `bench/load.py` for streams) share the other; "
        f"all at nice {results.get('nice', 0)}, in a network namespace with only loopback: "
        f"{'yes' if results.get('network_namespace') else 'no'}. Every request body is unique "
        "(an exact cache misses) except in the cache-hit row. CPU per call = the proxy's user + "
        "system time (all threads and children, `/proc/<pid>/stat`) over the requests it served "
        "in the phase. Added latency = target minus direct-to-upstream. In brackets: the ratio "
        "to the bare aiohttp passthrough (DESIGN's yardstick).",
        "",
        "## CPU per call (\N{MICRO SIGN}s)",
        "",
        "c=16 is the figure of merit; beside it, the lowest and highest of its rounds (other "
        "work only adds cycles, so the spread is the noise, and the lowest round the least "
        "disturbed).",
        "",
        "| target | c=16 | c=16 rounds | c=1 | c=64 | stream c=16 | stream c=1 | soak c=16 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in d:
        if key == FLOOR:
            continue
        spread = _spread(rows[key].get("c16", {}).get("round_cpu_us") or [])
        cells = [
            _with_ratio(d, key, f"cpu_{c}", 0)
            for c in ("c16", "c1", "max", "stream_c16", "stream_c1", "soak")
        ]
        lines.append(
            f"| {label[key]} | **{cells[0]}** | {spread} | " + " | ".join(cells[1:]) + " |"
        )
    lines += [
        "",
        "## Latency, throughput, memory",
        "",
        "| target | added p50 c=1 (ms) | added p99 c=1 (ms) | added TTFT p50 c=1 (ms) "
        "| req/s c=16 | req/s c=64 | sustained req/s (soak c=16) | RSS idle \N{RIGHTWARDS ARROW} "
        "after N calls (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, v in d.items():
        rss = "n/a"
        if v["rss_mb"] is not None:
            rss = f"{fmt(v['rss_idle_mb'], 1)} \N{RIGHTWARDS ARROW} {v['rss_mb']:.1f}"
            rss += f" after {v['served']:,.0f}"
        cells = [
            _with_ratio(d, key, "added_p50_ms", 3),
            _with_ratio(d, key, "added_p99_ms", 3),
            _with_ratio(d, key, "added_ttft_p50_ms", 3),
            _with_ratio(d, key, "rps_c16", 0),
            fmt(v["rps_max"]),
            fmt(v["rps_soak"]),
            rss,
        ]
        lines.append(f"| {label[key]} | " + " | ".join(cells) + " |")
    lines += _marginal(d, label)
    lines += _targets_section(d, results.get("broadest"), quiet)
    lines += _not_measured(results)
    lines += ["", "## Raw measurements", "", *_raw_table(rows), ""]
    lines += _evidence(rows)
    for key, summary in (results.get("profiles") or {}).items():
        first = summary.split("### Self time (top frame)")[0]
        lines += ["", f"## Profile: {label.get(key, key)} (wrk c=16, py-spy)", "", first.strip()]
        lines += ["", f"Full tables: [profile-{key}.md](profile-{key}.md)."]
    lines += ["", "![chart](results.png)", ""]
    return "\n".join(lines)


def _spread(rounds: list[float]) -> str:
    """``610-790``: the lowest and highest CPU per call of a phase's rounds."""
    if len(rounds) < 2:
        return "n/a"
    return f"{min(rounds):,.0f}\N{EN DASH}{max(rounds):,.0f}"


def _marginal(d: Mapping[str, Figures], label: Mapping[str, str]) -> list[str]:
    base = d.get("aigw")
    steps = [k for k in d if k.startswith("aigw-")]
    if base is None or not steps:
        return []
    lines = [
        "",
        "## What each step costs (its row minus aigw minimal, same run)",
        "",
        "| row | \N{GREEK CAPITAL LETTER DELTA} CPU/call c=16 (\N{MICRO SIGN}s) "
        "| \N{GREEK CAPITAL LETTER DELTA} added p50 c=1 (ms) "
        "| \N{GREEK CAPITAL LETTER DELTA} added TTFT p50 c=1 (ms) "
        "| req/s c=16 \N{DIVISION SIGN} aigw |",
        "|---|---:|---:|---:|---:|",
    ]

    def delta(key: str, field: str) -> float | None:
        mine, other = d[key][field], base[field] if base else None
        return None if mine is None or other is None else mine - other

    for key in steps:
        cells = [
            fmt(delta(key, "cpu_c16"), 0),
            fmt(delta(key, "added_p50_ms"), 3),
            fmt(delta(key, "added_ttft_p50_ms"), 3),
            _x(ratio(d[key]["rps_c16"], base["rps_c16"])),
        ]
        lines.append(f"| {label[key]} | " + " | ".join(cells) + " |")
    full_on = "aigw-full" if "aigw-full" in d else "aigw-built"
    if full_on in d and "aigw-built-no-audit" in d:
        on, off = d[full_on], d["aigw-built-no-audit"]
        text = f"The audit record writer on the whole pipeline ({label[full_on]} vs "
        text += f"{label['aigw-built-no-audit']}): CPU per call at c=16 "
        text += f"{fmt(on['cpu_c16'], 0)} vs {fmt(off['cpu_c16'], 0)} \N{MICRO SIGN}s, "
        text += f"added p50 at c=1 {fmt(on['added_p50_ms'], 3)} vs "
        text += f"{fmt(off['added_p50_ms'], 3)} ms, req/s at c=16 "
        text += f"{_x(ratio(on['rps_c16'], off['rps_c16']))} of the row without audit."
        lines += ["", text]
    if "aigw-redaction" in d:
        on, off = d["aigw-redaction"], base
        text = f"Streams with redaction on vs off: TTFT p50 {fmt(on['ttft_p50_ms'], 3)} vs "
        text += f"{fmt(off['ttft_p50_ms'], 3)} ms at c=1; CPU per streamed call at c=16 "
        text += (
            f"{fmt(on['cpu_stream_c16'], 0)} vs {fmt(off['cpu_stream_c16'], 0)} \N{MICRO SIGN}s."
        )
        lines += ["", text]
    return lines


def _targets_section(d: Mapping[str, Figures], broadest: str | None, quiet: bool) -> list[str]:
    lines = ["", "## DESIGN targets (ratios to the aiohttp passthrough, same run)", ""]
    if not quiet:
        lines += ["Other work shared the machine: latency and throughput verdicts are indicative; "
                  "CPU per call is the one to trust.", ""]  # fmt: skip
    stand_in = None
    if "aigw-full" not in d and broadest and broadest != "aigw":
        stand_in = broadest
        text = f"No full-pipeline row yet: its targets are checked on `{stand_in}` (every "
        text += "step built so far), which is **not** the target's configuration."
        lines += [text, ""]
    lines += ["| row | target | figure | limit | verdict |", "|---|---|---:|---|---|"]
    for c in targets(d, stand_in):
        if c["row"] not in d:
            verdict, figure = "n/a: row not measured", "n/a"
        else:
            figure = (
                _x(c["value"]) if "\N{MULTIPLICATION SIGN}" in c["limit"] else fmt(c["value"], 1)
            )
            verdict = "met" if c["met"] else "**missed**"
            if c["met"] is None:
                verdict = f"n/a: {c['why']}" if c.get("why") else "n/a"
        lines.append(f"| {c['row']} | {c['what']} | {figure} | {c['limit']} | {verdict} |")
    return lines


def _not_measured(results: Results) -> list[str]:
    lines: list[str] = []
    sections = (
        ("FAILED: configured but ignored, or too little evidence", "failed"),
        ("n/a: not built yet", "not_built"),
        ("Not measured", "skipped"),
    )
    for title, key in sections:
        found = results.get(key) or {}
        if found:
            lines += ["", f"## {title}", ""] + [f"- `{k}`: {why}" for k, why in found.items()]
    return lines


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
        redis = _redis_per_call(row)
        if redis:
            text += f"; Redis: {redis}"
        out.append(text)
    return ["", "## What the sidecars reported", "", *out] if out else []


def _raw_table(rows: Mapping[str, Results]) -> list[str]:
    head = [
        "| target | case | requests | errors | seconds | req/s | p50 (ms) | p99 (ms) "
        "| TTFT p50 (ms) | TTFT p99 (ms) | CPU (s) | CPU/call (\N{MICRO SIGN}s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in rows.items():
        for case in ("c1", "c16", "max", "stream_c1", "stream_c16", "soak"):
            r = row.get(case)
            if not r:
                continue
            head.append(
                f"| {key} | {case} | {r['requests']:,} | {r['errors']} | {r['seconds']:.1f} "
                f"| {fmt(r['rps'])} | {fmt(_ms(r['p50_us']), 3)} | {fmt(_ms(r['p99_us']), 3)} "
                f"| {fmt(_ms(r.get('ttft_p50_us')), 3)} | {fmt(_ms(r.get('ttft_p99_us')), 3)} "
                f"| {fmt(r.get('cpu_s'))} | {fmt(r.get('cpu_us_per_call'), 0)} |"
            )
    return head
