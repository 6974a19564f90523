"""The records behind Idempotency-Key: one key per (tenant, use case, key), two states.

- **pending** (``P<owner>\\n<fingerprint>``): the first request with this key is in flight,
  on the sidecar and request named by ``owner``; written with a lease (the request's
  deadline + a margin) so a sidecar that dies mid-call frees the key by expiry;
- **done** (``D<fingerprint>\\n<payload>``): the first result (a JSON answer, a stream's
  chunks, or a stored failure), kept for the policy's ``ttlSeconds``.

Only the pending owner may turn its marker into a result or delete it (compare and set on
the exact marker), so a request whose lease expired cannot overwrite the result of the one
that took the key over. The fingerprint is the hash of the request body: a record whose
fingerprint differs from the caller's is the draft's 422.

:class:`MemoryIdempotencyStore` serves one pod: bounded in bytes (oldest results evicted
first, pending markers never) and in entry size; expiry is checked on access and swept on
insert. The Redis store (:mod:`.redis_store`) has the same semantics across pods.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Found", "IdempotencyStore", "MemoryIdempotencyStore", "done_record", "pending_marker"]


def pending_marker(owner: str, fingerprint: str) -> bytes:
    return b"P" + owner.encode() + b"\n" + fingerprint.encode()


def done_record(fingerprint: str, payload: bytes) -> bytes:
    return b"D" + fingerprint.encode() + b"\n" + payload


@dataclass(frozen=True, slots=True)
class Found:
    """A key somebody already holds."""

    pending: bool
    fingerprint: str
    payload: bytes = b""
    """The stored result (done records only)."""

    @classmethod
    def parse(cls, raw: bytes) -> Found:
        head, _, rest = raw.partition(b"\n")
        if raw[:1] == b"P":
            return cls(True, rest.decode())
        return cls(False, head[1:].decode(), rest)


class IdempotencyStore(Protocol):
    """Where idempotency records live; every method may raise ``StoreUnavailable``."""

    async def begin(self, key: str, marker: bytes, lease_s: float) -> Found | None:
        """Write ``marker`` if the key is free (None: the caller now holds it), else what
        holds it."""
        ...

    async def get(self, key: str) -> Found | None: ...

    async def complete(self, key: str, marker: bytes, record: bytes, ttl_s: float) -> bool:
        """Replace the caller's own ``marker`` by ``record``; False if it is not there."""
        ...

    async def abandon(self, key: str, marker: bytes) -> None:
        """Delete the caller's own ``marker`` (a failure that is not kept)."""
        ...


class MemoryIdempotencyStore:
    """Records in this process (one pod), bounded in bytes."""

    name = "memory"

    def __init__(self, *, max_bytes: int = 16 << 20, max_entry_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            self._drop(key)
            return None
        return entry[1]

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(key) + len(entry[1])

    def _put(self, key: str, value: bytes, ttl_s: float, now: float) -> bool:
        size = len(key) + len(value)
        if size > self.max_entry_bytes:
            return False
        self._drop(key)
        self._sweep(now)
        while self._bytes + size > self.max_bytes and self._evict_one():
            pass
        if self._bytes + size > self.max_bytes:
            return False
        self._entries[key] = (now + ttl_s, value)
        self._bytes += size
        return True

    def _sweep(self, now: float) -> None:
        """Drop expired entries among the oldest few (amortised: never a full scan)."""
        for old in [k for k, (until, _) in list(self._entries.items())[:8] if until <= now]:
            self._drop(old)

    def _evict_one(self) -> bool:
        for key, (_, value) in self._entries.items():
            if value[:1] == b"D":  # results go first, oldest first; markers are in flight
                self._drop(key)
                return True
        return False

    async def begin(self, key: str, marker: bytes, lease_s: float) -> Found | None:
        now = time.monotonic()
        held = self._live(key, now)
        if held is not None:
            return Found.parse(held)
        self._put(key, marker, lease_s, now)
        return None

    async def get(self, key: str) -> Found | None:
        held = self._live(key, time.monotonic())
        return None if held is None else Found.parse(held)

    async def complete(self, key: str, marker: bytes, record: bytes, ttl_s: float) -> bool:
        now = time.monotonic()
        if self._live(key, now) != marker:
            return False
        if not self._put(key, record, ttl_s, now):
            self._drop(key)  # too large to keep: the next duplicate runs again
            return False
        return True

    async def abandon(self, key: str, marker: bytes) -> None:
        if self._live(key, time.monotonic()) == marker:
            self._drop(key)

    @property
    def bytes(self) -> int:
        """Bytes of keys and records held now (at most ``max_bytes``)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
