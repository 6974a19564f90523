"""redis-py behind the governance store, for what the lean client does not speak (TLS, Cluster).

Kept apart from :mod:`.redis_store` because importing ``redis.asyncio`` costs a sidecar about
20 MB of RSS (it pulls in ``cryptography`` and ``opentelemetry``), a third of the memory
budget of a process that runs in every pod. Only a sidecar configured with a ``rediss://``
URL, or code that passes a redis-py client, imports this module.
"""

from __future__ import annotations

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["FAILURES", "connect"]

FAILURES: tuple[type[BaseException], ...] = (
    redis_errors.RedisError,
    TimeoutError,
    OSError,
    ValueError,
)
"""The redis-py failures that mean "Redis cannot be used now": unreachable, timed out, or an
error reply (READONLY, MOVED, OOM, ...). The policy's fail mode applies to each."""


def connect(url: str, *, max_connections: int, timeout: float) -> Redis:
    """A redis-py client with a *blocking* pool: its default pool raises "Too many
    connections" under a burst, which would look like an unreachable Redis."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    return Redis(connection_pool=pool)
