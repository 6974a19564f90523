"""The tenant's shared cache store: entries in the Redis the sidecar's governance uses.

Every sidecar of a tenant pointed at one Redis shares entries: a miss answered on one pod
is a hit on the next. Conventions of the shared state (``docs/governance.md``):

- **keys are hash-tagged per tenant**: ``aigw:{<namespace>:<tenant>}:ce:<key digest>``
  (the shared scope: ``{<namespace>:@shared}``), so a tenant's entries live in one Redis
  Cluster slot and never in another tenant's;
- **TTLs always set**: one ``SET key value PX ttl`` per entry, never a key without expiry;
- **values compressed** (zlib) and bounded: an entry larger than ``max_entry_bytes`` after
  compression is not written;
- **fail-open**: any failure (unreachable, a reply past the client's timeout, an error
  reply such as ``READONLY`` or ``OOM``) raises :class:`CacheStoreDown`; the cache counts
  it and treats the request as a miss (a read) or as not stored (a write). After a failure
  the store answers "down" without network I/O for ``retry_interval`` seconds, then probes
  again, so a Redis that is back is used again without a restart.

The client is the one the governance store opened (the lean pipelined client for
``redis://``, redis-py for ``rediss://`` and Cluster): no second connection, no second
set of settings.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aigw_sidecar.governance.resp import RespClient, RespError

__all__ = ["LEAN_FAILURES", "CacheStoreDown", "RedisCache", "entry_key"]

LEAN_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, OSError, RespError, ValueError)
"""What the lean client raises when Redis cannot be used now."""


class CacheStoreDown(Exception):
    """The shared cache store cannot be used now (the request goes on as a miss)."""


def entry_key(tag: str, key: str) -> str:
    """The Redis key of one entry."""
    return f"aigw:{{{tag}}}:ce:{key}"


class RedisCache:
    """Entries in Redis, shared by every sidecar of a tenant."""

    name = "redis"
    compress = True
    remote = True

    def __init__(
        self,
        client: Any,
        *,
        failures: tuple[type[BaseException], ...] = LEAN_FAILURES,
        max_entry_bytes: int = 1024 * 1024,
        retry_interval: float = 0.5,
    ) -> None:
        self._client = client
        self._lean = isinstance(client, RespClient)
        self._failures = failures
        self.max_entry_bytes = max_entry_bytes
        self._retry_interval = retry_interval
        self._down_until = 0.0

    async def command(self, *args: Any) -> Any:
        """One command; :class:`CacheStoreDown` when Redis cannot be used now."""
        if time.monotonic() < self._down_until:
            raise CacheStoreDown("redis is unreachable (retrying shortly)")
        try:
            if self._lean:
                return await self._client.command(*args)
            return await self._client.execute_command(*args)
        except self._failures as exc:
            raise self._down(exc) from exc

    def _down(self, exc: BaseException) -> CacheStoreDown:
        """Back off for ``retry_interval``: the error of a command Redis did not serve."""
        self._down_until = time.monotonic() + self._retry_interval
        return CacheStoreDown(f"redis failed: {type(exc).__name__}")

    def put_nowait(
        self, tag: str, key: str, value: bytes, ttl_s: float
    ) -> asyncio.Future[Any] | None:
        """:meth:`put` without a coroutine (a miss's complete answer): the ``SET`` sent now,
        the future of its reply for :meth:`put_reply`; None when it cannot go out at once
        (not the lean client's open connection, backing off, or too large): then
        :meth:`put`."""
        if not self._lean or len(value) > self.max_entry_bytes:
            return None
        if time.monotonic() < self._down_until:
            return None
        ttl_ms = max(1, int(ttl_s * 1000))
        reply: asyncio.Future[Any] | None = self._client.command_nowait(
            "SET", entry_key(tag, key), value, "PX", ttl_ms
        )
        return reply

    def put_reply(self, reply: asyncio.Future[Any]) -> None:
        """Raise :class:`CacheStoreDown` if the ``SET`` of :meth:`put_nowait` failed, as
        :meth:`put` would."""
        try:
            raw = reply.result()
            if isinstance(raw, RespError):
                raise raw
        except self._failures as exc:
            raise self._down(exc) from exc

    async def get(self, tag: str, key: str) -> bytes | None:
        reply = await self.command("GET", entry_key(tag, key))
        if reply is None or isinstance(reply, bytes):
            return reply
        raise CacheStoreDown("redis answered GET with something that is not a value")

    async def put(self, tag: str, key: str, value: bytes, ttl_s: float) -> bool:
        if len(value) > self.max_entry_bytes:
            return False
        ttl_ms = max(1, int(ttl_s * 1000))
        await self.command("SET", entry_key(tag, key), value, "PX", ttl_ms)
        return True
