"""Counters in Redis, shared by every sidecar of a tenant: one EVALSHA per operation.

Two clients can carry the scripts. The default, for ``redis://`` URLs, is the lean
pipelined :class:`~.resp.RespClient` (about six times less CPU per command than redis-py's
asyncio client on these machines, see its docstring). A redis-py client (``rediss://`` TLS
URLs, or a ``redis.asyncio.RedisCluster`` passed in: every key of a request shares one hash
tag, so the scripts run in one cluster slot) works the same way through
``register_script``. Either way EVALSHA is retried after SCRIPT LOAD when the server answers
NOSCRIPT (a restarted or failed-over Redis), and connections are re-opened after failures,
so a Redis that comes back needs no sidecar restart.

Unreachable Redis: any connection error or timeout becomes :class:`StoreUnavailable`, and
the store stays "down" for ``retry_interval`` seconds, answering at once without network
I/O, so a dead Redis costs requests nothing while the policy's fail mode applies; the
first call after the interval probes it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .redis_scripts import RECONCILE, RESERVE
from .resp import RespClient, Script
from .store import Counter, CounterKind, ReserveResult, StoreUnavailable, record_key

if TYPE_CHECKING:  # redis-py is imported only where it is used: see .redis_py
    from redis.asyncio import Redis

__all__ = ["RedisStore"]

_LEAN_UNREACHABLE: tuple[type[BaseException], ...] = (TimeoutError, OSError)


class RedisStore:
    """Counters in a (possibly clustered) Redis."""

    name = "redis"

    def __init__(
        self,
        client: RespClient | Redis,
        *,
        retry_interval: float = 0.5,
        unreachable: tuple[type[BaseException], ...] = _LEAN_UNREACHABLE,
    ) -> None:
        """``unreachable``: the client's exceptions that mean Redis cannot be reached; pass
        :data:`.redis_py.UNREACHABLE` with a redis-py client."""
        self._client = client
        self._unreachable = unreachable
        self._reserve: Any
        self._reconcile: Any
        if isinstance(client, RespClient):
            self._reserve = Script(client, RESERVE)
            self._reconcile = Script(client, RECONCILE)
        else:
            self._reserve = client.register_script(RESERVE)
            self._reconcile = client.register_script(RECONCILE)
        self._retry_interval = retry_interval
        self._down_until = 0.0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int = 32,
        timeout: float = 0.5,
        retry_interval: float = 0.5,
    ) -> RedisStore:
        """A store for ``url``; ``timeout`` bounds connecting and every reply, so an
        unreachable Redis is noticed within it. ``redis://`` uses the lean client; other
        schemes use redis-py (:mod:`.redis_py`)."""
        if url.startswith("redis://"):
            return cls(RespClient(url, timeout=timeout), retry_interval=retry_interval)
        # Imported here, not at the top: redis-py costs every sidecar ~20 MB of RSS, and only
        # sidecars configured for TLS or Cluster need it.
        from . import redis_py  # noqa: PLC0415

        client = redis_py.connect(url, max_connections=max_connections, timeout=timeout)
        return cls(client, retry_interval=retry_interval, unreachable=redis_py.UNREACHABLE)

    @property
    def client(self) -> RespClient | Redis:
        """The underlying client (closed by whoever created it)."""
        return self._client

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> list[bytes]:
        # Monotonic time: the back-off must not depend on the injectable wall clock.
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis is unreachable (retrying shortly)")
        try:
            result: list[bytes] = await script(keys=keys, args=args)
        except self._unreachable as exc:
            self._down_until = time.monotonic() + self._retry_interval
            raise StoreUnavailable(f"redis is unreachable: {type(exc).__name__}") from exc
        return result

    async def reserve(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, record_ttl: int
    ) -> ReserveResult:
        keys = [record_key(tag, request_id)]
        args = [repr(now), request_id, str(record_ttl)]
        for c in counters:
            keys.append(c.key)
            args += [
                c.kind.value,
                str(c.limit),
                str(c.amount),
                repr(c.param),
                "1" if c.enforce else "0",
            ]
        raw = await self._run(self._reserve, keys, args)
        status = raw[0]
        over = tuple(int(i) for i in raw[3].split(b",")) if raw[3] else ()
        return ReserveResult(
            ok=status != b"0",
            failed=int(raw[1]),
            retry_after=float(raw[2]),
            levels=tuple(float(v) for v in raw[4:]),
            over=over,
            duplicate=status == b"2",
        )

    async def reconcile(
        self,
        tag: str,
        request_id: str,
        counters: Sequence[Counter],
        actual: Sequence[int],
        now: float,
    ) -> tuple[float, ...] | None:
        keys = [record_key(tag, request_id)]
        args = [repr(now), request_id]
        for c, amount in zip(counters, actual, strict=True):
            keys.append(c.key)
            delta = -1 if c.kind is CounterKind.LEASE else amount - c.amount
            args += [c.kind.value, str(delta), repr(c.param)]
        raw = await self._run(self._reconcile, keys, args)
        if raw[0] == b"0":
            return None
        return tuple(float(v) for v in raw[1:])

    async def _command(self, *args: str) -> Any:
        if isinstance(self._client, RespClient):
            return await self._client.command(*args)
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def read(self, counters: Sequence[Counter], now: float) -> tuple[float, ...]:
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis is unreachable (retrying shortly)")
        calls = []
        for c in counters:
            if c.kind is CounterKind.BUCKET:
                calls.append(self._command("HMGET", c.key, "l", "t"))
            elif c.kind is CounterKind.LEASE:
                calls.append(self._command("ZCOUNT", c.key, f"({now!r}", "+inf"))
            else:
                calls.append(self._command("GET", c.key))
        try:
            replies = await asyncio.gather(*calls)
        except self._unreachable as exc:
            self._down_until = time.monotonic() + self._retry_interval
            raise StoreUnavailable(f"redis is unreachable: {type(exc).__name__}") from exc
        levels: list[float] = []
        for c, reply in zip(counters, replies, strict=True):
            if c.kind is CounterKind.BUCKET:
                level = float(reply[0] or 0) - max(0.0, now - float(reply[1] or now)) * c.param
                levels.append(max(0.0, level))
            else:
                levels.append(float(reply or 0))
        return tuple(levels)
