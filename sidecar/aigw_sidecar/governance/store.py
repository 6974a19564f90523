"""The counter model shared by both state stores, and the store interface.

Every limit and budget is a :class:`Counter` of one of three kinds:

* ``BUCKET`` (requests/min, tokens/min): a leaky bucket. Its level drains at ``limit/60``
  per second; a reservation fits while ``level + amount <= limit``; a refused one can retry
  after ``(level + amount - limit) / rate`` seconds, which is the exact ``Retry-After``.
* ``LEASE`` (concurrency): a set of request ids with expiry times; expired leases (a
  sidecar that died mid-request) drop out by themselves.
* ``TOTAL`` (budgets): an integer sum for one calendar window; refused ones retry when the
  window ends.

A store reserves all counters of a request atomically (all or nothing: if any enforced
counter refuses, nothing is written), and reconciles them after the call by the difference
between actual and reserved amounts. Both operations are idempotent per request id: a
reservation record marks a reserved request, and reconcile deletes it, so a repeated
reserve is not counted twice and a repeated reconcile does nothing. Non-enforced counters
(observe/warn modes, budgets that degrade to a fallback route) are applied even when over
their limit and reported in ``over``.

Keys are ``aigw:{<namespace>:<tenant>}:...``: the hash tag puts every counter of a request
in one Redis Cluster slot, so one script can touch them all.
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
    "StoreUnavailable",
    "record_key",
]

TOTAL_GRACE_SECONDS = 3_600
"""How long a budget window's counter outlives the window (for late reconciles)."""


class StoreUnavailable(Exception):
    """The shared state store cannot be reached (connection refused, timeout, ...)."""


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
    """BUCKET: drain rate per second; LEASE: lease expiry (epoch s); TOTAL: window end."""
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
    """The request id was already reserved; nothing was counted again."""


def record_key(tag: str, request_id: str) -> str:
    """Key of the reservation record of one request."""
    return f"aigw:{{{tag}}}:r:{request_id}"


class Store(Protocol):
    """Where counters live: process memory or Redis."""

    name: str

    async def reserve(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, record_ttl: int
    ) -> ReserveResult:
        """Reserve every counter or none; raise :class:`StoreUnavailable` if unreachable."""
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
