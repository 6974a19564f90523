"""Idempotency records in Redis, shared by every sidecar of a tenant: one script per step.

The sidecar's Redis connection is reused (the governance store's client: the lean RESP
client for ``redis://``, redis-py for ``rediss://`` or Cluster), with the governance store's
conventions: keys ``aigw:{<namespace>:<tenant>}:idem:<use case>:<sha256 of the key>`` (one
hash tag per tenant, so a Cluster keeps them with the tenant's counters), a TTL on every
write (a pending marker's lease, a result's ``ttlSeconds``), scripts that check their
arguments before writing anything, and every failure turned into ``StoreUnavailable`` so
the policy's ``failMode`` decides.

- ``BEGIN``: the marker is written only if the key is free (``SET ... PX``), else the
  holder's value is returned: one round trip either way;
- ``COMPLETE`` / ``ABANDON``: compare the caller's exact marker, then write the result with
  its TTL / delete; someone else's marker or result is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigw_sidecar.governance import StoreUnavailable
from aigw_sidecar.governance.resp import RespClient, RespError, Script
from aigw_sidecar.governance.resp_cluster import ClusterClient

from .store import Found

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["BEGIN", "RedisIdempotencyStore"]

_MAX_PX = 7 * 86_400_000
_CHECK = f"""
local px = tonumber(ARGV[2])
if not px or px < 1 or px > {_MAX_PX} or px ~= math.floor(px) then
  return redis.error_reply('AIGWARG px')
end
"""
BEGIN = (
    _CHECK
    + """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
return false
"""
)
COMPLETE = (
    "local marker = ARGV[3]\n"
    + _CHECK
    + """
if redis.call('GET', KEYS[1]) ~= marker then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
return 1
"""
)
ABANDON = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


class RedisIdempotencyStore:
    """Records in Redis (see the module docstring)."""

    name = "redis"

    def __init__(
        self,
        client: RespClient | ClusterClient | Redis,
        failures: tuple[type[BaseException], ...],
    ) -> None:
        self._failures: tuple[type[BaseException], ...] = (*failures, RespError)
        self._client = client
        self._begin: Any
        self._complete: Any
        self._abandon: Any
        if isinstance(client, RespClient | ClusterClient):
            self._begin = Script(client, BEGIN)
            self._complete = Script(client, COMPLETE)
            self._abandon = Script(client, ABANDON)
        else:
            self._begin = client.register_script(BEGIN)
            self._complete = client.register_script(COMPLETE)
            self._abandon = client.register_script(ABANDON)

    async def _run(self, script: Any, key: str, args: list[bytes | str]) -> Any:
        try:
            return await script(keys=[key], args=args)
        except self._failures as exc:
            raise StoreUnavailable(f"redis failed: {type(exc).__name__}") from exc

    async def begin(self, key: str, marker: bytes, lease_s: float) -> Found | None:
        held = await self._run(self._begin, key, [marker, str(max(1, int(lease_s * 1000)))])
        if not held:
            return None
        return Found.parse(bytes(held))

    async def get(self, key: str) -> Found | None:
        try:
            if isinstance(self._client, RespClient | ClusterClient):
                held = await self._client.command("GET", key, key=key)
            else:
                held = await self._client.get(key)
        except self._failures as exc:
            raise StoreUnavailable(f"redis failed: {type(exc).__name__}") from exc
        return None if not held else Found.parse(bytes(held))

    async def complete(self, key: str, marker: bytes, record: bytes, ttl_s: float) -> bool:
        px = str(max(1, int(ttl_s * 1000)))
        done = await self._run(self._complete, key, [record, px, marker])
        return int(done) == 1

    async def abandon(self, key: str, marker: bytes) -> None:
        await self._run(self._abandon, key, [marker])
