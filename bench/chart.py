"""``results.png``: CPU per call on top (the figure of merit), then latency, TTFT, req/s, RSS.

Horizontal bars, one per target, from :func:`report.derived`; aigw rows carry their ratio to
the passthrough. Dashed lines mark DESIGN's limits as multiples of the passthrough of the
same run (1.2x and 1.6x of its CPU per call) and the 60 MB RSS target.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from report import FLOOR, PYTHON_FLOOR, derived, fmt

__all__ = ["chart"]


def _ratio(d: Mapping[str, Mapping[str, float | None]], key: str, field: str) -> str:
    """`` (1.57x)``: the ratio to the passthrough, for the aigw rows."""
    mine, base = d[key][field], d.get(PYTHON_FLOOR, {}).get(field)
    if not key.startswith("aigw") or mine is None or not base:
        return ""
    return f" ({mine / base:.2f}\N{MULTIPLICATION SIGN})"


def chart(results: Mapping[str, Any], out: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional, heavy

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    d = derived(results["targets"])
    keys = list(d)
    fig = plt.figure(figsize=(14, 11))
    grid = fig.add_gridspec(3, 2, height_ratios=[1.3, 1, 1])
    panels = [
        (grid[0, :], "cpu_c16", "CPU per call at c=16 (\N{MICRO SIGN}s): the figure of merit", 0),
        (grid[1, 0], "added_p50_ms", "added p50 latency at c=1 (ms)", 3),
        (grid[1, 1], "added_ttft_p50_ms", "added TTFT p50 at c=1 (ms)", 3),
        (grid[2, 0], "rps_c16", "requests/s per core at c=16", 0),
        (grid[2, 1], "rss_mb", "RSS after the run (MB)", 1),
    ]
    base = d.get(PYTHON_FLOOR, {})
    for spec, field, title, digits in panels:
        ax = fig.add_subplot(spec)
        shown = [k for k in keys if not (k == FLOOR and field != "rps_c16")]
        values = [d[k][field] or 0.0 for k in shown]
        # LiteLLM is tens of times off the others' scale: clip it and say so in its label.
        others = [v for k, v in zip(shown, values, strict=True) if k != "litellm"] or values
        cap = max(max(others, default=1.0) * 1.3, 1e-9)
        labels = [
            fmt(d[k][field], digits) + (" (off scale)" if v > cap else "") + _ratio(d, k, field)
            for k, v in zip(shown, values, strict=True)
        ]
        colors = ["tab:blue" if k.startswith("aigw") else "tab:grey" for k in shown]
        bars = ax.barh(shown, [min(v, cap) for v in values], color=colors)
        ax.bar_label(bars, labels=labels, fontsize=7)
        ax.set_xlim(0, cap * 1.25)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(title, fontsize=9, pad=12)
        floor = base.get(field)
        if field == "cpu_c16" and floor:
            for factor in (1.2, 1.6):
                ax.axvline(floor * factor, linestyle="--", linewidth=0.8, color="grey")
                ax.text(floor * factor, 1.0, f" {factor}\N{MULTIPLICATION SIGN}", fontsize=7,
                        color="grey", transform=ax.get_xaxis_transform(), va="bottom")  # fmt: skip
        if field == "rss_mb":
            ax.axvline(60, linestyle="--", linewidth=0.8, color="grey")
    fig.suptitle(
        f"aigw bench \N{EM DASH} {results['machine']['line']}\n{results.get('load_line', '')}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
