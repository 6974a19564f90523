"""The Redis scripts and the store boundary never trust their arguments.

A number out of range (infinite, NaN, negative, fractional, past 2^53, a hold or window
end absurdly far ahead) is refused before anything is written: the store raises
StoreRejected without sending, and the scripts answer ``AIGWARG`` and write nothing when
called directly with what a buggy or hostile caller could send.
"""

from __future__ import annotations

from typing import Any

import pytest

from aigw_sidecar.governance import (
    Counter,
    CounterKind,
    MemoryStore,
    RedisStore,
    StoreRejected,
)
from aigw_sidecar.governance.redis_scripts import RECONCILE, RENEW, RESERVE
from aigw_sidecar.governance.resp import RespClient, RespError, Script
from support.redis import RedisServer

NOW = 1_900_000_000.0
H, Z = "aigw:{t:x}:c", "aigw:{t:x}:cc:t"
GOOD = ["b", "rl:t:rpm", "10", "1", "0.5", "1"]


def reserve_args(*counter: str, now: str = repr(NOW), hold: str = repr(NOW + 30)) -> list[str]:
    return [now, "0", "rsv_1", hold, "cc:t", *counter]


BAD_RESERVES = [
    reserve_args(*GOOD, now="nan"),
    reserve_args(*GOOD, now="inf"),
    reserve_args(*GOOD, now="-5"),
    reserve_args(*GOOD, hold="1e300"),
    reserve_args(*GOOD, hold=repr(NOW)),  # nothing held
    reserve_args(*GOOD, hold=repr(NOW + 86_401)),
    reserve_args("b", "rl:t:rpm", "1e400", "1", "0.5", "1"),
    reserve_args("b", "rl:t:rpm", "10", "-1", "0.5", "1"),
    reserve_args("b", "rl:t:rpm", "10", "1.5", "0.5", "1"),
    reserve_args("b", "rl:t:rpm", "10", "9007199254740993", "0.5", "1"),
    reserve_args("b", "rl:t:rpm", "10", "1", "0", "1"),  # a bucket that never drains
    reserve_args("b", "rl:t:rpm", "10", "1", "nan", "1"),
    reserve_args("t", "bu:d:t:day:tok", "10", "1", "inf", "1"),
    reserve_args("t", "bu:d:t:day:tok", "10", "1", repr(NOW + 10**9), "1"),
    reserve_args("x", "rl:t:rpm", "10", "1", "0.5", "1"),  # unknown kind
    reserve_args("b", "", "10", "1", "0.5", "1"),  # no field
    reserve_args(*GOOD, "l"),  # a counter cut short
    reserve_args(),  # no counter
    [repr(NOW), "0", "~", repr(NOW + 30), "cc:t", *GOOD],  # the sentinel's name
]


@pytest.fixture
async def lean(redis_server: RedisServer) -> Any:
    redis_server.flush()
    client = RespClient(redis_server.url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("args", BAD_RESERVES)
async def test_reserve_refuses_every_bad_argument_and_writes_nothing(
    lean: RespClient, redis_server: RedisServer, args: list[str]
) -> None:
    with pytest.raises(RespError, match="AIGWARG"):
        await Script(lean, RESERVE)(keys=[H, Z], args=args)
    assert await lean.command("DBSIZE") == 0


@pytest.mark.parametrize(
    "args",
    [
        [repr(NOW), "rsv_1", "b", "rl:t:rpm", "0.5", "0.5"],  # a fractional delta
        [repr(NOW), "rsv_1", "b", "rl:t:rpm", "1e400", "0.5"],
        [repr(NOW), "rsv_1", "t", "bu:d", "-3", "nan"],
        ["inf", "rsv_1", "b", "rl:t:rpm", "1", "0.5"],
        [repr(NOW), "", "b", "rl:t:rpm", "1", "0.5"],
    ],
)
async def test_reconcile_refuses_every_bad_argument_and_writes_nothing(
    lean: RespClient, args: list[str]
) -> None:
    await lean.command("ZADD", Z, NOW + 30, "rsv_1")
    with pytest.raises(RespError, match="AIGWARG"):
        await Script(lean, RECONCILE)(keys=[H, Z], args=args)
    assert await lean.command("ZSCORE", Z, "rsv_1") is not None  # the record is untouched
    assert await lean.command("EXISTS", H) == 0


@pytest.mark.parametrize("hold", ["inf", "nan", repr(NOW - 1), repr(NOW + 10**6)])
async def test_renew_refuses_a_bad_hold(lean: RespClient, hold: str) -> None:
    await lean.command("ZADD", Z, NOW + 30, "rsv_1")
    with pytest.raises(RespError, match="AIGWARG"):
        await Script(lean, RENEW)(keys=[Z], args=[repr(NOW), "rsv_1", hold])
    assert float(await lean.command("ZSCORE", Z, "rsv_1")) == NOW + 30


def counter(kind: CounterKind, limit: int, amount: int, param: float) -> Counter:
    return Counter(kind, "aigw:{t:x}:rl:t:rpm", limit, amount, param, True, "requests_per_minute")


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
@pytest.mark.parametrize(
    ("counters", "until"),
    [
        ([counter(CounterKind.BUCKET, 2**60, 1, 1.0)], NOW + 30),
        ([counter(CounterKind.BUCKET, 10, -1, 1.0)], NOW + 30),
        ([counter(CounterKind.BUCKET, 10, 1, float("inf"))], NOW + 30),
        ([counter(CounterKind.BUCKET, 10, 1, 0.0)], NOW + 30),
        ([counter(CounterKind.TOTAL, 10, 1, float("nan"))], NOW + 30),
        ([counter(CounterKind.TOTAL, 10, 1, NOW + 10**9)], NOW + 30),
        ([counter(CounterKind.BUCKET, 10, 1, 1.0)], NOW + 10**20),
        ([counter(CounterKind.BUCKET, 10, 1, 1.0)], float("nan")),
        ([counter(CounterKind.LEASE, 1, 1, 0.0)] * 2, NOW + 30),
    ],
)
async def test_the_store_boundary_refuses_out_of_range_numbers_before_sending(
    store_kind: str,
    redis_server: RedisServer,
    counters: list[Counter],
    until: float,
) -> None:
    redis_server.flush()
    if store_kind == "memory":
        memory = MemoryStore()
        with pytest.raises(StoreRejected):
            await memory.reserve("t:x", "rsv_1", counters, NOW, until)
        assert len(memory) == 0
        return
    store = RedisStore.from_url(redis_server.url)
    try:
        with pytest.raises(StoreRejected):
            await store.reserve("t:x", "rsv_1", counters, NOW, until)
    finally:
        await store.client.aclose()
    client = redis_server.client()
    try:
        assert client.dbsize() == 0
    finally:
        client.close()
