"""How many governed calls one Redis shard sustains: Redis CPU and bytes per call.

Runs the governance engine's reserve + settle (the typical policy: requests/min,
tokens/min, concurrency, a day token budget and a month money budget) from several client
processes, each with many calls in flight, against one redis-server on loopback, for a
fixed time, spread over many tenants. Reports calls/s reached, and the figures that do
not depend on how fast the clients are on a shared 2-core machine: Redis's own CPU time per
call (``INFO cpu``), commands per call (``INFO commandstats``) and network bytes per call
(``INFO stats``). One Redis shard is single-threaded, so ``1 s / CPU per call`` is the
ceiling of one shard; docs/governance.md turns that into a fleet size.

    .venv/bin/python bench/state_capacity.py [--seconds 10] [--processes 2] [--inflight 64]
        [--tenants 64] [--leasing PERCENT] [--no-concurrency]

``--leasing 1`` turns on hot-tenant mode (``leasing.blockPercent: 1``: each process leases
blocks of 1% of every rate limit and budget and counts locally; the concurrency limit is
still reserved per call unless ``--no-concurrency`` drops it); ``--tenants 1`` is one hot
tenant, every call on one shard.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from redis import Redis as SyncRedis

from aigw_contract import compile_bundle, parse_documents
from aigw_sidecar.governance import Claims, Governor, PodIdentity, RedisStore, Usage

POD = PodIdentity("team-a", "sa", {"app": "support"})
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Where is my order? " * 8}],
}
TENANTS = [f"tenant-{i}" for i in range(64)]


def bundle_bytes(leasing: float | None = None, concurrency: bool = True) -> bytes:
    use_case: dict[str, Any] = {
        "name": "reply", "routes": ["chat"],
        "rateLimits": {"requestsPerMinute": 10**8, "tokensPerMinute": 10**10, "concurrency": 10**5},
        "budgets": [{"name": "daily", "period": "day", "tokens": 10**15},
                    {"name": "monthly", "period": "month", "costUSD": "999999"}],
    }  # fmt: skip
    if not concurrency:
        del use_case["rateLimits"]["concurrency"]
    if leasing is not None:
        use_case["leasing"] = {"blockPercent": leasing}
    docs = [
        {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIPolicy",
         "metadata": {"name": "p", "namespace": "team-a"},
         "spec": {"tenant": TENANTS[0], "additionalTenants": TENANTS[1:], "useCases": [use_case]}},
        {"apiVersion": "aigw.dev/v1alpha1", "kind": "ModelRoute",
         "metadata": {"name": "chat", "namespace": "team-a"},
         "spec": {"backends": [{"name": "m", "provider": "openai", "model": "gpt-4o-mini",
                                "baseURL": "http://127.0.0.1:9/v1",
                                "pricing": {"inputPerMillionTokensUSD": "0.15",
                                            "outputPerMillionTokensUSD": "0.60"}}]}},
    ]  # fmt: skip
    parsed, problems = parse_documents(yaml.safe_dump_all(docs).encode(), "bench")
    assert not problems, problems
    compiled = compile_bundle(
        [d.resource for d in parsed], namespace="team-a", generated_at=datetime.now(UTC)
    )
    return compiled.to_json_bytes()


async def client(url: str, seconds: float, inflight: int, start: float, shape: Shape) -> int:
    from aigw_contract import parse_bundle  # noqa: PLC0415 - in the child process

    store = RedisStore.from_url(url, timeout=5.0)
    governor = Governor(POD, store)
    view = governor.view(parse_bundle(bundle_bytes(shape.leasing, shape.concurrency)))
    tenants = TENANTS[: shape.tenants]
    await asyncio.sleep(max(0.0, start - time.time()))  # every process starts at once
    done = 0
    stop = time.monotonic() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        i = n
        while time.monotonic() < stop:
            i += inflight
            claims = Claims(tenant=tenants[i % len(tenants)])
            admission = governor.admit(view, request_id="b", body=BODY, route="chat", claims=claims)
            grant = await governor.limit(view, admission)
            await governor.settle(grant, Usage(admission.constraints.prompt_tokens, 40))
            done += 1

    await asyncio.gather(*(worker(n) for n in range(inflight)))
    await governor.aclose()
    return done


@dataclass(frozen=True)
class Shape:
    """The policy shape of a run."""

    tenants: int
    leasing: float | None
    concurrency: bool
    seconds: float
    inflight: int


def child(url: str, start: float, shape: Shape, out: Any) -> None:
    try:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(client(url, shape.seconds, shape.inflight, start, shape)))


def redis_figures(redis: SyncRedis) -> dict[str, float]:
    cpu = redis.info("cpu")
    stats = redis.info("stats")
    commands = sum(int(v["calls"]) for v in redis.info("commandstats").values())
    return {
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "in": float(stats["total_net_input_bytes"]),
        "out": float(stats["total_net_output_bytes"]),
        "commands": float(commands),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--tenants", type=int, default=len(TENANTS), choices=range(1, 65))
    parser.add_argument("--leasing", type=float, default=None, help="blockPercent")
    parser.add_argument("--no-concurrency", action="store_true")
    args = parser.parse_args()
    shape = Shape(args.tenants, args.leasing, not args.no_concurrency, args.seconds, args.inflight)
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="aigw-capacity-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    redis = SyncRedis(port=port)
    try:
        for _ in range(200):
            try:
                redis.ping()
                break
            except OSError:
                time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        queue: Any = multiprocessing.get_context("spawn").Queue()
        start = time.time() + 3.0
        procs = [
            multiprocessing.get_context("spawn").Process(
                target=child, args=(url, start, shape, queue)
            )
            for _ in range(args.processes)
        ]
        for proc in procs:
            proc.start()
        while time.time() < start:
            time.sleep(0.01)
        before = redis_figures(redis)
        calls = sum(queue.get(timeout=args.seconds + 60) for _ in procs)
        after = redis_figures(redis)
        for proc in procs:
            proc.join(timeout=30)
        delta = {k: after[k] - before[k] for k in before}
        with open("/proc/loadavg") as load:
            loadavg = load.read().split()[:3]
        result = {
            "calls": calls,
            "calls_per_s": round(calls / args.seconds),
            "redis_cpu_us_per_call": round(delta["cpu"] / calls * 1e6, 1),
            "one_shard_ceiling_calls_per_s": round(calls / delta["cpu"]),
            "commands_per_call": round((delta["commands"] - 0) / calls, 2),
            "bytes_in_per_call": round(delta["in"] / calls),
            "bytes_out_per_call": round(delta["out"] / calls),
            "load_average": loadavg,
            "shape": {
                "tenants": shape.tenants,
                "leasing": shape.leasing,
                "concurrency": shape.concurrency,
            },
        }
        print(json.dumps(result, indent=2))
    finally:
        redis.close()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
