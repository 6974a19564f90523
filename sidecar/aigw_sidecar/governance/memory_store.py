"""In-process counters: the default state store for a single pod.

Same semantics as the Redis store (see :mod:`.store`), computed in Python. The event loop
runs one coroutine at a time and these methods never await, so every reservation is atomic
without locks. Memory is bounded: every entry carries an expiry (bucket drained, lease
over, window ended plus grace, reservation record no longer renewed) and a sweep drops
expired entries at most once every ``sweep_interval`` seconds, so idle tenants cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .store import (
    TOTAL_GRACE_SECONDS,
    Counter,
    CounterKind,
    ReserveResult,
    check_counters,
    record_key,
)

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Bucket:
    level: float
    stamp: float
    expires: float


@dataclass(slots=True)
class _Leases:
    holders: dict[str, float] = field(default_factory=dict)
    """Reservation id -> lease expiry."""


@dataclass(slots=True)
class _Total:
    value: float
    window_end: float


class MemoryStore:
    """Counters in this process's memory."""

    name = "memory"

    def __init__(self, sweep_interval: float = 10.0) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._leases: dict[str, _Leases] = {}
        self._totals: dict[str, _Total] = {}
        self._records: dict[str, float] = {}
        """reservation record key -> expiry."""
        self._sweep_interval = sweep_interval
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """Entries held (tests check that memory does not grow without bound)."""
        return len(self._buckets) + len(self._leases) + len(self._totals) + len(self._records)

    def _level(self, counter: Counter, now: float) -> float:
        if counter.kind is CounterKind.BUCKET:
            bucket = self._buckets.get(counter.key)
            if bucket is None:
                return 0.0
            return max(0.0, bucket.level - max(0.0, now - bucket.stamp) * counter.param)
        if counter.kind is CounterKind.LEASE:
            leases = self._leases.get(counter.key)
            if leases is None:
                return 0.0
            return float(sum(1 for until in leases.holders.values() if until > now))
        total = self._totals.get(counter.key)
        return 0.0 if total is None or total.window_end != counter.param else total.value

    async def reserve(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, until: float
    ) -> ReserveResult:
        check_counters(counters, now, until)
        self._maybe_sweep(now)
        levels = [self._level(c, now) for c in counters]
        rkey = record_key(tag, request_id)
        expiry = self._records.get(rkey)
        if expiry is not None and expiry > now:
            return ReserveResult(True, -1, 0.0, tuple(levels), duplicate=True)
        over: list[int] = []
        for i, (counter, level) in enumerate(zip(counters, levels, strict=True)):
            if level + counter.amount > counter.limit:
                if counter.enforce:
                    return ReserveResult(False, i, _retry_after(counter, level, now), tuple(levels))
                over.append(i)
        for i, counter in enumerate(counters):
            amount = counter.amount
            levels[i] = self._apply(counter, levels[i], amount, request_id, now, until=until)
        self._records[rkey] = until
        return ReserveResult(True, -1, 0.0, tuple(levels), tuple(over))

    async def renew(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, until: float
    ) -> bool:
        check_counters(counters, now, until)
        rkey = record_key(tag, request_id)
        expiry = self._records.get(rkey)
        if expiry is None or expiry <= now:
            return False
        self._records[rkey] = until
        for counter in counters:
            if counter.kind is CounterKind.LEASE:
                leases = self._leases.get(counter.key)
                if leases is not None and request_id in leases.holders:
                    leases.holders[request_id] = until
        return True

    def _apply(
        self,
        counter: Counter,
        level: float,
        delta: int,
        request_id: str,
        now: float,
        *,
        until: float = 0.0,
    ) -> float:
        if counter.kind is CounterKind.BUCKET:
            new = max(0.0, level + delta)
            self._buckets[counter.key] = _Bucket(new, now, now + new / counter.param + 1)
            return new
        if counter.kind is CounterKind.LEASE:
            leases = self._leases.setdefault(counter.key, _Leases())
            if delta > 0:
                leases.holders[request_id] = until
            else:
                leases.holders.pop(request_id, None)
            return float(sum(1 for expiry in leases.holders.values() if expiry > now))
        total = self._totals.get(counter.key)
        if total is None or total.window_end != counter.param:
            if delta < 0:
                return 0.0  # the reservation's window is over: nothing to give back
            total = self._totals[counter.key] = _Total(0.0, counter.param)
        total.value += delta
        return total.value

    async def reconcile(
        self,
        tag: str,
        request_id: str,
        counters: Sequence[Counter],
        actual: Sequence[int],
        now: float,
    ) -> tuple[float, ...] | None:
        expiry = self._records.pop(record_key(tag, request_id), None)
        if expiry is None or expiry <= now:
            return None  # settled already, or held past its renewal: it stays counted
        levels: list[float] = []
        for counter, amount in zip(counters, actual, strict=True):
            level = self._level(counter, now)
            if counter.kind is CounterKind.LEASE:
                levels.append(self._apply(counter, level, -1, request_id, now))
            else:
                levels.append(self._apply(counter, level, amount - counter.amount, request_id, now))
        return tuple(levels)

    async def read(self, counters: Sequence[Counter], now: float) -> tuple[float, ...]:
        return tuple(self._level(c, now) for c in counters)

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        for key in [k for k, b in self._buckets.items() if b.expires <= now]:
            del self._buckets[key]
        for key, leases in list(self._leases.items()):
            for rid in [r for r, until in leases.holders.items() if until <= now]:
                del leases.holders[rid]
            if not leases.holders:
                del self._leases[key]
        for key in [
            k for k, t in self._totals.items() if t.window_end + TOTAL_GRACE_SECONDS <= now
        ]:
            del self._totals[key]
        for key in [k for k, until in self._records.items() if until <= now]:
            del self._records[key]


def _retry_after(counter: Counter, level: float, now: float) -> float:
    """Seconds until a refused counter would admit ``counter.amount``; -1 for never."""
    if counter.amount > counter.limit:
        return -1.0
    if counter.kind is CounterKind.BUCKET:
        return (level + counter.amount - counter.limit) / counter.param
    if counter.kind is CounterKind.LEASE:
        return 1.0
    return max(0.0, counter.param - now)
