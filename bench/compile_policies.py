"""How long many policies take to compile and to load (DESIGN: 1,000 compile in <= 1 s, and
a sidecar loads them in <= 0.5 s).

Generates N AIPolicies (each with two use cases, rate limits and budgets) and R ModelRoutes,
then times, in one process: validating the raw objects into models (what the operator does
per reconcile), compiling and encoding them as bundle format 2 (gzip, defaults once, parts:
what the operator writes), and the sidecar's whole load of those files from a kubelet-laid
directory (read, inflate, validate, hash, build the runtime config, prepare governance).
Prints figures; asserts nothing.

    .venv/bin/python bench/compile_policies.py [--policies 1000] [--routes 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aigw_contract import AIPolicy, ModelRoute, compile_bundle
from aigw_contract.codec import EncodedBundle, encode_bundle, gc_paused, read_bundle_file
from aigw_contract.errors import CompileError
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.runtime import build_runtime
from aigw_sidecar.settings import SidecarSettings
from aigw_sidecar.steps.govern import build_governance


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
        with gc_paused():  # as the operator's evaluate() does
            return [AIPolicy.model_validate(p) for p in raw_policies] + [
                ModelRoute.model_validate(r) for r in raw_routes
            ]

    resources = validate()
    print(f"{args.policies} AIPolicies, {args.routes} ModelRoutes, best of {args.repeat}")
    total = _best("validate raw objects into models", args.repeat, validate)

    def compile_and_encode() -> EncodedBundle:
        bundle = compile_bundle(resources, namespace="bench", generated_at=when, format_version=2)
        return encode_bundle(bundle.with_revision(7))

    try:
        encoded = compile_and_encode()
    except CompileError as exc:
        print(f"compile refused the bundle: {exc.problems[0]}")
        return
    total += _best("compile + encode (format 2)", args.repeat, compile_and_encode)
    with tempfile.TemporaryDirectory() as scratch:
        volume = Path(scratch) / "bundle"
        data = volume / "..2026_01_01_00_00_00.000000001"
        data.mkdir(parents=True)
        for name, content in encoded.files.items():
            (data / name).write_bytes(content)
            (volume / name).symlink_to(f"..data/{name}")
        os.symlink(data.name, volume / "..data")
        settings = SidecarSettings(bundle_path=volume / "bundle.json", pod_namespace="bench")
        governance = build_governance(settings, Metrics())
        secrets = Path(scratch) / "secrets"

        def load() -> object:
            config = build_runtime(read_bundle_file(settings.bundle_path), secrets)
            for step in governance.steps:
                step.prepare(config)
            return config

        _best("sidecar load (read, inflate, validate, runtime, governance)", args.repeat, load)
    size = sum(len(v) for k, v in encoded.files.items() if k != "bundle.json")
    print(
        f"bundle: {size:,} bytes gzip in {len(encoded.parts)} part(s), "
        f"{encoded.expanded_bytes:,} uncompressed; validate + compile + encode "
        f"{total * 1000:.1f} ms; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
