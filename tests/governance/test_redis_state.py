"""Redis state: key layout (hash tags, TTLs), fail modes while Redis is down, recovery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from aigw_contract import Bundle
from aigw_sidecar.governance import (
    Claims,
    Denied,
    DenyKind,
    Governor,
    ManualClock,
    PodIdentity,
    RedisStore,
    Usage,
)
from support.observers import Recorder

POD = PodIdentity("team-a", "sa", {"app": "support"})
BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 91,
    "messages": [{"role": "user", "content": "hello"}],
}
LIMITS: dict[str, Any] = {
    "name": "reply",
    "routes": ["chat"],
    "rateLimits": {"requestsPerMinute": 100, "tokensPerMinute": 10_000, "concurrency": 10},
    "budgets": [
        {"name": "d", "period": "day", "tokens": 1000, "scope": "app"},
        {"name": "m", "period": "month", "costUSD": "5", "scope": "useCase"},
    ],
}


def governor(url: str, clock: ManualClock, recorder: Recorder | None = None) -> Governor:
    store = RedisStore.from_url(url, timeout=0.5, retry_interval=0.0)
    return Governor(POD, store, clock=clock, observer=recorder)


async def run(gov: Governor, bundle: Bundle, rid: str, tenant: str = "team-a") -> Any:
    view = gov.view(bundle)
    admission = gov.admit(
        view, request_id=rid, body=BODY, route="chat", claims=Claims(tenant=tenant)
    )
    return await gov.limit(view, admission)


async def test_keys_share_one_cluster_slot_and_all_expire(
    redis_server: Any, bundle_of: Callable[..., Bundle]
) -> None:
    redis_server.flush()
    clock = ManualClock(2_000_000_000.0)
    gov = governor(redis_server.url, clock)
    bundle = bundle_of({"useCases": [LIMITS], "additionalTenants": ["globex"]})
    grant = await run(gov, bundle, "a")
    await run(gov, bundle, "b", tenant="globex")
    await gov.settle(grant, Usage(10, 10))
    sync = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        keys = sorted(str(k) for k in sync.keys("*"))
        assert keys, "nothing was written"
        for tenant in ("team-a", "globex"):
            mine = [k for k in keys if k.startswith(f"aigw:{{team-a:{tenant}}}:")]
            assert f"aigw:{{team-a:{tenant}}}:c" in mine  # buckets and budgets: one hash
            assert len({key_slot(k.encode()) for k in mine}) == 1
        assert "aigw:{team-a:globex}:cc:u.reply" in keys  # its lease is still held
        assert all(k.startswith("aigw:{team-a:") for k in keys)
        assert all(sync.ttl(k) > 0 for k in keys), {k: sync.ttl(k) for k in keys}
        fields = list(sync.hgetall("aigw:{team-a:team-a}:c"))
        assert any(":a.support:" in f for f in fields)
        assert any(":u.reply:" in f for f in fields)
    finally:
        sync.close()
        await gov.store.client.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_redis_down_follows_the_fail_mode_and_recovers_without_restart(
    own_redis: Any,
    bundle_of: Callable[..., Bundle],
    fail_mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(2_000_000_000.0)
    recorder = Recorder()
    gov = governor(own_redis.url, clock, recorder)
    bundle = bundle_of({"useCases": [LIMITS], "failMode": fail_mode})
    before = await run(gov, bundle, "before")
    assert before.store is gov.store

    own_redis.stop()
    caplog.set_level(logging.WARNING, logger="aigw.governance")
    await gov.settle(before, Usage(5, 5))  # cannot reach Redis: deferred, not lost
    assert recorder.events[-1] == ("settle", "deferred")
    if fail_mode == "closed":
        with pytest.raises(Denied) as info:
            await run(gov, bundle, "during")
        assert (info.value.kind, info.value.retry_after) == (DenyKind.STATE_UNAVAILABLE, 1)
        assert recorder.events[-1] == ("reserve", "fail_closed")
        assert "fails closed" in caplog.text
    else:
        during = await run(gov, bundle, "during")
        assert during.store is gov.local  # counted in this pod meanwhile
        assert recorder.events[-1] == ("reserve", "fail_open")
        assert "fail open" in caplog.text
        await gov.settle(during, Usage(1, 1))

    own_redis.start()  # same port, empty, scripts gone (NOSCRIPT is handled)
    after = await run(gov, bundle, "after")
    assert after.store is gov.store
    assert after.levels[0] == 1.0  # the requests/min bucket counts in Redis again
    second = await run(gov, bundle, "after-2")
    assert second.levels[0] == 2.0
    await gov.store.client.aclose()


async def test_resp_replies_split_across_reads_reach_the_right_waiters() -> None:
    from aigw_sidecar.governance.resp import RespError, _Protocol

    loop = asyncio.get_running_loop()
    protocol = _Protocol()
    waiters = [loop.create_future() for _ in range(4)]
    for waiter in waiters:
        protocol.expect(waiter, loop.time() + 60)
    wire = b"*3\r\n$1\r\n1\r\n:-1\r\n$-1\r\n+OK\r\n-NOSCRIPT no script\r\n*0\r\n"
    for i in range(len(wire)):
        protocol.data_received(wire[i : i + 1])
    assert waiters[0].result() == [b"1", -1, None]
    assert waiters[1].result() == b"OK"
    assert isinstance(waiters[2].result(), RespError)
    assert waiters[3].result() == []
    assert not protocol.buf


def test_resp_commands_encode_bytes_and_unicode_exactly() -> None:
    from aigw_sidecar.governance.resp import _encode

    assert _encode(("SET", "k", 12)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert _encode((b"\xff\x00", "é")) == b"*2\r\n$2\r\n\xff\x00\r\n$2\r\n\xc3\xa9\r\n"
