"""Shared state against hostile callers and failing Redis, through a real sidecar.

Each test is a regression of issue 11: a caller's ``X-Request-Id`` is never a reservation
key; numbers are bounded before a script and checked inside it; ``n`` choices are reserved
for; a lease lives as long as its call; a frozen, failed-over or killed Redis leaves no
lease or reservation behind, follows the policy's fail mode for every failure (error
replies included) with throttled logs, and counts exactly after recovery; blocked decisions
are counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from aigw_sidecar.app_keys import GOVERN
from aigw_sidecar.governance import Governor
from support.redis import RedisServer

from .conftest import HELLO, Sidecar, counter_values, use_case

LONG = {"model": "chat", "messages": [{"role": "user", "content": "one two three four five"}]}


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Sidecar settings for each state store (a fresh Redis database for each test)."""
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    return {"redis_url": server.url}


def governor_of(sidecar: Sidecar) -> Governor:
    governor: Governor = sidecar.server.api[GOVERN].governor
    return governor


async def settled(sidecar: Sidecar) -> None:
    """Wait (bounded) until background settlements and deferred replays are done."""
    governor = governor_of(sidecar)
    for _ in range(1000):
        if not (governor.settling or governor.pending):
            return
        await asyncio.sleep(0.02)
    pytest.fail("settlements still pending after 20 s")


async def used(sidecar: Sidecar, counter: str) -> int:
    """``used`` of one counter of the default tenant, from /aigw/status."""
    status = json.loads(await sidecar.get("/aigw/status"))
    (entry,) = [c for c in status["governance"]["counters"] if c["counter"] == counter]
    return int(entry["used"])


def tokens_of(result: tuple[int, dict[str, str], Any]) -> int:
    usage = result[2]["usage"]
    return int(usage["prompt_tokens"]) + int(usage["completion_tokens"])


# -- 1. the caller's X-Request-Id is never a key ---------------------------------------------


async def test_a_repeated_caller_request_id_shares_no_lease_and_skips_no_count(
    sidecar_with: Callable[..., Any], state: dict[str, Any]
) -> None:
    budget = {"name": "d", "period": "day", "tokens": 1000}
    spec = {"useCases": [use_case(rateLimits={"concurrency": 1}, budgets=[budget])]}
    async with sidecar_with(spec, **state) as sidecar:
        sidecar.fake.queue_fault(latency_ms=400)
        body = {**HELLO, "max_tokens": 100}
        results = await asyncio.gather(
            *(sidecar.post(body, X_Request_Id="same-id") for _ in range(4))
        )
        assert sorted(r[0] for r in results) == [200, 429, 429, 429]
        ours = {r[1]["X-AIGW-Request-Id"] for r in results}
        assert len(ours) == 4  # the sidecar's own ids
        assert "same-id" not in ours
        echoed = {v for r in results for k, v in r[1].items() if k.lower() == "x-request-id"}
        assert echoed == {"same-id"}  # echoed for correlation only
        # Two overlapping calls with one caller id: both counted, settled once each.
        await settled(sidecar)
        sidecar.fake.queue_fault(latency_ms=300)
        first = asyncio.create_task(sidecar.post(body, X_Request_Id="again"))
        await asyncio.sleep(0.1)
        served = [r for r in results if r[0] == 200]
        second = await sidecar.post(body, X_Request_Id="again")
        done = await first
        assert second[0] == 429  # concurrency 1: the id does not let it share the lease
        await settled(sidecar)
        assert await used(sidecar, "budget:d:tokens") == tokens_of(served[0]) + tokens_of(done)


# -- 2. numbers are bounded before a script and checked inside it ---------------------------


async def test_a_huge_latency_header_leaves_no_lease_without_ttl(
    sidecar_with: Callable[..., Any], redis_server: RedisServer
) -> None:
    redis_server.flush()
    spec = {"useCases": [use_case(rateLimits={"concurrency": 2, "tokensPerMinute": 10_000})]}
    async with sidecar_with(spec, redis_url=redis_server.url) as sidecar:
        for value in ("100000000000000000000", "9" * 40, "86400001"):
            status, _, _ = await sidecar.post(HELLO, X_AIGW_Max_Latency_Ms=value)
            assert status in (200, 400), status
        await settled(sidecar)
        client = redis_server.client()
        try:
            keys = client.keys("*")
            assert all(client.ttl(k) > 0 for k in keys), {k: client.ttl(k) for k in keys}
            leases = [k for k in keys if ":cc:" in k]
            assert sum(client.zcount(k, "(-inf", "+inf") for k in leases) == 0  # all ended
        finally:
            client.close()
        assert [(await sidecar.post(HELLO))[0] for _ in range(3)] == [200, 200, 200]


