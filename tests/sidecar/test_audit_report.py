"""``aigw audit report``: cost and tokens by dimension, top movers between two windows, error
and retry rates, policy triggers; a table, CSV, JSON and a PNG chart.

The trail is two days of sealed records written with the sidecar's own chain code: on day
one ``acme/support`` makes 4 calls of 100 prompt tokens; on day two 6 calls of 300 tokens
with one retry each and one blocked by its budget, while ``beta/reports`` stays the same.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from aigw_sidecar.audit import Chainer

from .auditing import aigw

UNTIL = "2026-12-03T00:00:00"
"""The window is day two (24 h before it), the one before it day one."""


def _record(day: int, minute: int, tenant: str, use_case: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": "aigw.audit/v1",
        "kind": "call",
        "id": f"req-{day}-{minute}-{tenant}",
        "time": f"2026-12-0{day}T10:{minute:02d}:00.000000Z",
        "tenant": tenant,
        "use_case": use_case,
        "route": "chat",
        "status": 200,
        "attempts": [{"n": 1, "outcome": "ok"}],
        "usage": {"input": 100, "output": 10, "cached": 0},
        "cost_usd": "0.000100000",
        "cache": "miss",
        "decisions": [],
        "policy": {"name": "app"},
        "pod": {"namespace": "team-a"},
        "retention_days": 30,
    }
    base.update(extra)
    return base


def _trail(path: Path) -> None:
    records = [_record(1, m, "acme", "support") for m in range(4)]
    records += [_record(1, 10 + m, "beta", "reports", cache="hit") for m in range(2)]
    records += [
        _record(
            2,
            m,
            "acme",
            "support",
            usage={"input": 300, "output": 10, "cached": 0},
            cost_usd="0.000300000",
            attempts=[{"n": 1, "outcome": "upstream_unavailable"}, {"n": 2, "outcome": "ok"}],
        )
        for m in range(6)
    ]
    records.append(
        _record(
            2,
            30,
            "acme",
            "support",
            status=429,
            usage=None,
            cost_usd=None,
            attempts=[],
            decisions=[{"step": "limit", "action": "blocked", "code": "budget_exceeded"}],
        )
    )
    records += [_record(2, 10 + m, "beta", "reports", cache="hit") for m in range(2)]
    chain = Chainer("aud_test")
    path.write_bytes(b"".join(chain.next(r) for r in records))


def test_report_by_tenant_and_use_case_with_movers_triggers_and_formats(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    _trail(trail)
    assert aigw("audit", "verify", trail).returncode == 0
    args = ("audit", "report", trail, "--by", "tenant,use_case", "--since", "24h", "--until", UNTIL)
    done = aigw(*args, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    groups = {(g["tenant"], g["use_case"]): g for g in report["groups"]}
    acme = groups["acme", "support"]
    assert acme["calls"] == 7
    assert acme["errors"] == 1
    assert acme["blocked"] == 1
    assert acme["error_rate"] == round(1 / 7, 4)
    assert acme["retries"] == 6
    assert acme["retry_rate"] == round(6 / 7, 4)
    assert acme["input_tokens"] == 1800
    assert acme["cost_usd"] == "0.001800000"
    beta = groups["beta", "reports"]
    assert beta["cache_hit_rate"] == 1.0
    assert beta["cost_usd"] == "0.000200000"
    assert report["total"]["calls"] == 9
    top = report["movers"][0]
    assert top["key"] == ["acme", "support"]
    assert top["cost_before_usd"] == "0.000400000"
    assert top["change_usd"] == "0.001400000"
    # what moved with it: more calls, longer prompts (1800/7 vs 100), retries
    assert top["drivers"]["calls"] == 3
    assert top["drivers"]["avg_input_tokens"] == round(1800 / 7 - 100, 1)
    assert top["drivers"]["retries_per_call"] == round(6 / 7, 3)
    assert report["movers"][1]["key"] == ["beta", "reports"]
    assert report["movers"][1]["change_usd"] == "0.000000000"
    assert report["triggers"] == [
        {"step": "limit", "code": "budget_exceeded", "action": "blocked", "count": 1}
    ]

    table = aigw(*args)
    assert table.returncode == 0
    assert "top movers" in table.stdout
    assert "policy triggers" in table.stdout
    assert "acme" in table.stdout

    rows = list(csv.DictReader(io.StringIO(aigw(*args, "--format", "csv").stdout)))
    assert {(r["tenant"], r["use_case"]) for r in rows} == {
        ("acme", "support"),
        ("beta", "reports"),
    }

    chart = tmp_path / "cost.png"
    assert aigw(*args, "--chart", chart).returncode == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    by_route = json.loads(aigw("audit", "report", trail, "--by", "route", "--since", "48h",
                               "--until", UNTIL, "--format", "json").stdout)  # fmt: skip
    assert [g["calls"] for g in by_route["groups"]] == [15]
    assert aigw("audit", "report", trail, "--by", "nonsense").returncode == 2
    assert aigw("audit", "report", trail, "--since", "forever").returncode == 2
