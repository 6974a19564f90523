"""Accuracy across replicas: 4 processes share one Redis; limits hold exactly.

Each process runs the governance engine directly (engine_worker.py) against the shared
Redis (one redis-server, a 3-master Redis Cluster, a TLS redis-server): 4 x 100 concurrent
requests against a budget, a tokens/min limit or a concurrency limit that admits exactly N.
Each request reserves 100 tokens (9 prompt + 91 output) and settles to exactly that, so N is
exact and the recorded spend equals N reservations, never above the budget; for
concurrency every admitted request holds its lease until all have asked.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aigw_contract import Bundle
from aigw_sidecar.governance.leases import block_size
from support.redis import SharedRedis

WORKER = Path(__file__).with_name("engine_worker.py")
PROCESSES = 4
PER_PROCESS = 100
RESERVATION = 100
N = 37
NOW = 2_000_000_000.0


def run_workers(shared: SharedRedis, bundle_path: Path, *, hold: bool = False) -> Counter[str]:
    tls = {}
    if shared.tls is not None:
        tls = {k: str(v) for k, v in dataclasses.asdict(shared.tls).items() if v is not None}
    args = [shared.url, str(bundle_path), str(PER_PROCESS), str(NOW), json.dumps(tls)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *args, "hold" if hold else "flow"],
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
            assert proc.stdout is not None
            total.update(json.loads(proc.stdout.readline()))
        for proc in procs:
            _, _ = proc.communicate("settle\n" if hold else "", timeout=120)
            assert proc.returncode == 0
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
        ({"rateLimits": {"concurrency": N}}, "rate_limited", ":cc:"),
    ],
)  # fmt: skip
def test_four_processes_admit_exactly_n(
    shared_redis: SharedRedis,
    bundle_of: Callable[..., Bundle],
    tmp_path: Path,
    use_case: dict[str, Any],
    refusal: str,
    key_part: str,
    counter_values: Callable[[Any, str], list[float]],
) -> None:
    bundle = bundle_of({"useCases": [{"name": "reply", "routes": ["chat"], **use_case}]})
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_bytes(bundle.to_json_bytes())
    outcomes = run_workers(shared_redis, bundle_path, hold=key_part == ":cc:")
    assert outcomes == Counter({"granted": N, refusal: PROCESSES * PER_PROCESS - N})
    if key_part == ":cc:":
        return  # every lease was released: nothing left to count
    (value,) = counter_values(shared_redis, key_part)
    if key_part == ":tpm":
        assert value == N * RESERVATION
    elif key_part == "bu:m:":
        assert value == N * 191_000
    else:
        assert value == N * RESERVATION


@pytest.mark.slow
def test_four_processes_leasing_blocks_stay_within_the_bound_and_return_every_remainder(
    shared_redis: SharedRedis,
    bundle_of: Callable[..., Bundle],
    tmp_path: Path,
    counter_values: Callable[[Any, str], list[float]],
) -> None:
    """Hot-tenant mode across 4 real processes: each leases blocks of 5% of a token budget
    (B = 189 tokens) and admits against them locally. Admitted never passes the limit, at
    most PROCESSES x B is left unused by a refusal, and once every process has returned its
    blocks (at exit) the counter holds exactly what the admitted calls used."""
    limit = N * RESERVATION + RESERVATION - 1
    block = block_size(limit, 5.0)
    budget = {"name": "d", "period": "day", "tokens": limit}
    use_case = {"name": "reply", "routes": ["chat"], "budgets": [budget],
                "leasing": {"blockPercent": 5}}  # fmt: skip
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_bytes(bundle_of({"useCases": [use_case]}).to_json_bytes())
    outcomes = run_workers(shared_redis, bundle_path)
    granted = outcomes["granted"]
    assert outcomes == Counter({"granted": granted, "budget_exceeded": 400 - granted})
    assert granted * RESERVATION <= limit
    assert granted * RESERVATION >= limit - PROCESSES * block - RESERVATION
    assert counter_values(shared_redis, "bu:d:") == [granted * RESERVATION]
