"""The data of hot-tenant mode: block sizes, lease records, a pool's lot, a call's share.

Split from :mod:`.leases` (which leases, spends and returns) so the accounting reads on its
own: a :class:`Lot` is what one pool holds, fungible across the :class:`Record` s it was
leased under; :meth:`Lot.prune` forgets records whose amounts are all spent (they expire by
themselves, counted in full). See :mod:`.leases` for the protocol and the bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from .plan import Role
from .store import MAX_AMOUNT, Counter

__all__ = ["Lot", "Pool", "Record", "Share", "block_size"]


def block_size(limit: int, percent: float) -> int:
    """``percent`` of ``limit``, rounded down, at least 1 (computed in decimal)."""
    return max(1, min(MAX_AMOUNT, int(Decimal(limit) * Decimal(str(percent)) / 100)))


@dataclass(slots=True, eq=False)
class Record:
    """One lease: a reservation record in the store (``amount``: what it reserved)."""

    rid: str
    counters: list[Counter]


@dataclass(slots=True, eq=False)
class Lot:
    """What one pool holds: the amounts left of each leased counter (fungible), and the
    records still needed to return them, oldest first."""

    tag: str
    records: list[Record]
    left: list[int]
    base: tuple[float, ...]
    """Each counter's level in the store after the last lease (this lot included)."""
    held_until: float
    ends: float
    """The earliest end of the lot's budget windows (inf: rate limits only)."""
    last_used: float
    taken: list[int] = field(default_factory=list)
    """Amounts of the calls in flight (credited back, or not, when they settle)."""
    calls: int = 0
    retired: bool = False
    returned: bool = False

    def usable(self, now: float) -> bool:
        return not self.retired and now < self.held_until and now < self.ends

    def prune(self) -> None:
        """Forget the oldest records whose amounts are all spent (they expire by
        themselves, counted in full); keep those that cover what is held."""
        held = [left + taken for left, taken in zip(self.left, self.taken, strict=True)]
        cover = [0] * len(held)
        keep = 0
        for record in reversed(self.records):
            if all(c >= h for c, h in zip(cover, held, strict=True)):
                break
            keep += 1
            for k, counter in enumerate(record.counters):
                cover[k] += counter.amount
        self.records = self.records[len(self.records) - keep :] if keep else []


@dataclass(slots=True, eq=False)
class Share:
    """What one call took from a lot (its worst case of each leased counter)."""

    lot: Lot
    amounts: list[int]
    counters: list[Counter]
    roles: list[Role]
    levels: tuple[float, ...]
    """Estimated level of each counter: the store's at the last lease, minus what is
    unspent here."""


@dataclass(slots=True, eq=False)
class Pool:
    """The lot of one (bundle, tenant, use case) in this sidecar."""

    view: object
    tag: str
    indices: tuple[int, ...]
    """Positions of the leased counters in the use case's plan (all but concurrency)."""
    sizes: tuple[int, ...]
    rest: tuple[int, ...]
    """Positions of the counters still reserved per call (concurrency)."""
    current: Lot | None = None
    refilling: asyncio.Task[None] | None = None
    next_try: float = 0.0
    closed: bool = False
