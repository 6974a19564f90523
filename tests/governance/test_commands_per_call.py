"""Commands Redis executes per call for the typical policy, by ``INFO commandstats``.

Typical policy: requests/min, tokens/min, concurrency, a day token budget and a month money
budget. One round trip (one EVALSHA) reserves, one settles; inside them Redis executes at
most 6 commands each (issue 19: about 20 and 15 before the layout of one hash and one zset
per tenant). Measured on one redis-server and on a 3-master cluster, after one warm-up call
(scripts loaded, keys made), over calls spread across several tenants.
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
