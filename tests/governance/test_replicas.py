"""Four real ``aigw sidecar`` processes share one redis-server and one fake provider.

400 concurrent requests (100 per sidecar) against a limit that admits exactly N: exactly N
succeed, and the spend recorded in Redis never exceeds the limit. Each request reserves
R = 9 (estimated prompt) + 91 (max_tokens) = 100 tokens. The fake answers after a delay,
so no request settles (and refunds the unused part of its reservation) before every
reservation has been decided; the test checks that this held rather than assuming it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import redis

from aigw_contract import Bundle
from aigw_fakeprovider import FakeProvider
from support import free_port

AIGW = Path(sys.executable).with_name("aigw")
SIDECARS = 4
PER_SIDECAR = 100
R = 100
BODY = {"model": "chat", "max_tokens": 91, "messages": [{"role": "user", "content": "hello"}]}
LATENCY_MS = 8000


def route_doc(base_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "chat", "namespace": "team-a"},
        "spec": {
            "backends": [
                {
                    "name": "main", "provider": "openai", "model": "gpt-4o-mini",
                    "baseURL": base_url,
                    "pricing": {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "2"},
                }
            ],
            "retry": {"attempts": 1},
            "timeouts": {"requestMs": 60000},
        },
    }  # fmt: skip


async def start_sidecars(
    bundle: Path, redis_url: str, tmp: Path, logs: list[IO[bytes]]
) -> list[tuple[Any, str, str]]:
    sidecars = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    # A generous Redis timeout: on a loaded 2-core machine a reply to the 100th pipelined
    # script can take longer than the 0.5 s default, which would (rightly) fail closed.
    for i in range(SIDECARS):
        port, admin = free_port(), free_port()
        logs.append((tmp / f"sidecar-{i}.log").open("wb"))
        proc = await asyncio.create_subprocess_exec(
            str(AIGW), "sidecar", "--bundle", str(bundle), "--port", str(port),
            "--admin-port", str(admin), "--admin-host", "127.0.0.1", "--secrets-dir", str(tmp),
            "--redis-url", redis_url, "--redis-timeout", "10", "--log-level", "WARNING",
            env=env, stdout=subprocess.DEVNULL, stderr=logs[-1],
        )  # fmt: skip
        sidecars.append((proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"))
    async with aiohttp.ClientSession() as session:
        for proc, _, admin_url in sidecars:
            for _ in range(1200):  # starting 4 Python processes on 2 busy cores takes a while
                assert proc.returncode is None, "a sidecar exited"
                try:
                    async with session.get(f"{admin_url}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            else:
                pytest.fail("a sidecar never became ready")
    return sidecars


async def fire(urls: list[str]) -> list[tuple[str, float]]:
    """Every request at once; (outcome, loop time the answer arrived) of each."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> tuple[str, float]:
            async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
                payload = await response.json()
                outcome = "ok" if response.status == 200 else payload["error"]["type"]
                return outcome, loop.time()

        return list(
            await asyncio.gather(*(one(urls[i % len(urls)]) for i in range(SIDECARS * PER_SIDECAR)))
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("limits", "admitted", "refusal", "key_part"),
    [
        # A day budget of 37 reservations plus 99 tokens: exactly 37 fit.
        ({"budgets": [{"name": "d", "period": "day", "tokens": 37 * R + R - 1}]}, 37,
         "budget_exceeded", "bu:d:"),
        # Tokens/min of exactly 10 reservations: an 11th would need 60/10 = 6 s of refill.
        ({"rateLimits": {"tokensPerMinute": 10 * R}}, 10, "rate_limited", ":tpm"),
    ],
)  # fmt: skip
async def test_four_sidecars_admit_exactly_n(
    redis_server: Any,
    bundle_of: Callable[..., Bundle],
    tmp_path: Path,
    limits: dict[str, Any],
    admitted: int,
    refusal: str,
    key_part: str,
    counter_values: Callable[[Any, str], list[float]],
) -> None:
    redis_server.flush()
    async with FakeProvider("openai") as fake:
        bundle = bundle_of(
            {"useCases": [{"name": "reply", "routes": ["chat"], **limits}]},
            routes=(route_doc(fake.openai_base_url),),
        )
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle.to_json_bytes())
        logs: list[IO[bytes]] = []
        sidecars: list[tuple[Any, str, str]] = []
        try:
            sidecars = await start_sidecars(path, redis_server.url, tmp_path, logs)
            fake.queue_fault(latency_ms=LATENCY_MS, count=SIDECARS * PER_SIDECAR)
            answers = await fire([url for _, url, _ in sidecars])
            outcomes = Counter(outcome for outcome, _ in answers)
            # The precondition of an exact count: every refusal was decided before the first
            # admitted call came back (and settled, refunding its unused reservation).
            last_refusal = max(t for outcome, t in answers if outcome != "ok")
            first_ok = min(t for outcome, t in answers if outcome == "ok")
            assert last_refusal < first_ok, "the machine was too slow for the fake's delay"
            assert outcomes == Counter({"ok": admitted, refusal: SIDECARS * PER_SIDECAR - admitted})
            assert len(fake.recorder) == admitted
        finally:
            for proc, _, _ in sidecars:
                proc.terminate()
            for proc, _, _ in sidecars:
                await proc.wait()
            for log in logs:
                log.close()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        values = counter_values(client, key_part)
        if key_part == ":tpm":  # a drained bucket expires by itself; if still there, <= limit
            assert all(v <= 10 * R for v in values)
        else:
            (used,) = values
            # Settled to the provider's (smaller) usage: recorded spend never above the budget.
            assert 0 < used <= 37 * R + R - 1
    finally:
        client.close()


