"""The response cache on the shared Redis: two sidecars of a tenant share entries (a miss on
one is a hit on the other, streams included), entries follow the shared-state conventions
(hash-tagged per tenant, TTLs always set, compressed, checked when read), and a Redis that
is down or comes back turns requests into counted misses, never into errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import generate_latest

from aigw_contract.policy import CacheSettings, ExactCache
from aigw_fakeprovider import FakeProvider
from aigw_sidecar.cache import entry_key
from aigw_sidecar.cache.control import CacheControl
from aigw_sidecar.cache.eligibility import cache_rule
from aigw_sidecar.cache.key import Partition
from aigw_sidecar.context import RequestContext
from aigw_sidecar.governance.resp import RespClient
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.settings import SidecarSettings
from aigw_sidecar.steps.cache import Lookup
from aigw_sidecar.steps.caching import CachePlan, Caching
from support.ports import free_port
from support.redis import RedisServer

from .conftest import HELLO, Sidecar, use_case

CACHED = {
    "tenant": "team-a",
    "additionalTenants": ["team-b"],
    "failMode": "open",
    "useCases": [use_case(cache={"exact": {"enabled": True, "ttlSeconds": 120}})],
}


def _client(sidecar: Sidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/v1", api_key="x", max_retries=0)


async def _stream(sidecar: Sidecar, text: str) -> tuple[str, list[str]]:
    async with _client(sidecar) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": text}], stream=True
        )
        stream = raw.parse()
        assert isinstance(stream, openai.AsyncStream)
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    return raw.headers["x-aigw-cache"], pieces


def _keys(server: RedisServer) -> dict[str, tuple[int, bytes]]:
    """Every cache entry in ``server``: key -> (PTTL, value)."""
    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        found: dict[str, tuple[int, bytes]] = {}
        for key in client.keys("aigw:*:ce:*"):
            value = client.get(key)
            assert isinstance(key, bytes)
            assert isinstance(value, bytes)
            found[key.decode()] = (client.pttl(key), value)
        return found
    finally:
        client.close()


async def _written(server: RedisServer, count: int) -> None:
    """Wait (bounded) until ``count`` entries are in Redis: they are written in the
    background once the answer has been sent."""
    async with asyncio.timeout(10):
        while len(_keys(server)) < count:  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.01)


async def test_two_sidecars_on_one_redis_share_entries(
    sidecar_with: Callable[..., Any], own_redis: RedisServer, fake: FakeProvider
) -> None:
    settings = {"redis_url": own_redis.url}
    async with sidecar_with(CACHED, **settings) as one, sidecar_with(CACHED, **settings) as two:
        status, headers, first = await one.post()
        assert (status, headers["X-AIGW-Cache"]) == (200, "miss")
        await _written(own_redis, 1)  # entries are written in the background
        status, headers, second = await two.post()
        assert (status, headers["X-AIGW-Cache"]) == (200, "hit")
        assert second["choices"] == first["choices"]
        assert float(headers["X-AIGW-Cost-USD"]) == 0
        assert len(fake.recorder) == 1

        fake.queue_fault(reply_pieces=["A long ", "answer, ", "x" * 800, " in four pieces."])
        streamed = await _stream(two, "a stream shared across pods")
        await _written(own_redis, 2)
        assert await _stream(one, "a stream shared across pods") == ("hit", streamed[1])
        assert streamed[0] == "miss"
        assert len(fake.recorder) == 2

        status, headers, _ = await one.post(X_AIGW_Tenant="team-b")
        assert headers["X-AIGW-Cache"] == "miss"  # another tenant: its own entry
    keys = _keys(own_redis)
    assert len(keys) == 3
    tags = sorted(key.split(":ce:")[0] for key in keys)
    assert tags == ["aigw:{team-a:team-a}", "aigw:{team-a:team-a}", "aigw:{team-a:team-b}"]
    for ttl, value in keys.values():
        assert 0 < ttl <= 120_000  # a TTL on every key
        assert value[:1] in (b"z", b"j")
    assert any(value[:1] == b"z" for _, value in keys.values())  # large entries compressed
    assert not any(b"x" * 100 in value for _, value in keys.values())


async def test_an_entry_read_under_another_key_is_never_served(
    sidecar_with: Callable[..., Any], own_redis: RedisServer, fake: FakeProvider
) -> None:
    async with sidecar_with(CACHED, redis_url=own_redis.url) as sidecar:
        other = {"model": "chat", "messages": [{"role": "user", "content": "another prompt"}]}
        for body in (HELLO, other):
            assert (await sidecar.post(body))[1]["X-AIGW-Cache"] == "miss"
        await _written(own_redis, 2)
        binary = redis.Redis(host="127.0.0.1", port=own_redis.port)
        try:
            first, second = list(_keys(own_redis))
            value = binary.get(first)
            assert isinstance(value, bytes)
            binary.set(second, value, px=60_000)  # one entry copied over another
            binary.set(first, b"zgarbage", px=60_000)
        finally:
            binary.close()
        outcomes = [(await sidecar.post(body))[1]["X-AIGW-Cache"] for body in (HELLO, other)]
        assert outcomes == ["miss", "miss"]  # refused, never another prompt's answer
        metrics = await sidecar.get("/metrics")
    assert (
        'aigw_cache_misses_total{kind="exact",reason="invalid_entry",route="chat"} 2.0' in metrics
    )


async def test_redis_stopped_means_counted_misses_and_no_errors(
    sidecar_with: Callable[..., Any],
    own_redis: RedisServer,
    fake: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "aigw.cache")
    async with sidecar_with(CACHED, redis_url=own_redis.url) as sidecar:
        assert (await sidecar.post())[1]["X-AIGW-Cache"] == "miss"
        own_redis.kill()
        for _ in range(6):
            status, headers, payload = await sidecar.post()
            assert (status, headers["X-AIGW-Cache"]) == (200, "miss")
            assert payload["choices"][0]["message"]["content"]
        assert (await _stream(sidecar, "still streaming"))[0] == "miss"
        assert len(fake.recorder) == 8
        metrics = await sidecar.get("/metrics")
        own_redis.start()  # empty: the entries went with it
        await asyncio.sleep(0.6)  # past the store's back-off
        assert (await sidecar.post())[1]["X-AIGW-Cache"] == "miss"
        await _written(own_redis, 1)
        assert (await sidecar.post())[1]["X-AIGW-Cache"] == "hit"  # back without a restart
    assert (
        'aigw_cache_misses_total{kind="exact",reason="store_unavailable",route="chat"} 7.0'
        in metrics
    )
    assert 'aigw_cache_store_errors_total{operation="get",store="redis"}' in metrics
    lines = [r for r in caplog.records if r.name == "aigw.cache"]
    assert 1 <= len(lines) <= 2  # one line per 10 s, not one per request
    assert all(r.exc_info is None for r in lines)


async def test_a_new_sidecar_warms_its_semantic_index_from_redis(
    sidecar_with: Callable[..., Any], own_redis: RedisServer, fake: FakeProvider
) -> None:
    asked, close = "what is the capital of france", "which city is the capital of france"
    fake.vectors.set(asked, [1.0, 0.0, 0.0])
    fake.vectors.set(close, [0.96, 0.28, 0.0])
    semantic = {"enabled": True, "threshold": 0.9, "embeddingsRoute": "cheap"}
    spec = {
        "tenant": "team-a",
        "useCases": [use_case(routes=["chat", "cheap"], cache={"semantic": semantic})],
    }
    body = {"model": "chat", "messages": [{"role": "user", "content": asked}]}
    async with sidecar_with(spec, redis_url=own_redis.url) as one:
        assert (await one.post(body))[1]["X-AIGW-Cache"] == "miss"
        client = redis.Redis(host="127.0.0.1", port=own_redis.port)
        try:
            async with asyncio.timeout(10):
                while not client.keys("aigw:{team-a:team-a}:sv:*"):  # noqa: ASYNC110 - Redis
                    await asyncio.sleep(0.01)
            keys = sorted(k.decode() for k in client.keys("aigw:*") if isinstance(k, bytes))
            assert all(client.pttl(k) > 0 for k in keys)  # a TTL on every key
        finally:
            client.close()
    assert [k.split("}:")[1].split(":")[0] for k in keys] == ["ce", "sv", "sx"]
    async with sidecar_with(spec, redis_url=own_redis.url) as two:  # a pod that just started
        paraphrase = {"model": "chat", "messages": [{"role": "user", "content": close}]}
        status, headers, payload = await two.post(paraphrase)
        assert (status, headers["X-AIGW-Cache"]) == (200, "semantic-hit")
        assert payload["choices"][0]["message"]["content"] == f"Echo: {asked}"
    chats = [e for e in fake.recorder.exchanges if e.path.endswith("/chat/completions")]
    assert len(chats) == 1


def _miss(tmp_path: Path, url: str) -> tuple[Caching, Metrics, RespClient, Lookup, RequestContext]:
    """A Redis-backed cache and one exact miss to offer to it."""
    metrics = Metrics()
    client = RespClient(url, timeout=10.0)
    caching = Caching(SidecarSettings(bundle_path=tmp_path, cache_store="redis"), metrics, client)
    rule = cache_rule(CacheSettings(exact=ExactCache(enabled=True)))
    assert rule is not None
    plan = CachePlan("reply", True, 120, "useCase", rule, "fp")
    partition = Partition.of("team-a", "p", "useCase", "team-a", "reply")
    lookup = Lookup(plan, partition, "chat", "k1", CacheControl())
    ctx = RequestContext(
        request_id="r",
        api="openai",
        operation="chat",
        headers=CIMultiDictProxy(CIMultiDict()),
        config=None,  # type: ignore[arg-type] # offer reads nothing of it
        started=0.0,
    )
    return caching, metrics, client, lookup, ctx


ANSWER: dict[str, Any] = {"choices": [{"message": {"content": "hi"}}]}


async def test_a_miss_is_written_by_one_set_whose_reply_the_drain_waits_for(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """A complete answer's entry: its SET sent as the answer is offered (no task per miss),
    counted when Redis replies, and the drain waits for that reply (Redis frozen meanwhile:
    a drain that did not wait would close the client first and count a failure)."""
    caching, metrics, client, lookup, ctx = _miss(tmp_path, own_redis.url)
    try:
        await client.command("PING")  # the connection is open: the SET goes out at once
        tasks = len(asyncio.all_tasks())
        caching.offer(ctx, lookup, response=ANSWER)
        assert len(asyncio.all_tasks()) == tasks
        own_redis.freeze()
        try:
            drain = asyncio.create_task(caching.drain())
            await asyncio.sleep(0.2)  # let the drain get as far as it can meanwhile
        finally:
            own_redis.thaw()
        await drain
        text = generate_latest(metrics.registry).decode()
        assert 'aigw_cache_writes_total{outcome="stored",route="chat"} 1.0' in text
        assert 'outcome="store_unavailable"' not in text
    finally:
        await client.aclose()
    assert list(_keys(own_redis)) == [entry_key(lookup.partition.tag, "k1")]


async def test_a_miss_write_redis_refuses_is_counted_as_before(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    caching, metrics, client, lookup, ctx = _miss(tmp_path, own_redis.url)
    try:
        await client.command("REPLICAOF", "127.0.0.1", free_port())  # READONLY from now on
        caching.offer(ctx, lookup, response=ANSWER)
        await caching.drain()
        text = generate_latest(metrics.registry).decode()
        assert 'aigw_cache_writes_total{outcome="store_unavailable",route="chat"} 1.0' in text
        assert 'aigw_cache_store_errors_total{operation="put",store="redis"} 1.0' in text
        assert 'outcome="stored"' not in text
    finally:
        await client.command("REPLICAOF", "NO", "ONE")
        await client.aclose()
    assert _keys(own_redis) == {}
