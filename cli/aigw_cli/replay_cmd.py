"""``aigw replay --audit FILE... --bundle NEW.json [--baseline OLD.json]``: what would change.

Re-evaluates every recorded call under the candidate bundle (:mod:`aigw_cli.replay`: the
sidecar's own routing and governance engine, offline, no provider called) and compares it
with the baseline: the outcome each record states, or with ``--baseline`` the same
simulation under the old bundle. Prints the calls newly blocked (by reason, tenant and use
case) and newly allowed, route and backend changes, cache-eligibility changes and the
projected cost change. ``--format json`` lists every changed call (for CI);
``--fail-on newly-blocked,newly-allowed,rerouted,cost-increase`` exits 1 when one of them
happened (0 otherwise; 2 for unreadable input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["FAIL_ON", "add_arguments", "compare", "run"]

FAIL_ON = ("newly-blocked", "newly-allowed", "rerouted", "cost-increase")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--audit", nargs="+", type=Path, required=True, metavar="FILE", help="audit files"
    )
    parser.add_argument("--bundle", type=Path, required=True, help="the candidate bundle")
    parser.add_argument(
        "--baseline", type=Path, help="the bundle to compare with (default: what was recorded)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--fail-on",
        default="",
        help=f"exit 1 when any of these happened (comma-separated: {', '.join(FAIL_ON)})",
    )
    parser.add_argument("--limit", type=int, default=20, help="calls listed per change (text)")


def _who(record: dict[str, Any], outcome: Any) -> str:
    tenant = record.get("tenant") or outcome.tenant or "?"
    use_case = record.get("use_case") or outcome.use_case or "?"
    return f"{tenant}/{use_case}"


def compare(records: list[dict[str, Any]], base: list[Any], new: list[Any]) -> dict[str, Any]:
    """The changes between two outcome lists of the same records."""
    from .replay import usd  # noqa: PLC0415

    blocked: list[dict[str, Any]] = []
    allowed: list[dict[str, Any]] = []
    rerouted: list[dict[str, Any]] = []
    cache = Counter[str]()
    base_cost = new_cost = upper = 0
    evaluated = 0
    for record, a, b in zip(records, base, new, strict=True):
        evaluated += b.evaluated
        call = {"id": record.get("id"), "time": record.get("time"), "who": _who(record, b)}
        base_cost += a.cost_nano if a.allowed else 0
        new_cost += b.cost_nano if b.allowed else 0
        if a.allowed and not b.allowed:
            blocked.append({**call, "reason": b.reason, "cost_usd": usd(a.cost_nano)})
        elif b.allowed and not a.allowed:
            upper += b.estimate_nano
            allowed.append({**call, "was": a.reason, "route": b.route, "backend": b.backend})
        elif a.allowed and b.allowed and (a.route, a.backend) != (b.route, b.backend):
            rerouted.append(
                {
                    **call,
                    "route": [a.route, b.route],
                    "backend": [a.backend, b.backend],
                    "cost_usd": [usd(a.cost_nano), usd(b.cost_nano)],
                }
            )
        if a.allowed and b.allowed and a.cache_eligible != b.cache_eligible:
            cache["now eligible" if b.cache_eligible else "no longer eligible"] += 1
    return {
        "calls": len(records),
        "evaluated": evaluated,
        "not_evaluated": len(records) - evaluated,
        "newly_blocked": blocked,
        "newly_blocked_by_reason": dict(Counter(c["reason"] for c in blocked).most_common()),
        "newly_blocked_by_tenant_use_case": dict(Counter(c["who"] for c in blocked).most_common()),
        "newly_allowed": allowed,
        "newly_allowed_by_tenant_use_case": dict(Counter(c["who"] for c in allowed).most_common()),
        "rerouted": rerouted,
        "route_changes": dict(
            Counter(f"{c['route'][0]} -> {c['route'][1]}" for c in rerouted).most_common()
        ),
        "backend_changes": dict(
            Counter(
                f"{c['route'][0]}/{c['backend'][0]} -> {c['route'][1]}/{c['backend'][1]}"
                for c in rerouted
            ).most_common()
        ),
        "cache_eligibility": dict(cache),
        "cost": {
            "baseline_usd": usd(base_cost),
            "candidate_usd": usd(new_cost),
            "change_usd": usd(new_cost - base_cost),
            "newly_allowed_upper_bound_usd": usd(upper),
        },
    }


def _print(result: dict[str, Any], limit: int, header: str) -> None:
    print(header)
    print(
        f"{result['calls']} call(s): {result['evaluated']} re-evaluated, "
        f"{result['not_evaluated']} kept as recorded"
    )
    sections = (
        ("newly blocked", "newly_blocked", "reason"),
        ("newly allowed", "newly_allowed", "was"),
        ("rerouted", "rerouted", "route"),
    )
    for title, key, detail in sections:
        calls = result[key]
        print(f"\n{title}: {len(calls)}")
        if key == "newly_blocked" and calls:
            print(
                "  by reason: "
                + ", ".join(f"{k} {v}" for k, v in result["newly_blocked_by_reason"].items())
            )
            print(
                "  by tenant/use case: "
                + ", ".join(
                    f"{k} {v}" for k, v in result["newly_blocked_by_tenant_use_case"].items()
                )
            )
        if key == "rerouted" and calls:
            print("  routes: " + ", ".join(f"{k} {v}" for k, v in result["route_changes"].items()))
            print(
                "  backends: " + ", ".join(f"{k} {v}" for k, v in result["backend_changes"].items())
            )
        for call in calls[:limit]:
            print(f"  {call['id']}  {call['time']}  {call['who']}  {detail}={call[detail]}")
        if len(calls) > limit:
            print(f"  ... {len(calls) - limit} more (--format json lists all)")
    if result["cache_eligibility"]:
        print(
            "\ncache eligibility: "
            + ", ".join(f"{k} {v}" for k, v in result["cache_eligibility"].items())
        )
    cost = result["cost"]
    print(
        f"\nprojected cost: baseline {cost['baseline_usd']} USD, candidate "
        f"{cost['candidate_usd']} USD, change {cost['change_usd']} USD"
        + (
            f" (+ up to {cost['newly_allowed_upper_bound_usd']} USD for newly allowed calls)"
            if result["newly_allowed"]
            else ""
        )
    )


def run(args: argparse.Namespace) -> int:
    from aigw_contract import ContractError  # noqa: PLC0415
    from aigw_contract.codec import read_bundle_file  # noqa: PLC0415 - any format, parts beside
    from aigw_sidecar.audit import iter_records  # noqa: PLC0415

    from .replay import call_records, outcome_of_record, simulate  # noqa: PLC0415

    fail_on = {f.strip() for f in args.fail_on.split(",") if f.strip()}
    if unknown := fail_on - set(FAIL_ON):
        print(
            f"error: --fail-on: unknown {sorted(unknown)}; choose from {FAIL_ON}", file=sys.stderr
        )
        return 2
    try:
        candidate = read_bundle_file(args.bundle)
        baseline = read_bundle_file(args.baseline) if args.baseline else None
        records = call_records(iter_records(args.audit))
    except (OSError, ContractError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    new = simulate(candidate, records)
    base = simulate(baseline, records) if baseline else [outcome_of_record(r) for r in records]
    result = compare(records, base, new)
    against = f"bundle revision {baseline.revision}" if baseline else "the recorded outcomes"
    result["candidate"] = {"revision": candidate.revision, "content_hash": candidate.content_hash}
    result["baseline"] = (
        {"revision": baseline.revision, "content_hash": baseline.content_hash}
        if baseline
        else "recorded"
    )
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        _print(
            result,
            args.limit,
            f"replay against bundle revision {candidate.revision}, compared with {against}",
        )
    changed = {
        "newly-blocked": bool(result["newly_blocked"]),
        "newly-allowed": bool(result["newly_allowed"]),
        "rerouted": bool(result["rerouted"]),
        "cost-increase": result["cost"]["change_usd"][0] != "-"
        and result["cost"]["change_usd"].strip("0.") != "",
    }
    return 1 if any(changed[f] for f in fail_on) else 0
