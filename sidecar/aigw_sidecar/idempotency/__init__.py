"""Idempotency-Key records: who holds a key, and the first result to replay (see
:mod:`.store` for the semantics and the memory store, :mod:`.redis_store` for Redis)."""

from .redis_store import RedisIdempotencyStore
from .store import Found, IdempotencyStore, MemoryIdempotencyStore, done_record, pending_marker

__all__ = [
    "Found",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "RedisIdempotencyStore",
    "done_record",
    "pending_marker",
]
