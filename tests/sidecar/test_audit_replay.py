"""``aigw replay``: calls recorded under policy A, replayed against B (a lower budget, a
removed route), against an expectation computed by hand from the fake's deterministic usage.

Every call says ``hi`` with ``max_tokens: 10``. The reservation is the prompt estimate
(``ceil(2 bytes / 3) + 4 per message + 3 = 8``) plus 10 = 18 tokens; the fake reports 2
prompt tokens (one word + one per message) and 2 completion tokens (``Echo: hi``), so a call
settles to 4 tokens. At $1.50/$6.00 per million (``chat``) a call costs 3,000 + 12,000 =
15,000 nano-USD; at $10/$30 (``premium``) 80,000; at $0.10/$0.20 (``economy``) 600.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from aigw_fakeprovider import FakeProvider

from .auditing import aigw, audited_gateway, policy_doc, priced, records
from .conftest import bundle_bytes, route

ORDER = ["c1", "c2", "c3", "r1", "c4", "r2", "c5", "c6", "r3", "c7", "c8"]
"""Calls in time order: c = use case support, r = reports; c3 and c6 ask for premium."""
PREMIUM = {"c3", "c6"}


def docs(fake: FakeProvider, *, b: bool) -> list[dict[str, Any]]:
    url = fake.openai_base_url
    routes = [
        route("chat", [priced("primary", url, "gpt-4o-mini", "1.50", "6.00")]),
        route("economy", [priced("cheap", url, "llama", "0.10", "0.20")]),
    ]
    if not b:
        routes.append(route("premium", [priced("big", url, "gpt-4.1", "10.00", "30.00")]))
    support_budget: dict[str, Any] = {
        "name": "support-tokens",
        "period": "day",
        "scope": "useCase",
        "tokens": 30 if b else 1_000_000,
    }
    if b:
        support_budget |= {"onExhausted": "fallback", "fallbackRoute": "economy"}
    reports_budget = {
        "name": "reports-tokens",
        "period": "day",
        "scope": "useCase",
        "tokens": 25 if b else 1_000_000,
    }
    spec = {
        "useCases": [
            {
                "name": "support",
                "routes": ["chat", "economy"] if b else ["chat", "economy", "premium"],
                "budgets": [support_budget],
            },
            {"name": "reports", "routes": ["chat"], "budgets": [reports_budget]},
        ]
    }
    return [*routes, policy_doc(spec)]


def replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return aigw("replay", *args)


async def test_replay_names_exactly_the_calls_b_blocks_or_reroutes(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    ids: dict[str, str] = {}
    async with audited_gateway(tmp_path, docs(oai_fake, b=False), oai_fake, claude_fake) as (
        gateway,
        path,
    ):
        client = gateway.openai()
        for name in ORDER:
            response = await client.chat.completions.with_raw_response.create(
                model="premium" if name in PREMIUM else "chat",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=10,
                extra_headers={"X-AIGW-Use-Case": "reports" if name[0] == "r" else "support"},
            )
            ids[name] = response.headers["x-aigw-request-id"]
        await client.close()
    recorded = records(path)
    assert [r["id"] for r in recorded] == [ids[n] for n in ORDER]
    assert all(r["request"]["prompt_tokens"] == 8 for r in recorded)
    assert all(r["usage"]["input"] == 2 and r["usage"]["output"] == 2 for r in recorded)
    candidate = tmp_path / "b.json"
    candidate.write_bytes(bundle_bytes(docs(oai_fake, b=True), revision=2))
    baseline = tmp_path / "a.json"
    baseline.write_bytes(bundle_bytes(docs(oai_fake, b=False), revision=1))

    # By hand. support (30 tokens, fallback): c1 0+18 -> 4, c2 4+18 -> 8, c3 no route,
    # c4 8+18=26 -> 12, c5 12+18=30 -> 16, c6 no route, c7 16+18=34 > 30 -> economy (20),
    # c8 -> economy. reports (25 tokens, deny): r1 -> 4, r2 4+18=22 -> 8, r3 8+18=26 > 25.
    blocked = {ids["c3"]: "model_not_found", ids["c6"]: "model_not_found"}
    blocked[ids["r3"]] = "budget_exceeded"
    rerouted = {ids["c7"], ids["c8"]}
    baseline_nano = 9 * 15_000 + 2 * 80_000  # 6 chat + 3 reports calls, 2 premium
    candidate_nano = 4 * 15_000 + 2 * 600 + 2 * 15_000  # c1 c2 c4 c5, c7 c8 on economy, r1 r2

    for against in ((), ("--baseline", baseline)):
        done = replay("--audit", path, "--bundle", candidate, *against, "--format", "json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["evaluated"] == len(ORDER)
        assert {c["id"]: c["reason"] for c in result["newly_blocked"]} == blocked
        assert result["newly_blocked_by_reason"] == {"model_not_found": 2, "budget_exceeded": 1}
        assert result["newly_blocked_by_tenant_use_case"] == {
            "team-a/support": 2,
            "team-a/reports": 1,
        }
        assert {c["id"] for c in result["rerouted"]} == rerouted
        assert result["route_changes"] == {"chat -> economy": 2}
        assert result["backend_changes"] == {"chat/primary -> economy/cheap": 2}
        assert result["newly_allowed"] == []
        assert result["cost"]["baseline_usd"] == f"0.{baseline_nano:09d}"
        assert result["cost"]["candidate_usd"] == f"0.{candidate_nano:09d}"
        assert result["cost"]["change_usd"] == f"-0.{baseline_nano - candidate_nano:09d}"

    failing = replay("--audit", path, "--bundle", candidate, "--fail-on", "newly-blocked")
    assert failing.returncode == 1
    assert "newly blocked: 3" in failing.stdout
    assert "model_not_found 2, budget_exceeded 1" in failing.stdout
    assert "projected cost: baseline" in failing.stdout
    same = replay("--audit", path, "--bundle", baseline, "--fail-on", "newly-blocked,rerouted")
    assert same.returncode == 0, same.stdout
    reverse = replay(
        "--audit", path, "--bundle", baseline, "--baseline", candidate, "--format", "json"
    )
    result = json.loads(reverse.stdout)
    assert {c["id"] for c in result["newly_allowed"]} == set(blocked)
    assert replay("--audit", path, "--bundle", candidate, "--fail-on", "bogus").returncode == 2
    assert replay("--audit", tmp_path / "nope.jsonl", "--bundle", candidate).returncode == 2
