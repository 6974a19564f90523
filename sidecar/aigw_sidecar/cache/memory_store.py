"""The pod's own cache store: an LRU bounded in bytes, with a TTL per entry.

Bounded by what it holds, not by a count: every entry is charged its value's bytes, its
key's and :data:`ENTRY_OVERHEAD` for the bookkeeping around them (the dict slot, the tuple,
the two objects' headers), and an insert first evicts least-recently-used entries (expired
ones count as evictions of their own kind) until the new one fits. ``bytes`` never exceeds
``max_bytes``; an entry larger than ``max_entry_bytes`` is refused, so one huge answer
cannot flush everything else. Expiry is lazy (checked on read and when evicting) on the
monotonic clock: an expired entry is never served and never outlives the pressure that
evicts it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["ENTRY_OVERHEAD", "MemoryCache"]

ENTRY_OVERHEAD = 200
"""Bytes charged per entry on top of its key and value (measured with tracemalloc for
64-character keys: ~180 bytes of dict slot, tuple and object headers)."""


class MemoryCache:
    """A byte-bounded LRU of encoded entries."""

    name = "memory"
    compress = False
    remote = False

    def __init__(
        self,
        max_bytes: int,
        *,
        max_entry_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes or max_bytes // 8, max_bytes)
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[bytes, float, int]] = OrderedDict()
        self._clock = clock
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _id(tag: str, key: str) -> str:
        return f"{tag}\x00{key}"

    def get_now(self, tag: str, key: str) -> bytes | None:
        entry_id = self._id(tag, key)
        found = self._entries.get(entry_id)
        if found is None:
            return None
        value, expires, size = found
        if expires <= self._clock():
            del self._entries[entry_id]
            self.bytes -= size
            self._evicted("expired")
            return None
        self._entries.move_to_end(entry_id)
        return value

    def put_now(self, tag: str, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; False when it is too large to keep."""
        entry_id = self._id(tag, key)
        size = len(entry_id) + len(value) + ENTRY_OVERHEAD
        if size > self.max_entry_bytes or ttl_s <= 0:
            return False
        old = self._entries.pop(entry_id, None)
        if old is not None:
            self.bytes -= old[2]
        now = self._clock()
        while self._entries and self.bytes + size > self.max_bytes:
            _, (_, expires, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self._evicted("expired" if expires <= now else "size")
        self._entries[entry_id] = (value, now + ttl_s, size)
        self.bytes += size
        return True

    def _evicted(self, reason: str) -> None:
        if self._on_evict is not None:
            self._on_evict(reason)

    async def get(self, tag: str, key: str) -> bytes | None:
        return self.get_now(tag, key)

    async def put(self, tag: str, key: str, value: bytes, ttl_s: float) -> bool:
        return self.put_now(tag, key, value, ttl_s)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
