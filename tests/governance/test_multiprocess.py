"""Accuracy across replicas: 4 processes share one redis-server; limits hold exactly.

The sidecar's HTTP server is not on main yet, so each process runs the governance engine
directly (engine_worker.py) against the shared Redis: 4 x 100 concurrent requests against a
budget (or tokens/min limit) that admits exactly N. Each request reserves 100 tokens
(9 prompt + 91 output) and settles to exactly that, so N is exact and the recorded spend
equals N reservations, never above the budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from aigw_contract import Bundle

WORKER = Path(__file__).with_name("engine_worker.py")
PROCESSES = 4
PER_PROCESS = 100
RESERVATION = 100
N = 37
NOW = 2_000_000_000.0


def run_workers(url: str, bundle_path: Path) -> Counter[str]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(bundle_path), str(PER_PROCESS), str(NOW)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        total: Counter[str] = Counter()
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0
            total.update(json.loads(out.strip().splitlines()[-1]))
        return total
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("use_case", "refusal", "key_part"),
    [
        ({"budgets": [{"name": "d", "period": "day", "tokens": N * RESERVATION + RESERVATION - 1}]},
         "budget_exceeded", "bu:d:"),
        ({"rateLimits": {"tokensPerMinute": N * RESERVATION + RESERVATION - 1}},
         "rate_limited", ":tpm"),
        # 37 requests x 191,000 nano-USD = 0.007067 USD
        ({"budgets": [{"name": "m", "period": "month", "costUSD": "0.007067"}]},
         "budget_exceeded", "bu:m:"),
    ],
)  # fmt: skip
def test_four_processes_admit_exactly_n(
    redis_server: Any,
    bundle_of: Callable[..., Bundle],
    tmp_path: Path,
    use_case: dict[str, Any],
    refusal: str,
    key_part: str,
    counter_values: Callable[[Any, str], list[float]],
) -> None:
    redis_server.flush()
    bundle = bundle_of({"useCases": [{"name": "reply", "routes": ["chat"], **use_case}]})
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_bytes(bundle.to_json_bytes())
    outcomes = run_workers(redis_server.url, bundle_path)
    assert outcomes == Counter({"granted": N, refusal: PROCESSES * PER_PROCESS - N})
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        (value,) = counter_values(client, key_part)
        if key_part == ":tpm":
            assert value == N * RESERVATION
        elif key_part == "bu:m:":
            assert value == N * 191_000
        else:
            assert value == N * RESERVATION
    finally:
        client.close()
