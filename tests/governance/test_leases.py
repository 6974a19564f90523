"""Hot-tenant mode (``leasing.blockPercent``): blocks leased from a real Redis, spent locally.

Several governors (one per "sidecar", each with its own connection) share one redis-server,
a 3-master Redis Cluster or a TLS redis-server. Each request reserves 100 tokens (9 prompt +
91 output). The checks are the bound docs/governance.md states:

* a budget never admits more than its limit, and leaves at most ``pods x B`` unused while
  other pods hold blocks; a tokens/min limit admits at most ``limit + pods x B`` in a minute
  (the test builds the case where a block leased before the bucket drained is spent after);
* every returned remainder is credited back: once every governor has returned its blocks,
  the counter holds exactly what the calls used (nothing counted twice or lost);
* a block is returned when a bundle is reloaded, when its budget window ends, when unused
  for a lease period, and at shutdown; a dead pod's block expires with its lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aigw_contract import Bundle
from aigw_sidecar.governance import (
    Denied,
    GovernanceSettings,
    Governor,
    ManualClock,
    MemoryStore,
    PodIdentity,
    RedisStore,
    Usage,
)
from aigw_sidecar.governance.leases import block_size
from support.redis import SharedRedis

POD = PodIdentity("team-a", "sa", {"app": "support"})
HELLO_BODY: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 91,
    "messages": [{"role": "user", "content": "hello"}],
}
RESERVATION = 100
NOW = 2_000_000_000.0
PODS = 4
PER_POD = 100
ValuesOf = Callable[[Any, str], list[float]]


def use_case(percent: float, **limits: Any) -> dict[str, Any]:
    return {"name": "reply", "routes": ["chat"], "leasing": {"blockPercent": percent}, **limits}


def governors(
    shared: SharedRedis, clock: ManualClock, pods: int = PODS, lease_seconds: float = 30.0
) -> list[Governor]:
    settings = GovernanceSettings(lease_seconds=lease_seconds)
    return [
        Governor(
            POD, RedisStore.from_url(shared.url, tls=shared.tls), clock=clock, settings=settings
        )
        for _ in range(pods)
    ]


async def call(governor: Governor, view: Any, used: int | None = None) -> int:
    """One call: 0 if refused, else the tokens it used (``used`` output tokens, default all)."""
    admission = governor.admit(view, request_id="r", body=BODY, route="chat")
    try:
        grant = await governor.limit(view, admission)
    except Denied:
        return 0
    await asyncio.sleep(0)
    output = admission.constraints.max_output_tokens if used is None else used
    await governor.settle(grant, Usage(admission.constraints.prompt_tokens, output))
    return admission.constraints.prompt_tokens + output


async def close(pods: list[Governor]) -> None:
    for governor in pods:
        await governor.aclose()


@pytest.mark.parametrize("varied", [False, True], ids=["worst-case", "varied-usage"])
async def test_several_governors_stay_within_the_bound_and_every_remainder_is_credited_back(
    shared_redis: SharedRedis,
    bundle_of: Callable[..., Bundle],
    counter_values: ValuesOf,
    varied: bool,
) -> None:
    limit = 37 * RESERVATION + RESERVATION - 1  # 37 calls of their worst case fit
    percent = 5.0
    block = block_size(limit, percent)  # 189 tokens: one block holds one call, not two
    bundle = bundle_of(
        {"useCases": [use_case(percent, budgets=[{"name": "d", "period": "day", "tokens": limit}])]}
    )
    clock = ManualClock(NOW)
    pods = governors(shared_redis, clock)
    views = [g.view(bundle) for g in pods]
    try:
        results = await asyncio.gather(
            *(
                call(g, v, (i * 37) % 92 if varied else None)
                for g, v in zip(pods, views, strict=True)
                for i in range(PER_POD)
            )
        )
        used = sum(results)
        granted = sum(1 for r in results if r)
        (counted,) = counter_values(shared_redis, "bu:d:")
        # What was used never exceeds the limit (a budget's overspend bound is 0), and
        # while blocks are out the counter holds at least that.
        assert used <= counted <= limit
        if not varied:  # every call used its worst case: the admitted count is exact
            assert granted * RESERVATION <= limit
            # At most pods x B stays unused in other pods' blocks when a call is refused.
            assert granted * RESERVATION >= limit - PODS * block - RESERVATION
        else:  # calls that used less gave it back to their block: more calls fit
            assert granted > limit // RESERVATION
    finally:
        await close(pods)
    (returned,) = counter_values(shared_redis, "bu:d:")
    assert returned == used  # every remainder credited back: what was used, exactly


async def test_a_tokens_per_minute_limit_admits_at_most_limit_plus_pods_times_b_in_a_minute(
    shared_redis: SharedRedis, bundle_of: Callable[..., Bundle]
) -> None:
    limit = 20 * RESERVATION
    percent = 10.0
    block = block_size(limit, percent)  # 200 tokens: two calls per block
    bundle = bundle_of({"useCases": [use_case(percent, rateLimits={"tokensPerMinute": limit})]})
    clock = ManualClock(NOW)
    first, second = pods = governors(shared_redis, clock, pods=2, lease_seconds=3_600)
    views = [g.view(bundle) for g in pods]
    try:
        assert await call(first, views[0]) == RESERVATION  # leases a block, spends half
        clock.advance(60.0)  # the bucket has drained the whole block since
        minute = [await call(second, views[1]) for _ in range(30)]
        minute += [await call(first, views[0]) for _ in range(3)]
        admitted = sum(minute)
        # The block leased a minute ago is spent now, on top of a full bucket: overspend
        # is real, and bounded by the blocks outstanding.
        assert limit < admitted <= limit + 2 * block
    finally:
        await close(pods)


async def test_blocks_are_returned_at_reload_window_end_idle_and_shutdown(
    shared_redis: SharedRedis, bundle_of: Callable[..., Bundle], counter_values: ValuesOf
) -> None:
    limit = 1_000_000
    spec = {"useCases": [use_case(1.0, budgets=[{"name": "d", "period": "day", "tokens": limit}])]}
    bundle = bundle_of(spec)
    block = block_size(limit, 1.0)
    clock = ManualClock(NOW)
    (governor,) = governors(shared_redis, clock, pods=1)
    try:
        view = governor.view(bundle)
        assert await call(governor, view) == RESERVATION
        assert counter_values(shared_redis, "bu:d:") == [block]  # one block out, no call sent
        assert await call(governor, view) == RESERVATION
        assert counter_values(shared_redis, "bu:d:") == [block]
        # A reload: the old bundle's block goes back (what was used stays counted).
        view = governor.view(bundle_of(spec))
        await asyncio.sleep(0.05)
        assert governor.leases.held == 0
        assert counter_values(shared_redis, "bu:d:") == [2 * RESERVATION]
        # Unused for a lease period: returned by the maintenance round.
        assert await call(governor, view) == RESERVATION
        assert counter_values(shared_redis, "bu:d:") == [2 * RESERVATION + block]
        clock.advance(30.0)
        await governor.leases.maintain(clock.now(), 20.0)
        await asyncio.sleep(0.05)
        assert counter_values(shared_redis, "bu:d:") == [3 * RESERVATION]
        # The day ends: the next call leases a block of the new day's window.
        assert await call(governor, view) == RESERVATION
        clock.advance(86_400.0)
        assert await call(governor, view) == RESERVATION
        await asyncio.sleep(0.05)
        assert counter_values(shared_redis, "bu:d:") == [block]  # the new day: one block out
        assert governor.leases.held == 1
    finally:
        await governor.aclose()  # shutdown returns the rest
    assert counter_values(shared_redis, "bu:d:") == [RESERVATION]


async def test_a_dead_pods_block_stays_counted_and_its_lease_expires(
    shared_redis: SharedRedis, bundle_of: Callable[..., Bundle], counter_values: ValuesOf
) -> None:
    limit = 100_000
    spec = {"useCases": [use_case(2.0, budgets=[{"name": "d", "period": "day", "tokens": limit}])]}
    bundle = bundle_of(spec)
    block = block_size(limit, 2.0)
    clock = ManualClock(NOW)
    dead, alive = governors(shared_redis, clock, pods=2)
    try:
        assert await call(dead, dead.view(bundle)) == RESERVATION
        (lot,) = dead.leases.lots()
        (rid,) = [r.rid for r in lot.records]
        assert isinstance(dead.store, RedisStore)
        await dead.store.client.aclose()  # the pod dies: nothing returned, nothing renewed
        clock.advance(31.0)  # past its lease: nobody renewed it
        view = alive.view(bundle)
        assert await call(alive, view) == RESERVATION
        await alive.aclose()
        # The dead pod's record is gone, and its block stays counted (never credited twice).
        assert counter_values(shared_redis, "bu:d:") == [block + RESERVATION]
        assert rid not in _open_members(shared_redis)
    finally:
        await alive.aclose()


def _open_members(shared: SharedRedis) -> list[str]:
    members: list[str] = []
    for server in shared.primaries():
        client = server.client()
        try:
            for key in client.keys("aigw:*:open"):
                members += [str(m) for m in client.zrange(key, 0, -1)]
        finally:
            client.close()
    return members


async def test_nothing_a_caller_sends_sizes_or_inflates_a_block(
    sidecar_with: Any, redis_server: Any, counter_values: ValuesOf
) -> None:
    """Through a real sidecar on a real Redis: the block is the policy's alone. Headers and
    metadata naming a lease, one caller id on every call, a call larger than a block, a call
    larger than the budget and a tenant not granted change no block; a granted tenant gets
    its own block; after the sidecar stops the counter holds what the provider reported."""
    redis_server.flush()
    limit = 1_000_000
    block = block_size(limit, 1.0)
    budget = {"name": "d", "period": "day", "tokens": limit}
    spec = {"additionalTenants": ["globex"], "useCases": [use_case(1.0, budgets=[budget])]}
    hostile = {
        "X_AIGW_Lease": "100", "X_AIGW_Block_Percent": "100", "X_AIGW_Leasing": "off",
        "X_Request_Id": "same-id-on-every-call",
    }  # fmt: skip
    body = {**HELLO_BODY, "metadata": {"leasing": {"blockPercent": 100}, "block": "999999"}}
    used = 0
    client = redis_server.client()
    try:
        async with sidecar_with(spec, redis_url=redis_server.url) as sidecar:
            for _ in range(5):
                status, headers, payload = await sidecar.post(body, **hostile)
                assert status == 200, payload
                used += payload["usage"]["total_tokens"]
                assert headers["X-AIGW-Budget-Remaining-Tokens"] == str(limit - used)
            assert counter_values(client, "bu:d:") == [block]  # one block, five local calls
            status, _, payload = await sidecar.post({**body, "max_tokens": 2 * block}, **hostile)
            assert status == 200, payload  # larger than a block: reserved per call
            big = payload["usage"]["total_tokens"]
            used += big
            status, _, payload = await sidecar.post({**body, "max_tokens": 2 * limit}, **hostile)
            assert status == 429, payload  # larger than the budget: refused, nothing counted
            assert payload["error"]["type"] == "budget_exceeded"
            status, _, _ = await sidecar.post(body, X_AIGW_Tenant="initech", **hostile)
            assert status == 403  # not granted: no pool, no block
            status, _, payload = await sidecar.post(body, X_AIGW_Tenant="globex", **hostile)
            assert status == 200, payload
            globex = payload["usage"]["total_tokens"]
            await asyncio.sleep(0.2)  # per-call settlements run in the background
            # team-a: its block and the per-call call; globex: a block of its own.
            assert sorted(counter_values(client, "bu:d:")) == [block, block + big]
            metrics = await sidecar.get("/metrics")
            assert 'aigw_lease_events_total{outcome="leased"} 2.0' in metrics
        # Stopped: every block returned; each tenant's counter is what its calls used.
        assert sorted(counter_values(client, "bu:d:")) == sorted([used, globex])
    finally:
        client.close()


async def test_concurrency_is_reserved_per_call_and_a_refused_call_gives_its_share_back(
    shared_redis: SharedRedis, bundle_of: Callable[..., Bundle], counter_values: ValuesOf
) -> None:
    limit = 1_000_000
    budget = {"name": "d", "period": "day", "tokens": limit}
    spec = use_case(1.0, budgets=[budget], rateLimits={"concurrency": 1})
    bundle = bundle_of({"useCases": [spec]})
    clock = ManualClock(NOW)
    (governor,) = governors(shared_redis, clock, pods=1)
    view = governor.view(bundle)
    try:
        first = await governor.limit(
            view, governor.admit(view, request_id="a", body=BODY, route="chat")
        )
        assert first.share is not None  # from the block
        assert first.store is not None  # and the concurrency lease, per call
        (lot,) = governor.leases.lots()
        held = list(lot.left)
        with pytest.raises(Denied) as refused:
            await governor.limit(
                view, governor.admit(view, request_id="b", body=BODY, route="chat")
            )
        assert refused.value.code == "concurrency_limited"
        assert lot.left == held  # the refused call's share is back in the block
        await governor.settle(first, Usage(9, 91))
        second = await governor.limit(
            view, governor.admit(view, request_id="c", body=BODY, route="chat")
        )
        await governor.settle(second, Usage(9, 91))
    finally:
        await governor.aclose()
    assert counter_values(shared_redis, "bu:d:") == [2 * RESERVATION]


async def test_a_pod_spends_the_block_it_holds_while_redis_is_down_then_follows_the_fail_mode(
    own_redis: Any, bundle_of: Callable[..., Bundle], counter_values: ValuesOf
) -> None:
    """Redis stops after a block was leased: the pod admits against what it holds (counted
    already, so the bound holds) until the block runs out; then the per-call path follows
    ``failMode: closed`` (503)."""
    limit = 10_000
    budget = {"name": "d", "period": "day", "tokens": limit}
    bundle = bundle_of({"failMode": "closed", "useCases": [use_case(5.0, budgets=[budget])]})
    assert block_size(limit, 5.0) == 5 * RESERVATION  # a block holds five calls
    clock = ManualClock(NOW)
    governor = Governor(POD, RedisStore.from_url(own_redis.url), clock=clock)
    view = governor.view(bundle)
    try:
        assert await call(governor, view) == RESERVATION
        client = own_redis.client()
        try:
            assert counter_values(client, "bu:d:") == [5 * RESERVATION]
        finally:
            client.close()
        own_redis.stop()
        served = [await call(governor, view) for _ in range(4)]
        assert served == [RESERVATION] * 4  # the rest of the block, no Redis needed
        admission = governor.admit(view, request_id="r", body=BODY, route="chat")
        with pytest.raises(Denied) as refused:
            await governor.limit(view, admission)
        assert refused.value.code == "state_unavailable"
        # The top-up tried while Redis was down is queued for release (in case it ran);
        # the block, all of it spent, has nothing to return.
        assert governor.pending == 1
    finally:
        await governor.aclose()


async def test_without_shared_state_or_outside_enforce_nothing_is_leased(
    bundle_of: Callable[..., Bundle], redis_server: Any
) -> None:
    """Memory state (one pod) counts per call already; observe and warn count per call so
    every decision is recorded: neither leases a block."""
    budget = {"name": "d", "period": "day", "tokens": 1_000_000}
    clock = ManualClock(NOW)
    memory = Governor(POD, MemoryStore(), clock=clock)
    view = memory.view(bundle_of({"useCases": [use_case(1.0, budgets=[budget])]}))
    assert await call(memory, view) == RESERVATION
    assert memory.leases.held == 0
    redis_server.flush()
    for mode in ("observe", "warn"):
        shared = Governor(POD, RedisStore.from_url(redis_server.url), clock=clock)
        try:
            spec = {"mode": mode, "useCases": [use_case(1.0, budgets=[budget])]}
            assert await call(shared, shared.view(bundle_of(spec))) == RESERVATION
            assert shared.leases.held == 0
        finally:
            await shared.aclose()
