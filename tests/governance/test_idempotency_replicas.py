"""Idempotency-Key across two sidecars sharing one real redis-server.

50 concurrent duplicates of one request (one key, one body), spread over both sidecars
while the first is upstream: the fake provider is called exactly once, every caller gets
the same answer, and the token budget (also in Redis) is charged once. The two sidecars
share nothing but Redis (each has its own connection, pipeline and in-process waiters).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer, SidecarSettings
from support.redis import RedisServer

from .conftest import make_bundle, policy, sidecar_route

DUPLICATES = 50
BODY = {"model": "chat", "messages": [{"role": "user", "content": "refund order 1234"}]}


@contextlib.asynccontextmanager
async def two_sidecars(
    tmp_path: Path, redis_url: str, fake: FakeProvider, **idempotency: Any
) -> AsyncIterator[list[SidecarServer]]:
    spec = {
        "useCases": [
            {
                "name": "default",
                "routes": ["chat"],
                "idempotency": idempotency,
                "budgets": [{"name": "daily", "period": "day", "tokens": 1_000_000}],
            }
        ]
    }
    bundle = make_bundle(policy("p", spec), sidecar_route("chat", fake.openai_base_url))
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle.to_json_bytes())
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            settings = SidecarSettings(
                bundle_path=path,
                port=0,
                admin_port=0,
                admin_host="127.0.0.1",
                secrets_dir=tmp_path,
                redis_url=redis_url,
                drain_timeout_s=5.0,
            )
            servers.append(await stack.enter_async_context(SidecarServer(settings)))
        yield servers


async def _post(
    session: aiohttp.ClientSession, server: SidecarServer, body: dict[str, Any], key: str
) -> tuple[int, dict[str, Any], str | None]:
    url = f"http://127.0.0.1:{server.api_port}/v1/chat/completions"
    async with session.post(url, json=body, headers={"Idempotency-Key": key}) as response:
        return (
            response.status,
            await response.json(),
            response.headers.get("X-AIGW-Idempotent-Replay"),
        )


async def _used(session: aiohttp.ClientSession, server: SidecarServer) -> int:
    url = f"http://127.0.0.1:{server.admin_port}/aigw/status"
    async with session.get(url) as response:
        status = await response.json()
    (daily,) = [c for c in status["governance"]["counters"] if "daily" in c["counter"]]
    return int(daily["used"])


@pytest.mark.parametrize("in_flight", ["wait", "conflict"])
async def test_fifty_duplicates_through_two_sidecars_call_upstream_once(
    tmp_path: Path, redis_server: RedisServer, in_flight: str
) -> None:
    redis_server.flush()
    async with FakeProvider("openai") as fake:
        fake.queue_fault(latency_ms=400)  # the first is still upstream while the rest arrive
        async with (
            two_sidecars(tmp_path, redis_server.url, fake, inFlight=in_flight) as servers,
            aiohttp.ClientSession() as session,
        ):
            key = f"refund-1234-{in_flight}"
            results = await asyncio.gather(
                *(_post(session, servers[i % 2], BODY, key) for i in range(DUPLICATES))
            )
            assert len(fake.recorder) == 1  # exactly one upstream call
            answers = [body for status, body, _ in results if status == 200]
            conflicts = [body for status, body, _ in results if status == 409]
            assert len(answers) + len(conflicts) == DUPLICATES
            assert all(a == answers[0] for a in answers)  # the same answer, id included
            if in_flight == "wait":
                assert len(answers) == DUPLICATES
                assert sum(replay == "true" for _, _, replay in results) == DUPLICATES - 1
            else:
                assert all(c["error"]["code"] == "idempotency_key_in_use" for c in conflicts)
                assert len(conflicts) >= 1
            # Budget charged once: both sidecars read the same Redis counter.
            charged = answers[0]["usage"]["total_tokens"]
            assert await _used(session, servers[0]) == await _used(session, servers[1])
            assert await _used(session, servers[1]) == charged
            # Later duplicates on either sidecar replay; another body is refused.
            status, body, replay = await _post(session, servers[1], BODY, key)
            if in_flight == "wait":
                assert (status, body, replay) == (200, answers[0], "true")
            other = {**BODY, "messages": [{"role": "user", "content": "refund order 9"}]}
            status, body, _ = await _post(session, servers[0], other, key)
            assert status == 422
            assert body["error"]["code"] == "idempotency_key_reused"
            assert len(fake.recorder) == 1
        keys = redis_server.client().keys("aigw:*:idem:*")
        assert len(keys) == 1
        assert str(keys[0]).startswith("aigw:{team-a:team-a}:idem:default:")
        assert 0 < redis_server.client().ttl(keys[0]) <= 86_400  # a TTL on every record


async def test_an_unreachable_store_fails_closed_by_default(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    async with FakeProvider("openai") as fake:
        async with (
            two_sidecars(tmp_path, own_redis.url, fake) as servers,
            aiohttp.ClientSession() as session,
        ):
            own_redis.stop()
            results = [await _post(session, servers[0], BODY, "k") for _ in range(2)]
        assert [status for status, _, _ in results] == [503, 503]  # failMode: closed
        assert results[0][1]["error"]["code"] == "state_unavailable"
        assert len(fake.recorder) == 0


async def test_an_unreachable_store_fails_open_when_the_policy_says_so(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    spec = {"failMode": "open", "useCases": [{"name": "default", "routes": ["chat"]}]}
    async with FakeProvider("openai") as fake:
        bundle = make_bundle(policy("p", spec), sidecar_route("chat", fake.openai_base_url))
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle.to_json_bytes())
        settings = SidecarSettings(
            bundle_path=path, port=0, admin_port=0, admin_host="127.0.0.1",
            secrets_dir=tmp_path, redis_url=own_redis.url, drain_timeout_s=5.0,
        )  # fmt: skip
        async with SidecarServer(settings) as server, aiohttp.ClientSession() as session:
            own_redis.stop()
            results = [await _post(session, server, BODY, "k") for _ in range(2)]
        # Run without idempotency (both called upstream) rather than refuse.
        assert [status for status, _, _ in results] == [200, 200]
        assert len(fake.recorder) == 2
