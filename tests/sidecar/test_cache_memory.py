"""The cache and redaction, and the memory store's bounds.

The key is the request as sent upstream (after the prompt's redaction), the entry what the
caller received after the answer's redaction and before its own values were put back: so
two callers whose prompts differ only in a redacted value share an answer, each gets its
own value back, and no entry holds a value redaction took out."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import orjson

from aigw_fakeprovider import FakeProvider
from aigw_sidecar.app_keys import PIPELINE
from aigw_sidecar.cache import ENTRY_OVERHEAD, Entry, MemoryCache, encode_entry
from aigw_sidecar.steps import CacheLookup

from .caching import cache_gateway, cached_use_case
from .conftest import Gateway


def _store(gw: Gateway) -> MemoryCache:
    (step,) = [s for s in gw.server.api[PIPELINE].steps if isinstance(s, CacheLookup)]
    store = step._c.store
    assert isinstance(store, MemoryCache)
    return store


def _held(store: MemoryCache) -> bytes:
    return b"".join(value for value, _, _ in store._entries.values())


async def test_redacted_values_never_reach_an_entry_and_each_caller_gets_its_own_back(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    masked = cached_use_case(
        "default", extra={"redaction": {"profile": "pii", "mode": "mask", "restoreInAnswer": True}}
    )
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [masked]) as gw,
        gw.openai() as client,
    ):
        answers = []
        for email in ("jane.canary@example.com", "bob.canary@example.org"):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": f"write to {email} today"}]
            )
            answers.append((raw.headers["x-aigw-cache"], raw.parse().choices[0].message.content))
        assert answers == [
            ("miss", "Echo: write to jane.canary@example.com today"),
            ("hit", "Echo: write to bob.canary@example.org today"),
        ]
        assert len(oai_fake.recorder) == 1
        oai_fake.queue_fault(reply="reach me at leak.canary@example.net")
        for expected in ("miss", "hit"):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "how do I reach you"}]
            )
            assert raw.headers["x-aigw-cache"] == expected
            assert "leak.canary" not in (raw.parse().choices[0].message.content or "")
        held = _held(_store(gw))
    assert b"canary@" not in held
    assert b"[EMAIL_1]" in held


def test_the_memory_store_never_exceeds_its_bound_under_churn() -> None:
    rng = random.Random(14)
    clock = [0.0]
    evicted: list[str] = []
    bound = 256 * 1024
    store = MemoryCache(bound, max_entry_bytes=16 * 1024, clock=lambda: clock[0],
                        on_evict=evicted.append)  # fmt: skip
    live: dict[str, int] = {}
    for i in range(10_000):
        clock[0] += rng.random() * 0.01
        text = "x" * rng.randint(0, 20_000)  # some larger than the entry bound
        response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        key = f"{rng.randrange(4_000):064x}"  # keys repeat: overwrites
        data = encode_entry(Entry(key, "ns:t", 0.0, 1, "b", response), compress=False)
        assert data is not None
        kept = store.put_now("ns:t", key, data, ttl_s=rng.choice((0.5, 5.0, 50.0)))
        assert kept == (len(data) + len(key) + 5 + ENTRY_OVERHEAD <= 16 * 1024)
        assert store.bytes <= bound
        if i % 7 == 0:
            store.get_now("ns:t", f"{rng.randrange(4_000):064x}")
        live = {k: v[2] for k, v in store._entries.items()}
        if i % 500 == 0:
            assert store.bytes == sum(live.values())
            assert all(size == len(k) + len(v[0]) + ENTRY_OVERHEAD
                       for k, v in store._entries.items() for size in [v[2]])  # fmt: skip
    assert store.bytes == sum(live.values()) <= bound
    assert "size" in evicted
    assert len(store) > 10
    store.put_now("ns:t", "short-lived", b"j{}", ttl_s=0.5)
    assert store.get_now("ns:t", "short-lived") == b"j{}"
    clock[0] += 0.6
    assert store.get_now("ns:t", "short-lived") is None  # never served once expired
    assert evicted[-1] == "expired"
    assert store.bytes == sum(v[2] for v in store._entries.values())
    assert orjson.loads(next(iter(store._entries.values()))[0][1:])["k"]


async def test_the_cache_key_is_never_exposed(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.openai() as client,
    ):
        seen = []
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "keep it secret"}]
            )
            seen.append(str(dict(raw.headers)) + raw.text)
        keys = [entry_id.split("\x00")[1] for entry_id in _store(gw)._entries]
        async with aiohttp.ClientSession() as session:
            for path in ("/metrics", "/aigw/status"):
                async with session.get(gw.admin_url + path) as response:
                    seen.append(await response.text())
    assert len(keys) == 1
    assert len(keys[0]) == 64
    for text in seen:
        assert keys[0] not in text
        assert keys[0][:16] not in text


def test_the_vector_index_stays_within_its_bound() -> None:
    from aigw_sidecar.cache import VectorIndex

    bound = 64 * 1024
    index = VectorIndex(bound)
    rng = random.Random(14)
    for i in range(3_000):  # many partitions (distinct system prompts), some with vectors
        part = f"p{rng.randrange(1_000)}"
        index.candidates("ns:t", part)
        if i % 3 == 0:
            unit = index.unit([rng.random() for _ in range(64)])
            index.add("ns:t", part, f"e{i}", unit, ttl_s=60)
        assert index.bytes <= bound
    held = sum(c.nbytes for c in index._parts.values())
    assert index.bytes == held
    assert len(index._parts) < 1_000
