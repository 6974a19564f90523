"""Settlements in the background (``Governor.settle_soon``, what the sidecar does with Redis
state): sent at once and finished in the reply's callback, without a task per call, and
still exactly once: shutdown waits for every one in flight, a failure is counted and
deferred as a waited-for settlement's is, NOSCRIPT loads the script and settles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis

from aigw_contract import Bundle
from aigw_sidecar.governance import (
    Claims,
    Governor,
    Grant,
    ManualClock,
    PodIdentity,
    RedisStore,
    Usage,
)
from aigw_sidecar.steps.govern import Governance
from support.observers import Recorder
from support.ports import free_port
from support.redis import RedisServer
from support.waiting import wait_until

from .conftest import counter_values

LEASES = "aigw:{team-a:team-a}:cc:u.reply"
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 91,
    "messages": [{"role": "user", "content": "hello"}],
}
LIMITS: dict[str, Any] = {
    "name": "reply",
    "routes": ["chat"],
    "rateLimits": {"requestsPerMinute": 100, "tokensPerMinute": 10_000, "concurrency": 10},
    "budgets": [{"name": "d", "period": "day", "tokens": 1000}],
}


def held_leases(client: redis.Redis) -> int:
    return int(client.zcount(LEASES, "(-inf", "+inf"))  # not the sentinel at -inf


async def reserved(server: RedisServer, bundle_of: Callable[..., Bundle], **kw: Any) -> Any:
    """A governor on ``server`` (its scripts loaded) and one call's grant (100 tokens
    reserved, one lease)."""
    store = RedisStore.from_url(server.url, timeout=kw.get("timeout", 0.5), retry_interval=0.0)
    pod = PodIdentity("team-a", "sa", {"app": "support"})
    gov = Governor(pod, store, clock=ManualClock(2_000_000_000.0), observer=kw.get("recorder"))
    view = gov.view(bundle_of({"useCases": [LIMITS]}))
    claims = Claims(tenant="team-a")
    first = gov.admit(view, request_id="first", body=BODY, route="chat", claims=claims)
    await gov.settle(await gov.limit(view, first), None)  # both scripts loaded: released
    admission = gov.admit(view, request_id="call", body=BODY, route="chat", claims=claims)
    grant: Grant = await gov.limit(view, admission)
    return gov, grant


async def test_the_drain_waits_for_a_settlement_in_flight_and_no_task_runs_it(
    own_redis: RedisServer, bundle_of: Callable[..., Bundle]
) -> None:
    recorder = Recorder()
    gov, grant = await reserved(own_redis, bundle_of, recorder=recorder, timeout=10.0)
    client = own_redis.client()
    try:
        assert held_leases(client) == 1
        assert counter_values(client, "bu:d:") == [100.0]  # prompt estimate + max_tokens
        tasks = len(asyncio.all_tasks())
        gov.settle_soon(grant, Usage(10, 10))
        assert grant.settled
        assert gov.settling == 1  # sent, the reply not in yet
        assert len(asyncio.all_tasks()) == tasks  # a reply callback, not a task per call
        own_redis.freeze()  # the reply cannot come before the drain would close the client
        try:
            drain = asyncio.create_task(Governance(gov).drain())  # the sidecar's shutdown
            await asyncio.sleep(0.2)  # let the drain get as far as it can meanwhile
        finally:
            own_redis.thaw()
        await drain
        assert gov.settling == 0
        assert recorder.events == []  # not deferred: settled before the client closed
        assert gov.pending == 0
        assert held_leases(client) == 0
        assert counter_values(client, "bu:d:") == [20.0]  # settled to the usage, once
        gov.settle_soon(grant, Usage(50, 50))  # settling twice does nothing
        assert gov.settling == 0
    finally:
        client.close()


async def test_a_cancelled_wait_leaves_the_settlement_running(
    own_redis: RedisServer, bundle_of: Callable[..., Bundle]
) -> None:
    recorder = Recorder()
    gov, grant = await reserved(own_redis, bundle_of, recorder=recorder, timeout=10.0)
    client = own_redis.client()
    try:
        own_redis.freeze()
        try:
            gov.settle_soon(grant, Usage(10, 10))
            waiter = asyncio.create_task(gov.settled())
            await asyncio.sleep(0)  # the waiter is waiting
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            assert gov.settling == 1  # the reply is still awaited, not cancelled with it
        finally:
            own_redis.thaw()
        await gov.aclose()
        assert recorder.events == []
        assert held_leases(client) == 0
        assert counter_values(client, "bu:d:") == [20.0]
    finally:
        client.close()


async def test_a_settlement_redis_refuses_is_counted_deferred_and_replayed(
    own_redis: RedisServer, bundle_of: Callable[..., Bundle], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    gov, grant = await reserved(own_redis, bundle_of, recorder=recorder)
    client = own_redis.client()
    try:
        client.replicaof("127.0.0.1", str(free_port()))  # READONLY from now on
        caplog.set_level(logging.WARNING, logger="aigw.governance")
        gov.settle_soon(grant, Usage(10, 10))
        await gov.settled()
        assert recorder.events[-1] == ("settle", "deferred")
        assert "settlement deferred" in caplog.text
        assert held_leases(client) == 1  # not applied, and not lost: replayed once it can
        client.replicaof("NO", "ONE")
        await wait_until("the deferred settlement replayed", lambda: gov.pending == 0)
        await wait_until("the lease ended", lambda: held_leases(client) == 0)
        await gov.aclose()
        assert counter_values(client, "bu:d:") == [20.0]
    finally:
        client.close()


async def test_calls_answered_noscript_load_the_script_and_count_once(
    own_redis: RedisServer, bundle_of: Callable[..., Bundle]
) -> None:
    recorder = Recorder()
    gov, grant = await reserved(own_redis, bundle_of, recorder=recorder)
    client = own_redis.client()
    try:
        client.script_flush()  # a restarted Redis: the scripts are gone
        events = len(recorder.events)
        gov.settle_soon(grant, Usage(10, 10))
        await gov.settled()  # the reply, then the task that loads and sends it again
        assert gov.settling == 0
        assert recorder.events[events:] == []  # nothing deferred or failed
        assert held_leases(client) == 0
        assert counter_values(client, "bu:d:") == [20.0]
        client.script_flush()  # and a reservation answered NOSCRIPT: loaded, counted once
        view = gov.view(bundle_of({"useCases": [LIMITS]}))
        claims = Claims(tenant="team-a")
        admission = gov.admit(view, request_id="next", body=BODY, route="chat", claims=claims)
        second = await gov.limit(view, admission)
        assert second.store is gov.store  # in Redis, not this pod's memory
        assert recorder.events[events:] == []
        assert held_leases(client) == 1
        assert counter_values(client, "bu:d:") == [120.0]
    finally:
        client.close()
        await gov.aclose()
