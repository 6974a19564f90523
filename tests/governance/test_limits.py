"""Rate limits, concurrency and budgets with a controllable clock, against both stores.

Every test runs twice: with in-memory state and with a real redis-server. The Redis scripts
take the caller's clock, so the same ManualClock drives both; clocks start in the future
(not in the past) so Redis' EXPIREAT of budget keys never fires during a test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from aigw_contract import Bundle
from aigw_sidecar.governance import (
    Admission,
    BundleView,
    Denied,
    DenyKind,
    Governor,
    Grant,
    ManualClock,
    MemoryStore,
    PodIdentity,
    Store,
    Usage,
    Verdict,
    budget_status,
    format_usd,
)

POD = PodIdentity("team-a", "sa", {"app": "support"})
# "hello" prompt: 4 + 2 + 3 = 9 estimated tokens; with max_tokens 91 a request reserves 100.
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 91,
    "messages": [{"role": "user", "content": "hello"}],
}
_ids = itertools.count()


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def spec(mode: str = "enforce", **use_case: Any) -> dict[str, Any]:
    return {"mode": mode, "useCases": [{"name": "reply", "routes": ["chat"], **use_case}]}


class Harness:
    def __init__(self, bundle: Bundle, store: Store, clock: ManualClock) -> None:
        self.clock = clock
        self.governor = Governor(POD, store, clock=clock)
        self.view: BundleView = self.governor.view(bundle)

    def admit(self, body: dict[str, Any] | None = None) -> Admission:
        body = body or BODY
        return self.governor.admit(
            self.view, request_id=f"req-{next(_ids)}", body=body, route=body["model"]
        )

    async def grant(self, body: dict[str, Any] | None = None) -> Grant:
        return await self.governor.limit(self.view, self.admit(body))

    async def denied(self) -> Denied:
        with pytest.raises(Denied) as info:
            await self.grant()
        return info.value


@pytest.fixture
def harness(
    store: Store, bundle_of: Callable[..., Bundle]
) -> Callable[[dict[str, Any], float], Harness]:
    def make(policy: dict[str, Any], start: float = ts(2027, 3, 10, 12)) -> Harness:
        return Harness(bundle_of(policy), store, ManualClock(start))

    return make


async def test_requests_per_minute_refill_and_exact_retry_after(harness: Any) -> None:
    h: Harness = harness(spec(rateLimits={"requestsPerMinute": 3}))
    for _ in range(3):
        await h.grant()
    denial = await h.denied()
    # The bucket drains 3/60 per second: one request fits again after exactly 20 s.
    assert (denial.kind, denial.code, denial.retry_after) == (
        DenyKind.RATE_LIMITED, "rate_limited", 20,
    )  # fmt: skip
    h.clock.advance(19.5)
    assert (await h.denied()).retry_after == 1  # 0.5 s left, rounded up
    h.clock.advance(0.5)
    await h.grant()
    assert (await h.denied()).retry_after == 20


async def test_tokens_per_minute_reserve_then_reconcile(harness: Any) -> None:
    h: Harness = harness(spec(rateLimits={"tokensPerMinute": 150}))
    first = await h.grant()  # reserves 100
    assert first.levels == (100.0,)
    denial = await h.denied()  # 200 > 150: 50 tokens to drain at 2.5/s
    assert denial.retry_after == 20
    await h.governor.settle(first, Usage(9, 11))  # actually used 20
    second = await h.grant()
    assert second.levels == (120.0,)
    await h.governor.settle(second, None)  # failed call: releases its tokens
    await h.governor.settle(second, Usage(9, 91))  # settling twice changes nothing
    assert await h.governor.store.read(second.counters, h.clock.now()) == (20.0,)


async def test_a_request_larger_than_the_limit_is_refused_with_a_bounded_retry(
    harness: Any,
) -> None:
    h: Harness = harness(spec(rateLimits={"tokensPerMinute": 50}))
    denial = await h.denied()
    assert (denial.code, denial.retry_after) == ("request_too_large_for_limit", 60)


async def test_concurrency_leases(harness: Any) -> None:
    h: Harness = harness(spec(rateLimits={"concurrency": 2}))
    a, _b = await h.grant(), await h.grant()
    denial = await h.denied()
    assert (denial.kind, denial.code) == (DenyKind.RATE_LIMITED, "concurrency_limited")
    await h.governor.settle(a, Usage(1, 1))
    c = await h.grant()
    assert c.levels == (2.0,)
    # A sidecar that died holding leases: they expire with the request's lease time.
    h.clock.advance(h.governor.settings.lease_seconds + 1)
    await h.grant()


async def test_token_budget_reserve_reconcile_and_day_rollover(harness: Any) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 250}
    h: Harness = harness(spec(budgets=[budget]), ts(2027, 3, 10, 23, 59, 30))
    a, b = await h.grant(), await h.grant()
    assert b.budget_remaining() == (50, None)
    denial = await h.denied()
    assert (denial.kind, denial.code, denial.retry_after) == (
        DenyKind.BUDGET_EXCEEDED, "budget_exceeded", 30,
    )  # fmt: skip
    await h.governor.settle(a, Usage(10, 40))  # 50 used instead of 100 reserved
    c = await h.grant()
    assert c.levels == (250.0,)
    await h.governor.settle(b, Usage(9, 91))
    await h.governor.settle(c, Usage(9, 91))
    h.clock.set(ts(2027, 3, 11))  # midnight UTC: a new window, a new counter
    d = await h.grant()
    assert d.levels == (100.0,)


async def test_money_budget_month_end_and_leap_day(harness: Any) -> None:
    # chat: 1 USD/M input, 2 USD/M output: a reservation is 9*1000 + 91*2000 = 191,000 nano-USD.
    budget = {"name": "monthly", "period": "month", "costUSD": "0.0004"}
    h: Harness = harness(spec(budgets=[budget]), ts(2028, 2, 28, 23))
    first = await h.grant()
    assert first.budget_remaining() == (None, 400_000 - 191_000)
    h.clock.set(ts(2028, 2, 29, 12))  # the leap day is still February
    await h.grant()
    denial = await h.denied()
    assert denial.retry_after == math.ceil(ts(2028, 3, 1) - ts(2028, 2, 29, 12))
    h.clock.set(ts(2028, 3, 1))
    assert (await h.grant()).levels == (191_000.0,)


async def test_year_end_week_budget(harness: Any) -> None:
    budget = {"name": "weekly", "period": "week", "tokens": 100}
    h: Harness = harness(spec(budgets=[budget]), ts(2027, 12, 31, 23))
    await h.grant()
    assert (await h.denied()).retry_after == math.ceil(ts(2028, 1, 3) - ts(2027, 12, 31, 23))
    h.clock.set(ts(2028, 1, 2, 23, 59, 59))  # Sunday: same week across the year end
    await h.denied()
    h.clock.set(ts(2028, 1, 3))  # Monday
    await h.grant()


async def test_reserve_and_reconcile_are_idempotent(harness: Any) -> None:
    h: Harness = harness(spec(budgets=[{"name": "d", "period": "day", "tokens": 1000}]))
    admission = h.admit()
    grant = await h.governor.limit(h.view, admission)
    again = await h.governor.limit(h.view, admission)  # same reservation: not counted twice
    assert grant.levels == again.levels == (100.0,)
    store = h.governor.store
    tag = "team-a:team-a"
    rid, now = admission.reservation_id, h.clock.now()
    assert await store.reconcile(tag, rid, grant.counters, [30], now) is not None
    assert await store.reconcile(tag, rid, grant.counters, [30], now) is None
    assert await store.read(grant.counters, h.clock.now()) == (30.0,)


async def test_budget_exhaustion_degrades_to_the_fallback_route(harness: Any) -> None:
    budget = {
        "name": "monthly", "period": "month", "costUSD": "0.0002",
        "onExhausted": "fallback", "fallbackRoute": "cheap",
    }  # fmt: skip
    h: Harness = harness(spec(budgets=[budget]))
    first = await h.grant()
    assert first.degraded_to is None
    second = await h.grant()
    # cheap: 0.10/M input, 0.20/M output: 9*100 + 91*200 = 19,100 nano-USD.
    assert (second.degraded_to, second.admission.route) == ("cheap", "cheap")
    assert second.admission.constraints.estimated_cost_nusd == 19_100
    assert second.budget_remaining() == (None, 0)  # spend is still counted, never negative


@pytest.mark.parametrize(
    ("mode", "verdict"), [("observe", Verdict.OBSERVED), ("warn", Verdict.WARNED)]
)
async def test_observe_and_warn_never_block_and_record_each_decision(
    harness: Any, mode: str, verdict: Verdict
) -> None:
    h: Harness = harness(
        spec(mode, rateLimits={"requestsPerMinute": 1},
             budgets=[{"name": "d", "period": "day", "tokens": 150}])
    )  # fmt: skip
    await h.grant()
    grant = await h.grant()
    assert [(d.code, d.verdict) for d in grant.admission.decisions] == [
        ("rate_limited", verdict), ("budget_exceeded", verdict),
    ]  # fmt: skip
    assert len(grant.admission.warnings) == (2 if mode == "warn" else 0)
    assert grant.levels == (2.0, 200.0)  # counted all the same


async def test_status_shows_remaining_budget(harness: Any) -> None:
    h: Harness = harness(
        spec(budgets=[{"name": "m", "period": "month", "tokens": 1000, "costUSD": "1"}])
    )
    grant = await h.grant()
    await h.governor.settle(grant, Usage(5, 5))
    status = await budget_status(h.governor, h.view)
    rows = {row["counter"]: row for row in status["counters"]}
    assert rows["budget:m:tokens"]["remaining"] == 990
    assert rows["budget:m:usd"]["used"] == format_usd(5 * 1000 + 5 * 2000)
    assert status["policy"] == "p0"


async def test_memory_state_does_not_grow_forever(bundle_of: Callable[..., Bundle]) -> None:
    store = MemoryStore(sweep_interval=1.0)
    h = Harness(
        bundle_of(spec(rateLimits={"requestsPerMinute": 1000, "concurrency": 5},
                       budgets=[{"name": "d", "period": "day", "tokens": 10**9}])),
        store, ManualClock(ts(2027, 3, 10)),
    )  # fmt: skip
    for _ in range(50):
        await h.governor.settle(await h.grant(), Usage(1, 1))
    assert len(store) > 0
    h.clock.advance(2 * 86_400)
    await h.grant()  # triggers a sweep; only this request's entries remain
    assert len(store) == 4


async def test_observe_records_a_fallback_it_would_have_made(harness: Any) -> None:
    budget = {
        "name": "monthly", "period": "month", "costUSD": "0.0002",
        "onExhausted": "fallback", "fallbackRoute": "cheap",
    }  # fmt: skip
    h: Harness = harness(spec("observe", budgets=[budget]))
    await h.grant()
    second = await h.grant()
    assert second.degraded_to is None  # observe changes nothing
    assert [(d.code, d.verdict) for d in second.admission.decisions] == [
        ("budget_fallback", Verdict.OBSERVED)
    ]
