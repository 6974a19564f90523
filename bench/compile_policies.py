"""How long the contract takes to validate and compile many policies (DESIGN: 1,000 in <= 1 s).

Generates N AIPolicies (each with two use cases, rate limits and budgets) and R ModelRoutes,
then times, in one process: validating the raw objects into models (what the operator does
per event), compiling them into a bundle, serializing it, and parsing it back as the sidecar
does. Prints figures; asserts nothing.

    .venv/bin/python bench/compile_policies.py [--policies 1000] [--routes 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aigw_contract import AIPolicy, ModelRoute, compile_bundle, parse_bundle
from aigw_contract.errors import CompileError


def _route(i: int) -> dict[str, Any]:
    backend = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "baseURL": "https://api.openai.com/v1",
        "pricing": {"inputPerMillionTokensUSD": "0.15", "outputPerMillionTokensUSD": "0.60"},
    }
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": f"route-{i}", "namespace": "bench"},
        "spec": {
            "backends": [
                {**backend, "name": "primary", "weight": 99},
                {**backend, "name": "canary", "weight": 1},
            ],
            "fallback": ["canary"],
        },
    }


def _policy(i: int, routes: int) -> dict[str, Any]:
    def use_case(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "routes": [f"route-{i % routes}", f"route-{(i + 1) % routes}"],
            "limits": {"maxTokens": 1024, "maxCostUSD": "0.05"},
            "rateLimits": {"requestsPerMinute": 600, "tokensPerMinute": 100000},
            "budgets": [{"name": "monthly", "period": "month", "costUSD": "100.00"}],
        }

    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": f"policy-{i}", "namespace": "bench"},
        "spec": {
            "selector": {"matchLabels": {"app": f"app-{i}"}},
            "useCases": [use_case("chat"), use_case("summarize")],
        },
    }


def _best(label: str, repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    best, median = min(times) * 1000, statistics.median(times) * 1000
    print(f"{label:<44} best {best:8.1f} ms   median {median:8.1f} ms")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--routes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    raw_policies = [_policy(i, args.routes) for i in range(args.policies)]
    raw_routes = [_route(i) for i in range(args.routes)]
    when = datetime(2026, 1, 1, tzinfo=UTC)

    def validate() -> list[AIPolicy | ModelRoute]:
        return [AIPolicy.model_validate(p) for p in raw_policies] + [
            ModelRoute.model_validate(r) for r in raw_routes
        ]

    resources = validate()
    print(f"{args.policies} AIPolicies, {args.routes} ModelRoutes, best of {args.repeat}")
    total = _best("validate raw objects into models", args.repeat, validate)
    try:
        bundle = compile_bundle(resources, namespace="bench", generated_at=when)
    except CompileError as exc:
        print(f"compile refused the bundle: {exc.problems[0]}")
        return
    total += _best(
        "compile (incl. size check)",
        args.repeat,
        lambda: compile_bundle(resources, namespace="bench", generated_at=when),
    )
    data = bundle.to_json_bytes()
    _best("serialize bundle", args.repeat, bundle.to_json_bytes)
    _best("parse_bundle (the sidecar's load)", args.repeat, lambda: parse_bundle(data))
    print(f"bundle size {len(data):,} bytes; validate + compile {total * 1000:.1f} ms")


if __name__ == "__main__":
    main()