# -- 3. n choices are reserved for -----------------------------------------------------------


async def test_n_choices_count_against_cost_caps_and_budgets(
    sidecar_with: Callable[..., Any], state: dict[str, Any]
) -> None:
    budget = {"name": "d", "period": "day", "tokens": 1000}
    spec = {"useCases": [use_case(limits={"maxCostUSD": "0.003"}, budgets=[budget])]}
    async with sidecar_with(spec, **state) as sidecar:
        client = openai.AsyncOpenAI(base_url=f"{sidecar.url}/v1", api_key="k", max_retries=0)
        messages: Any = HELLO["messages"]
        one = await client.chat.completions.create(model="chat", messages=messages, max_tokens=100)
        assert one.choices
        with pytest.raises(openai.BadRequestError) as capped:  # 50 x 100 tokens at 1 USD/M
            await client.chat.completions.create(
                model="chat", messages=messages, max_tokens=100, n=50
            )
        assert capped.value.code == "cost_limit_exceeded"
        with pytest.raises(openai.RateLimitError) as spent:  # 10 x 100 > the 1,000 budget
            await client.chat.completions.create(
                model="chat", messages=messages, max_tokens=100, n=2 + 8
            )
        assert spent.value.code == "budget_exceeded"
        with pytest.raises(openai.BadRequestError) as many:
            await client.chat.completions.create(
                model="chat", messages=messages, max_tokens=1, n=129
            )
        assert many.value.status_code == 400
        await client.close()


# -- 4. a lease lives as long as its call ----------------------------------------------------


async def test_a_lease_is_renewed_while_its_stream_runs(
    sidecar_with: Callable[..., Any], state: dict[str, Any]
) -> None:
    spec = {"useCases": [use_case(rateLimits={"concurrency": 1})]}
    async with sidecar_with(spec, lease_s=0.45, **state) as sidecar:
        sidecar.fake.queue_fault(chunk_latency_ms=250)  # ~8 events: ~2 s, four leases long
        stream = asyncio.create_task(sidecar.post({**LONG, "stream": True}))
        await asyncio.sleep(1.2)
        assert not stream.done()
        status, _, body = await sidecar.post(HELLO)
        assert (status, body["error"]["code"]) == (429, "concurrency_limited")
        assert (await stream)[0] == 200
        await settled(sidecar)
        assert (await sidecar.post(HELLO))[0] == 200  # released at the end, not expired


# -- shared state under faults ---------------------------------------------------------------

FAULT_POLICY = {
    "failMode": "open",
    "useCases": [
        use_case(
            rateLimits={"concurrency": 64, "tokensPerMinute": 1_000_000},
            budgets=[{"name": "d", "period": "day", "tokens": 1_000_000}],
        )
    ],
}


@pytest.fixture
async def faulty(
    sidecar_with: Callable[..., Any], own_redis: RedisServer
) -> AsyncIterator[Sidecar]:
    """A sidecar on a Redis of its own, failing open, with a short reply timeout."""
    async with sidecar_with(FAULT_POLICY, redis_url=own_redis.url, redis_timeout_s=0.3) as sidecar:
        yield sidecar


def redis_counts(server: RedisServer) -> tuple[list[float], int]:
    """(the day budget's values, live leases and reservation records) in ``server``."""
    client = server.client()
    try:
        zsets = client.keys("aigw:*:cc:*") + client.keys("aigw:*:open")
        records = sum(client.zcount(k, "(-inf", "+inf") for k in zsets)  # not the sentinel
        return counter_values(client, "bu:d:"), records
    finally:
        client.close()


async def calls(sidecar: Sidecar, count: int) -> list[tuple[int, dict[str, str], Any]]:
    return list(await asyncio.gather(*(sidecar.post(HELLO) for _ in range(count))))


async def test_a_frozen_redis_leaves_no_reservation_behind(
    faulty: Sidecar, own_redis: RedisServer
) -> None:
    before = await calls(faulty, 8)
    assert {r[0] for r in before} == {200}
    own_redis.freeze()
    try:
        during = await calls(faulty, 16)  # every reserve times out: served open, locally
        assert {r[0] for r in during} == {200}
        await asyncio.sleep(1.0)  # past every give-up deadline while still frozen
    finally:
        own_redis.thaw()
    await settled(faulty)
    budget, records = redis_counts(own_redis)
    assert records == 0
    assert budget == [sum(tokens_of(r) for r in before)]
    after = await calls(faulty, 8)
    assert {r[0] for r in after} == {200}  # no stale lease refuses anyone
    await settled(faulty)
    assert redis_counts(own_redis) == ([sum(tokens_of(r) for r in before + after)], 0)


