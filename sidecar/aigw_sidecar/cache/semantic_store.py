"""The semantic cache's vectors in the shared Redis: what one sidecar stored, every sidecar
of the tenant (a pod that just started included) can match.

Per partition (the digest of everything but the last user text), under the tenant's hash
tag like every key of the tenant:

- ``aigw:{<ns>:<tenant>}:sx:<partition>``: a sorted set, entry id -> expiry (Unix ms);
- ``aigw:{<ns>:<tenant>}:sv:<partition>``: a hash, entry id -> the unit vector (float32,
  little-endian);
- the answers themselves are cache entries (:mod:`.redis_store`), ``...:ce:s:<entry id>``.

Every write sets the TTL of both keys (never a key without one) and removes the partition's
expired ids from both, so neither grows past the entries alive. A sidecar reads a partition
when it is asked to match in it and its copy is older than ``refresh_s``: one
``ZRANGEBYSCORE`` for the live ids, one ``HMGET`` for the vectors it does not hold yet.
Failures raise :class:`~.redis_store.CacheStoreDown` like every cache store operation (the
request is a miss).
"""

from __future__ import annotations

import asyncio
import time

from .redis_store import RedisCache

__all__ = ["SharedVectors"]


def _keys(tag: str, part: str) -> tuple[str, str]:
    return f"aigw:{{{tag}}}:sx:{part}", f"aigw:{{{tag}}}:sv:{part}"


class SharedVectors:
    """Semantic entries' vectors in Redis."""

    def __init__(self, store: RedisCache, *, refresh_s: float = 1.0) -> None:
        self._store = store
        self.refresh_s = refresh_s

    async def add(self, tag: str, part: str, entry: str, vector: bytes, ttl_s: float) -> None:
        zset, vectors = _keys(tag, part)
        now_ms = int(time.time() * 1000)
        ttl_ms = max(1, int(ttl_s * 1000))
        command = self._store.command
        await asyncio.gather(
            command("HSET", vectors, entry, vector),
            command("ZADD", zset, now_ms + ttl_ms, entry),
            command("PEXPIRE", vectors, ttl_ms),
            command("PEXPIRE", zset, ttl_ms),
        )
        expired = await command("ZRANGEBYSCORE", zset, "-inf", now_ms)
        if expired:
            await asyncio.gather(
                command("HDEL", vectors, *expired),
                command("ZREMRANGEBYSCORE", zset, "-inf", now_ms),
            )

    async def read(
        self, tag: str, part: str, known: set[str]
    ) -> dict[str, tuple[bytes | None, float]]:
        """Live entry id -> (its vector, None when ``known`` has it; TTL left in s)."""
        zset, vectors = _keys(tag, part)
        now_ms = int(time.time() * 1000)
        reply = await self._store.command("ZRANGEBYSCORE", zset, f"({now_ms}", "+inf", "WITHSCORES")
        live: dict[str, float] = {}
        for i in range(0, len(reply or ()) - 1, 2):
            raw_id, score = reply[i], reply[i + 1]
            entry = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            live[entry] = (float(score) - now_ms) / 1000
        wanted = [entry for entry in live if entry not in known]
        fetched: dict[str, bytes | None] = {}
        if wanted:
            values = await self._store.command("HMGET", vectors, *wanted)
            fetched = dict(zip(wanted, values or (), strict=False))
        out: dict[str, tuple[bytes | None, float]] = {}
        for entry, ttl in live.items():
            if entry in known:
                out[entry] = (None, ttl)
            elif isinstance(fetched.get(entry), bytes):
                out[entry] = (fetched[entry], ttl)
        return out
