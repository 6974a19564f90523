"""The report leads with CPU per call and ratios to the passthrough, checks DESIGN's targets
on them, and names every row that was not measured and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chart
import report

X = "\N{MULTIPLICATION SIGN}"


def _phase(requests: int, seconds: float, p50_us: float, cpu_s: float | None) -> dict[str, Any]:
    return {
        "requests": requests, "seconds": seconds, "errors": 0, "p50_us": p50_us,
        "p99_us": p50_us * 2, "ttft_p50_us": p50_us * 0.8, "ttft_p99_us": p50_us * 1.5,
        "cpu_s": cpu_s, "rps": requests / seconds,
        "cpu_us_per_call": None if cpu_s is None else cpu_s / requests * 1e6,
    }  # fmt: skip


def _row(label: str, p50_us: float, cpu_us: float | None, rps: int) -> dict[str, Any]:
    cpu = None if cpu_us is None else cpu_us * rps * 2 / 1e6
    phases = {
        case: _phase(rps * 2, 2.0, p50_us, cpu)
        for case in ("c1", "c16", "max", "stream_c1", "stream_c16")
    }
    return {"label": label, "served": rps * 10, "rss_idle": 50 * 2**20, "rss_start": 52 * 2**20,
            "rss_end": 53 * 2**20, **phases}  # fmt: skip


def _results() -> dict[str, Any]:
    return {
        "command": "make bench", "started": "2026-12-01 12:00", "elapsed_s": 500.0, "nice": -10,
        "machine": {"line": "test machine", "cores": 2}, "network_namespace": True,
        "load_line": "load average 0.10 before, 2.00 after", "load_average": [0.1, 2.0],
        "noise": {"others_share": 0.02, "others_cpu_s": 20.0, "steal_s": 0.0},
        "targets": {
            "direct": _row("direct to upstream (floor)", 200, None, 5000),
            "nginx": _row("nginx reverse proxy", 300, 50, 4000),
            "passthrough": _row("bare aiohttp passthrough", 1200, 200, 2000),
            "aigw": _row("aigw minimal policy", 1300, 300, 1500),
            "aigw-limits": _row("aigw + limits and budgets on Redis", 2200, 400, 1000),
        },
        "broadest": "aigw-limits",
        "not_built": {"aigw-cache": "not built yet: exact cache: its probe found: no hit"},
        "failed": {"aigw-audit": "FAILED: audit records to a file is configured but ignored"},
        "skipped": {}, "profiles": {"aigw": "100 samples.\n### Self time (top frame)\n| x |"},
    }  # fmt: skip


def test_cpu_per_call_leads_with_ratios_to_the_passthrough() -> None:
    text = report.markdown(_results())
    cpu = text.split("## CPU per call")[1].split("##")[0]
    assert f"| aigw minimal policy | **300 (1.50{X})** |" in cpu
    assert f"| nginx reverse proxy | **50 (0.25{X})** |" in cpu
    assert "direct" not in cpu  # the floor has no proxy process
    assert text.index("## CPU per call") < text.index("## Latency")


def test_cpu_per_call_shows_the_spread_of_its_rounds() -> None:
    results = _results()
    results["targets"]["aigw"]["c16"]["round_cpu_us"] = [290.0, 300.0, 312.4]
    cpu = report.markdown(results).split("## CPU per call")[1].split("##")[0]
    assert f"| aigw minimal policy | **300 (1.50{X})** | 290\N{EN DASH}312 |" in cpu


def test_design_targets_are_ratios_with_verdicts_and_a_stand_in_for_the_full_row() -> None:
    text = report.markdown(_results())
    targets = text.split("## DESIGN targets")[1].split("\n## ")[0]
    assert f"| aigw | CPU per call, c=16 | 1.50{X} | ≤ 1.2{X} | **missed** |" in targets
    assert (
        f"| aigw | added p50, c=1 | 1.10{X} | ≤ 1.1{X} | met |" in targets
    )  # (1300-200)/(1200-200)
    assert f"| aigw-limits | CPU per call, c=16 | 2.00{X} | ≤ 1.6{X} | **missed** |" in targets
    assert "checked on `aigw-limits`" in targets
    assert "| aigw-cache-hit |" in targets
    assert "n/a: row not measured" in targets
    assert "| aigw-limits | RSS growth over 10,000 calls (MB) | 1.0 |" in targets
    assert "n/a: fewer than 100,000 calls within the soak's time cap |" in targets


def test_marginal_cost_is_the_step_row_minus_the_minimal_row() -> None:
    text = report.markdown(_results())
    marginal = text.split("## What each step costs")[1].split("\n## ")[0]
    assert "| aigw + limits and budgets on Redis | 100 | 0.900 |" in marginal


def test_rows_not_measured_are_named_with_their_reason() -> None:
    text = report.markdown(_results())
    assert "## FAILED" in text
    assert "- `aigw-audit`: FAILED: audit records to a file is configured but ignored" in text
    assert "## n/a: not built yet" in text
    assert "- `aigw-cache`: not built yet: exact cache" in text


def test_a_noisy_run_says_so() -> None:
    results = _results()
    assert "Quiet enough" in report.markdown(results)
    results["noise"]["others_share"] = 0.4
    assert "**Noisy**" in report.markdown(results)


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    chart.chart(_results(), tmp_path / "results.png")
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