async def test_a_killed_redis_fails_open_and_counts_exactly_after_restart(
    faulty: Sidecar, own_redis: RedisServer
) -> None:
    assert {r[0] for r in await calls(faulty, 4)} == {200}
    own_redis.kill()
    assert {r[0] for r in await calls(faulty, 8)} == {200}
    own_redis.start()  # same port, empty: what was counted before is gone with it
    await asyncio.sleep(0.6)  # past the store's back-off
    after = await calls(faulty, 8)
    assert {r[0] for r in after} == {200}
    await settled(faulty)
    assert redis_counts(own_redis) == ([sum(tokens_of(r) for r in after)], 0)


async def replicate(replica: RedisServer, primary: RedisServer | None) -> None:
    """``REPLICAOF`` (None: promote), then wait (bounded) until the link is up."""
    client = replica.client()
    try:
        if primary is None:
            client.replicaof("NO", "ONE")
            return
        client.replicaof("127.0.0.1", primary.port)
        for _ in range(400):
            if client.info("replication").get("master_link_status") == "up":
                return
            await asyncio.sleep(0.025)
        pytest.fail("replication did not come up in 10 s")
    finally:
        client.close()


async def replicated(primary: RedisServer) -> None:
    """Wait (bounded) until the primary's replica has acknowledged every write so far:
    replication is asynchronous, and a replica promoted before then loses the last ones."""
    client = primary.client()
    try:
        acknowledged = await asyncio.to_thread(client.execute_command, "WAIT", 1, 10_000)
        assert acknowledged == 1, "the replica did not catch up in 10 s"
    finally:
        client.close()


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_readonly_during_a_failover_follows_the_fail_mode(
    sidecar_with: Callable[..., Any],
    own_redis: RedisServer,
    tmp_path: Path,
    fail_mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = RedisServer(tmp_path / "b")
    other.start()
    try:
        await replicate(other, own_redis)  # B follows A; the sidecar talks to A
        spec = {**FAULT_POLICY, "failMode": fail_mode}
        async with sidecar_with(spec, redis_url=own_redis.url, redis_timeout_s=0.3) as sidecar:
            before = await calls(sidecar, 4)
            await settled(sidecar)
            await replicated(own_redis)  # B has every write of A before it is promoted
            await replicate(other, None)  # failover: B is promoted, A follows it (READONLY)
            await replicate(own_redis, other)
            caplog.clear()
            caplog.set_level(logging.INFO)
            during = await calls(sidecar, 20)
            expected = 200 if fail_mode == "open" else 503
            assert {r[0] for r in during} == {expected}
            if fail_mode == "closed":
                assert {r[2]["error"]["code"] for r in during} == {"state_unavailable"}
            lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]
            assert not any(r.exc_info for r in caplog.records)  # no traceback per request
            await replicate(own_redis, None)  # back: A is the primary again, with B's data
            await replicate(other, own_redis)
            await asyncio.sleep(0.6)
            after = await calls(sidecar, 4)
            assert {r[0] for r in after} == {200}
            await settled(sidecar)
            served = [r for r in before + after if r[0] == 200]
            assert redis_counts(own_redis) == ([sum(tokens_of(r) for r in served)], 0)
    finally:
        other.remove()


@pytest.mark.redis  # starts its own redis-server node
async def test_an_error_reply_of_a_cluster_node_follows_the_fail_mode(
    sidecar_with: Callable[..., Any], tmp_path: Path
) -> None:
    node = RedisServer(tmp_path, "--cluster-enabled", "yes", "--cluster-config-file", "n.conf")
    node.start()  # no slots assigned: every script is refused with CLUSTERDOWN
    try:
        for mode, expected in (("open", 200), ("closed", 503)):
            spec = {**FAULT_POLICY, "failMode": mode}
            async with sidecar_with(spec, redis_url=node.url) as sidecar:
                assert {r[0] for r in await calls(sidecar, 4)} == {expected}
    finally:
        node.remove()


# -- blocked decisions are counted -----------------------------------------------------------


async def test_blocked_decisions_reach_the_decisions_metric(
    sidecar_with: Callable[..., Any],
) -> None:
    spec = {"useCases": [use_case(rateLimits={"requestsPerMinute": 1})]}
    async with sidecar_with(spec) as sidecar:
        assert (await sidecar.post(HELLO, X_AIGW_Tenant="evil-corp"))[0] == 403
        assert (await sidecar.post(HELLO))[0] == 200
        assert (await sidecar.post(HELLO))[0] == 429
        metrics = await sidecar.get("/metrics")
        for step, code in (("identify", "tenant_not_granted"), ("limit", "rate_limited")):
            line = (
                f'aigw_policy_decisions_total{{code="{code}",step="{step}",verdict="blocked"}} 1.0'
            )
            assert line in metrics, metrics
