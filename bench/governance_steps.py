"""Added latency of the governance steps per request, with memory and with Redis state.

Runs identify + authorize + constrain (``Governor.admit``), the reservation
(``Governor.limit``) and the settlement (``Governor.settle``) for one request at a time,
many times, on a policy with requests/min, tokens/min, concurrency and a day token budget
and a month money budget (5 counters: the realistic heavy case), and prints microseconds
per request. Redis runs on loopback: its figures include one round trip per reserve and one
per settle; with leased blocks (hot-tenant mode, ``leasing.blockPercent: 1``) only the
concurrency lease does, and without a concurrency limit no call does. Runs on uvloop, like
the sidecar. Starts its own redis-server on a free port unless --redis-url is given. CPU
microseconds per request are printed too: on a busy machine they are steadier than
wall-clock figures.

    .venv/bin/python bench/governance_steps.py [--iterations 20000] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import yaml
from multidict import CIMultiDict, CIMultiDictProxy
from redis import ConnectionError as RedisConnectionError
from redis import Redis as SyncRedis

from aigw_contract import compile_bundle, parse_documents
from aigw_sidecar.claims import parse_claims
from aigw_sidecar.governance import Governor, MemoryStore, PodIdentity, RedisStore, Store, Usage

POD = PodIdentity("team-a", "sa", {"app": "support"})
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 256,
    "messages": [
        {"role": "system", "content": "You are a helpful support assistant. Be brief."},
        {"role": "user", "content": "Where is my order 12345? It was due last Tuesday. " * 4},
    ],
}
HEADERS = CIMultiDictProxy(CIMultiDict({"X-AIGW-Tenant": "acme", "X-AIGW-Use-Case": "reply"}))


def bundle(limits: bool, *, leasing: float | None = None, concurrency: bool = True) -> Any:
    use_case: dict[str, Any] = {"name": "reply", "routes": ["chat"], "limits": {"maxTokens": 512}}
    if limits:
        use_case["rateLimits"] = {
            "requestsPerMinute": 10**8, "tokensPerMinute": 10**10, "concurrency": 10**6,
        }  # fmt: skip
        if not concurrency:
            del use_case["rateLimits"]["concurrency"]
        if leasing is not None:
            use_case["leasing"] = {"blockPercent": leasing}
        use_case["budgets"] = [
            {"name": "daily", "period": "day", "tokens": 10**15},
            {"name": "monthly", "period": "month", "costUSD": "999999999", "scope": "useCase"},
        ]
    docs = [
        {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIPolicy",
         "metadata": {"name": "support", "namespace": "team-a"},
         "spec": {"tenant": "acme", "selector": {"matchLabels": {"app": "support"}},
                  "useCases": [use_case]}},
        {"apiVersion": "aigw.dev/v1alpha1", "kind": "ModelRoute",
         "metadata": {"name": "chat", "namespace": "team-a"},
         "spec": {"backends": [{"name": "main", "provider": "openai", "model": "gpt-4o-mini",
                                "baseURL": "http://127.0.0.1:9/v1",
                                "pricing": {"inputPerMillionTokensUSD": "0.15",
                                            "outputPerMillionTokensUSD": "0.60"}}]}},
    ]  # fmt: skip
    parsed, problems = parse_documents(yaml.safe_dump_all(docs).encode(), "bench")
    assert not problems
    return compile_bundle([d.resource for d in parsed], namespace="team-a",
                          generated_at=datetime.now(UTC))  # fmt: skip


async def measure(
    store: Store,
    limits: bool,
    iterations: int,
    *,
    leasing: float | None = None,
    concurrency: bool = True,
) -> tuple[list[float], list[float], float]:
    """Per request: wall-clock microseconds of admit + reserve (what the request waits for
    before the call), of the settlement (with Redis the sidecar runs it in the background),
    and CPU microseconds of all of it (the CPU figure is what this process spent, so it is
    less disturbed by other load on the box)."""
    governor = Governor(POD, store)
    view = governor.view(bundle(limits, leasing=leasing, concurrency=concurrency))
    before: list[float] = []
    after: list[float] = []
    usage = Usage(80, 120)
    cpu_start = 0.0
    warmup = iterations // 10
    for i in range(iterations + warmup):
        if i == warmup:
            cpu_start = time.process_time()
        start = time.perf_counter_ns()
        claims = parse_claims(HEADERS, BODY)
        admission = governor.admit(view, request_id=f"b{i}", body=BODY, route="chat",
                                   claims=claims)  # fmt: skip
        grant = await governor.limit(view, admission)
        middle = time.perf_counter_ns()
        await governor.settle(grant, usage)
        end = time.perf_counter_ns()
        if i >= warmup:
            before.append((middle - start) / 1000)
            after.append((end - middle) / 1000)
    return before, after, (time.process_time() - cpu_start) * 1e6 / iterations


def report(name: str, measured: tuple[list[float], list[float], float]) -> None:
    before, after, cpu = measured

    def pct(samples: list[float], q: float) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    print(f"{name:<30} n={len(before):>6}  before the call p50 {pct(before, 0.5):7.1f} us"
          f" p99 {pct(before, 0.99):8.1f} us | settle p50 {pct(after, 0.5):7.1f} us"
          f" p99 {pct(after, 0.99):8.1f} us | cpu {cpu:6.1f} us/req")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    probe = SyncRedis.from_url(url)
    try:
        for _ in range(400):
            try:
                probe.ping()
                break
            except RedisConnectionError:
                time.sleep(0.025)
    finally:
        probe.close()
    return server, url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    report("memory, no limits", await measure(MemoryStore(), False, args.iterations))
    report("memory, 5 counters",
           await measure(MemoryStore(), True, args.iterations))  # fmt: skip
    server: subprocess.Popen[bytes] | None = None
    url = args.redis_url
    with tempfile.TemporaryDirectory() as workdir:
        if url is None:
            started = start_redis(workdir)
            if started is None:
                print("redis-server not installed: skipping the Redis figures")
                return
            server, url = started
        try:
            store = RedisStore.from_url(url)
            n = max(1000, args.iterations // 4)
            report("redis, 5 counters", await measure(store, True, n))
            await store.client.aclose()
            # Hot-tenant mode: blocks of 1% leased, calls admitted locally; the
            # concurrency lease (never leased) still goes to Redis per call.
            store = RedisStore.from_url(url)
            report("redis, 5 leased (cc per call)", await measure(store, True, n, leasing=1.0))
            await store.client.aclose()
            store = RedisStore.from_url(url)
            leased = await measure(store, True, args.iterations, leasing=1.0, concurrency=False)
            report("redis, 4 counters leased", leased)
            await store.client.aclose()
        finally:
            if server is not None:
                server.terminate()
                server.wait()


if __name__ == "__main__":
    try:
        import uvloop  # the sidecar's event loop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
