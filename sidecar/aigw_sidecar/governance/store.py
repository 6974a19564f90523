"""The counter model shared by both state stores, and the store interface.

Every limit and budget is a :class:`Counter` of one of three kinds:

* ``BUCKET`` (requests/min, tokens/min): a leaky bucket. Its level drains at ``limit/60``
  per second; a reservation fits while ``level + amount <= limit``; a refused one can retry
  after ``(level + amount - limit) / rate`` seconds, which is the exact ``Retry-After``.
* ``LEASE`` (concurrency): a set of reservation ids with expiry times; expired leases (a
  sidecar that died mid-request) drop out by themselves.
* ``TOTAL`` (budgets): an integer sum for one calendar window (``param`` is the window's
  end); a counter whose stored window is not the request's starts again from zero, and
  refused ones retry when the window ends.

A store reserves all counters of a request atomically (all or nothing: if any enforced
counter refuses, nothing is written), and reconciles them after the call by the difference
between actual and reserved amounts. Both operations are idempotent per *reservation id*,
which the sidecar generates (never an id a caller sent, which a caller could repeat): a
reservation record marks a reserved request, and reconcile deletes it, so a repeated
reserve is not counted twice and a repeated reconcile does nothing. Non-enforced counters
(observe/warn modes, budgets that degrade to a fallback route) are applied even when over
their limit and reported in ``over``.

The record (and the concurrency lease, which is the same entry) lives until ``until``, a
short time ahead; the governor renews it while the call runs (:meth:`Store.renew`) and
reconcile ends it. A sidecar that dies stops renewing, so its leases expire by themselves.

Every number crosses the store boundary checked (:func:`check_counters`): a value out of
range raises :class:`StoreRejected` before anything is sent, and the Redis scripts check
again before they write. Keys are ``aigw:{<namespace>:<tenant>}:...``: the hash tag puts
every counter of a request in one Redis Cluster slot, so one script can touch them all.

Errors (one tree)::

    StoreError
     +-- StoreUnavailable   unreachable, timed out, or refused (READONLY, MOVED, OOM, ...):
     |                      the policy's failMode applies
     +-- StoreRejected      an argument out of range: never sent, never retried
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "Counter",
    "CounterKind",
    "ReserveResult",
    "Store",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "check_counters",
    "record_key",
]

TOTAL_GRACE_SECONDS = 3_600
"""How long a budget window's counter outlives the window (for late reconciles)."""


MAX_AMOUNT = 2**53 - 1
"""Largest limit or amount a counter holds exactly (a double's integer range: the Redis
scripts compute in Lua numbers). In nano-USD that is about 9 million USD per window."""
MAX_HOLD_SECONDS = 86_400.0
"""Longest a reservation record or lease may be held ahead of ``now`` in one step."""
MAX_WINDOW_SECONDS = 400 * 86_400.0
"""A budget window ends at most this far ahead (a month is 31 days; a year 366)."""


class StoreError(Exception):
    """A state store operation failed."""


class StoreUnavailable(StoreError):
    """The shared state store cannot be used now (connection refused, timeout, an error
    reply such as READONLY or MOVED): the policy's fail mode applies."""

    maybe_applied: bool = False
    """The operation was sent and may still run (a timeout): a reservation must then be
    released by a compensating settlement."""


class StoreRejected(StoreError):
    """An argument is out of the range a store accepts; nothing was sent or written."""


class CounterKind(StrEnum):
    """The three kinds of counter; values are the codes the Redis scripts read."""

    BUCKET = "b"
    LEASE = "l"
    TOTAL = "t"


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter a request reserves against."""

    kind: CounterKind
    key: str
    limit: int
    amount: int
    """Reserved amount: tokens, nano-USD or 1 (a request, a lease)."""
    param: float
    """BUCKET: drain rate per second; LEASE: unused (the reservation's ``until``);
    TOTAL: the window's end (epoch s)."""
    enforce: bool
    """Whether exceeding the limit refuses the reservation."""
    name: str
    """What it is, for errors, metrics and headers (``tokens_per_minute``, ``budget:x:usd``)."""


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """The outcome of a reservation."""

    ok: bool
    failed: int
    """Index of the first enforced counter that refused, or -1."""
    retry_after: float
    """Seconds until the refused counter would fit; -1 if it never can."""
    levels: tuple[float, ...]
    """Each counter's level after the reservation (before it, when refused)."""
    over: tuple[int, ...] = ()
    """Indices of counters over their limit (non-enforced ones let through)."""
    duplicate: bool = False
    """The reservation id was already reserved; nothing was counted again."""


def record_key(tag: str, request_id: str) -> str:
    """Key of the reservation record of one request (memory store)."""
    return f"aigw:{{{tag}}}:r:{request_id}"


def _finite(value: float) -> bool:
    return value == value and abs(value) < 1e300  # noqa: PLR0124 - NaN is not equal to itself


def check_counters(counters: Sequence[Counter], now: float, until: float) -> None:
    """Raise :class:`StoreRejected` unless every number is one a store can hold exactly.

    The governor bounds what it builds (caller headers are parsed and bounded before), so
    this firing means a bug; it keeps a bad value from ever reaching a script.
    """
    if not (_finite(now) and now >= 0):
        raise StoreRejected(f"now {now!r} is not a time")
    if not (_finite(until) and now < until <= now + MAX_HOLD_SECONDS):
        raise StoreRejected(f"hold until {until!r} is not within {MAX_HOLD_SECONDS} s of now")
    leases = 0
    for c in counters:
        if not (0 <= c.limit <= MAX_AMOUNT and 0 <= c.amount <= MAX_AMOUNT):
            raise StoreRejected(f"{c.name}: limit {c.limit} or amount {c.amount} out of range")
        if c.kind is CounterKind.BUCKET and not (_finite(c.param) and c.param > 0):
            raise StoreRejected(f"{c.name}: drain rate {c.param!r} out of range")
        if c.kind is CounterKind.TOTAL and not (
            _finite(c.param) and 0 < c.param <= now + MAX_WINDOW_SECONDS
        ):
            raise StoreRejected(f"{c.name}: window end {c.param!r} out of range")
        if c.kind is CounterKind.LEASE:
            leases += 1
    if leases > 1:
        raise StoreRejected("a reservation holds at most one concurrency lease")


class Store(Protocol):
    """Where counters live: process memory or Redis."""

    name: str

    async def reserve(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, until: float
    ) -> ReserveResult:
        """Reserve every counter or none, the record held until ``until``; raise
        :class:`StoreUnavailable` if the store cannot be used."""
        ...

    async def renew(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, until: float
    ) -> bool:
        """Hold the reservation (and its lease) until ``until``; False if it is gone."""
        ...

    async def reconcile(
        self,
        tag: str,
        request_id: str,
        counters: Sequence[Counter],
        actual: Sequence[int],
        now: float,
    ) -> tuple[float, ...] | None:
        """Adjust by ``actual - reserved`` and end leases; None if already reconciled."""
        ...

    async def read(self, counters: Sequence[Counter], now: float) -> tuple[float, ...]:
        """Current levels, without changing anything (status pages, headers)."""
        ...
