"""Commands Redis executes per call for the typical policy, by ``INFO commandstats``.

Typical policy: requests/min, tokens/min, concurrency, a day token budget and a month money
budget. One round trip (one EVALSHA) reserves, one settles; inside them Redis executes at
most 6 commands each (issue 19: about 20 and 15 before the layout of one hash and one zset
per tenant). Measured on one redis-server and on a 3-master cluster, after one warm-up call
(scripts loaded, keys made), over calls spread across several tenants; and for one hot
tenant with leased blocks (``leasing.blockPercent``), with and without a concurrency limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aigw_contract import Bundle
from aigw_sidecar.governance import Claims, Governor, ManualClock, PodIdentity, RedisStore, Usage
from support.redis import SharedRedis

POD = PodIdentity("team-a", "sa", {"app": "support"})
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 91,
    "messages": [{"role": "user", "content": "hi"}],
}
TYPICAL: dict[str, Any] = {
    "name": "reply",
    "routes": ["chat"],
    "rateLimits": {"requestsPerMinute": 100_000, "tokensPerMinute": 10_000_000, "concurrency": 50},
    "budgets": [
        {"name": "d", "period": "day", "tokens": 100_000_000},
        {"name": "m", "period": "month", "costUSD": "1000"},
    ],
}
CALLS = 40
LEASED_CALLS = 200
TENANTS = ["team-a", "globex", "initech", "umbrella"]
NOT_THE_CALL = {"evalsha", "info", "config|resetstat", "config", "script|load", "script", "ping"}


def executed(before: dict[str, int], after: dict[str, int]) -> tuple[int, int]:
    """(commands executed inside the scripts, EVALSHA round trips) between two snapshots."""
    inner = sum(n - before.get(c, 0) for c, n in after.items() if c not in NOT_THE_CALL)
    return inner, after.get("evalsha", 0) - before.get("evalsha", 0)


async def test_the_typical_policy_costs_one_round_trip_and_at_most_6_commands_each_way(
    shared_redis: SharedRedis, bundle_of: Callable[..., Bundle]
) -> None:
    store = RedisStore.from_url(shared_redis.url, tls=shared_redis.tls)
    clock = ManualClock(2_000_000_000.0)
    governor = Governor(POD, store, clock=clock)
    view = governor.view(bundle_of({"useCases": [TYPICAL], "additionalTenants": TENANTS[1:]}))
    try:

        async def reserve(tenant: str) -> Any:
            claims = Claims(tenant=tenant)
            admission = governor.admit(view, request_id="r", body=BODY, route="chat", claims=claims)
            return await governor.limit(view, admission)

        for tenant in TENANTS:  # warm-up: scripts loaded, keys and their expiries made
            await governor.settle(await reserve(tenant), Usage(9, 50))
        before = shared_redis.commandstats()
        grants = []
        for i in range(CALLS):
            clock.advance(0.01)
            grants.append(await reserve(TENANTS[i % len(TENANTS)]))
        middle = shared_redis.commandstats()
        for grant in grants:
            clock.advance(0.01)
            await governor.settle(grant, Usage(9, 50))
        after = shared_redis.commandstats()
    finally:
        await governor.aclose()
    reserve_commands, reserve_trips = executed(before, middle)
    settle_commands, settle_trips = executed(middle, after)
    print(  # the figure the capacity model in docs/governance.md uses
        f"\n{shared_redis.kind}: reserve {reserve_commands / CALLS:.2f} commands in "
        f"{reserve_trips / CALLS:.0f} round trip, settle {settle_commands / CALLS:.2f} in "
        f"{settle_trips / CALLS:.0f}"
    )
    assert (reserve_trips, settle_trips) == (CALLS, CALLS)
    assert reserve_commands <= 6 * CALLS
    assert settle_commands <= 6 * CALLS


async def test_leased_blocks_leave_only_the_concurrency_lease_per_call(
    shared_redis: SharedRedis, bundle_of: Callable[..., Bundle]
) -> None:
    """Hot-tenant mode (``leasing.blockPercent: 1``) on the typical policy, one tenant: a
    block of 1% of each limit serves hundreds of calls, so only the concurrency lease
    (never leased) makes a round trip per call; without a concurrency limit almost none."""
    figures = {}
    for concurrency in (True, False):
        shared_redis.flush()
        use_case = {**TYPICAL, "leasing": {"blockPercent": 1}}
        if not concurrency:
            use_case["rateLimits"] = {
                k: v for k, v in TYPICAL["rateLimits"].items() if k != "concurrency"
            }
        store = RedisStore.from_url(shared_redis.url, tls=shared_redis.tls)
        clock = ManualClock(2_000_000_000.0)
        governor = Governor(POD, store, clock=clock)
        view = governor.view(bundle_of({"useCases": [use_case]}))
        try:
            await governor.settle(
                await governor.limit(
                    view, governor.admit(view, request_id="r", body=BODY, route="chat")
                ),
                Usage(9, 50),
            )  # warm-up: scripts loaded, the first block leased
            before = shared_redis.commandstats()
            for _ in range(LEASED_CALLS):
                clock.advance(0.01)
                admission = governor.admit(view, request_id="r", body=BODY, route="chat")
                await governor.settle(await governor.limit(view, admission), Usage(9, 50))
            after = shared_redis.commandstats()
        finally:
            await governor.aclose()
        commands, trips = executed(before, after)
        figures[concurrency] = (commands / LEASED_CALLS, trips / LEASED_CALLS)
    with_cc, without_cc = figures[True], figures[False]
    print(  # the figures the capacity model in docs/governance.md uses
        f"\n{shared_redis.kind} leased: with concurrency {with_cc[0]:.2f} commands in "
        f"{with_cc[1]:.2f} round trips per call (reserve + settle), without "
        f"{without_cc[0]:.4f} in {without_cc[1]:.4f}"
    )
    assert with_cc[1] <= 2.05  # the lease's reserve and release, and a block now and then
    assert with_cc[0] <= 8.1  # TIME, HMGET, ZCOUNT, ZADD; ZREM, ZREMRANGEBYSCORE, HMGET, ZCOUNT
    assert without_cc[1] <= 0.05  # a block of ~500 calls: one lease in LEASED_CALLS
    assert without_cc[0] <= 0.25
