"""The benchmark harness end to end on tiny counts: real fake upstream, passthrough, sidecar, wrk.

No timing is asserted: only that every target answered every request, that the figures the
report is built from are there, and that the report and chart are written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra import nginx_binary

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("wrk") is None or shutil.which("taskset") is None,
        reason="wrk and taskset come from `make deps`",
    ),
]


def test_quick_run_measures_floor_passthrough_and_sidecar_and_writes_the_report(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    proxies = ["passthrough", "aigw", *(["nginx"] if nginx_binary() else [])]
    cases = ",".join(["direct", *proxies, "aigw-redaction"])
    command = [sys.executable, str(REPO / "bench"), "--quick", "--cases", cases]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    # A row either ran with its step proven, or says why not: never without it.
    redaction = results["targets"].pop("aigw-redaction", None)
    assert (redaction is None) == ("aigw-redaction" in results["not_built"])
    assert set(results["targets"]) == {"direct", *proxies}
    assert results["skipped"] == {}
    assert results["failed"] == {}
    for key, row in results["targets"].items():
        for case in ("c1", "c16", "max", "stream_c1", "stream_c16"):
            assert row[case]["requests"] > 0, (key, case)
            assert row[case]["errors"] == 0, (key, case)
            assert row[case]["p50_us"] <= row[case]["p99_us"]
        assert row["stream_c1"]["ttft_p50_us"] <= row["stream_c1"]["p50_us"]
        if key in proxies:
            assert row["c16"]["cpu_us_per_call"] > 0, key
    passthrough = results["targets"]["passthrough"]
    assert passthrough["rss_end"] > 1_000_000
    assert passthrough["served"] >= sum(
        passthrough[c]["requests"] for c in ("c1", "c16", "max", "stream_c1", "stream_c16")
    )
    sidecar = results["targets"]["aigw"]["evidence"]["status"]["bundle"]
    assert sidecar["routes"] == ["chat"]
    markdown = (out / "results.md").read_text()
    assert "| bare aiohttp passthrough |" in markdown
    assert "**Machine:**" in markdown
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