@pytest.mark.slow
async def test_four_sidecars_leasing_blocks_stay_within_the_bound_and_return_on_sigterm(
    redis_server: Any,
    bundle_of: Callable[..., Bundle],
    tmp_path: Path,
    counter_values: Callable[[Any, str], list[float]],
) -> None:
    """Hot-tenant mode across 4 real sidecars: blocks of 5% of a day budget (B = 189
    tokens). Admitted worst cases never pass the limit, a refusal leaves at most 4 x B
    unused, and once SIGTERM has drained every sidecar (returning its blocks) the counter
    holds exactly the usage the provider reported for the calls it answered."""
    redis_server.flush()
    limit = 37 * R + R - 1
    budget = {"name": "d", "period": "day", "tokens": limit}
    use_case = {"name": "reply", "routes": ["chat"], "budgets": [budget],
                "leasing": {"blockPercent": 5}}  # fmt: skip
    async with FakeProvider("openai") as fake:
        bundle = bundle_of({"useCases": [use_case]}, routes=(route_doc(fake.openai_base_url),))
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle.to_json_bytes())
        logs: list[IO[bytes]] = []
        sidecars: list[tuple[Any, str, str]] = []
        used: list[int] = []
        try:
            sidecars = await start_sidecars(path, redis_server.url, tmp_path, logs)
            fake.queue_fault(latency_ms=LATENCY_MS, count=SIDECARS * PER_SIDECAR)
            urls = [url for _, url, _ in sidecars]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def one(url: str) -> str:
                    async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
                        payload = await response.json()
                        if response.status != 200:
                            return str(payload["error"]["type"])
                        used.append(int(payload["usage"]["total_tokens"]))
                        return "ok"

                outcomes = Counter(
                    await asyncio.gather(
                        *(one(urls[i % SIDECARS]) for i in range(SIDECARS * PER_SIDECAR))
                    )
                )
            granted = outcomes["ok"]
            assert outcomes == Counter({"ok": granted, "budget_exceeded": 400 - granted})
            assert limit - SIDECARS * 189 - R <= granted * R <= limit
            assert len(fake.recorder) == granted
        finally:
            for proc, _, _ in sidecars:
                proc.terminate()
            for proc, _, _ in sidecars:
                assert await proc.wait() == 0
            for log in logs:
                log.close()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert counter_values(client, "bu:d:") == [sum(used)]
    finally:
        client.close()
