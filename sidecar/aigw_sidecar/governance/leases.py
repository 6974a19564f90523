"""Hot-tenant mode: blocks of a use case's counters leased from shared state, spent locally.

Without it every governed call is one reservation round trip to Redis, and every call of a
tenant lands on the one shard that owns the tenant's hash tag: a tenant busier than one
shard's ceiling cannot be served. With ``leasing.blockPercent`` on a use case, a sidecar
instead reserves a **block** of every requests/min, tokens/min and budget counter of the
use case (``blockPercent`` of each limit, at least 1) with one ordinary ``RESERVE`` under a
block id of its own, and admits calls against the block in memory: no round trip per call.

* **Refill**: when a counter falls below half its block, the pod tops it up to a full
  block in the background (one lease in flight per pool; a call that does not fit waits
  for it): it reserves ``B - held`` of each counter under a new record, ``held`` being
  what is unspent plus what its calls in flight reserved, so what a pod holds of a
  counter is never more than ``B``. What is left is fungible across
  the records it came from (a :class:`Lot`); records it no longer needs are let expire
  (what they held was spent).
* **Return** (``RECONCILE`` of each record still needed to what was spent of it, the
  remainder split newest first): a lot unused for a lease period; a budget window's end
  (a lot belongs to its window); a bundle reload (the old bundle's pools take no new
  calls); a top-up that no longer fits; shutdown (``aclose``). A lot with calls in flight
  is returned when the last one settles.
* **Lease TTL**: each record is held ``lease_seconds`` and renewed by the governor's
  maintenance task; a sidecar that dies stops renewing, and its records expire. As for any
  reservation, what they held stays counted (never credited back twice), so a dead pod
  leaves at most ``B`` per counter unused until the window ends or the bucket drains.
* **Exact near the limit**: a top-up that no longer fits under a limit is refused; the pod
  returns its lot and counts per call, exactly as without leasing, until a block fits
  again (tried again after ``REFILL_RETRY_SECONDS``). A call larger than a block, a use
  case's concurrency limit (never leased: a lease is a call in flight, not an amount) and
  every mode but enforce go through the per-call path too.

**The bound** (docs/governance.md): a budget never admits more than its limit (a block is
counted when leased), and may leave at most ``pods x B`` unused while other pods hold it; a
rate limit may admit up to ``limit + pods x B`` in a minute (a block counted in the bucket
when leased can be spent after the bucket drained), ``B`` the block of that counter (summed
over the use cases that lease one counter).

Nothing here is caller input: block sizes come from the policy and the limits, and a
request's own amounts only decide whether it fits.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace

from .clock import Clock
from .identity import Identity
from .lots import Lot, Pool, Record, Share, block_size
from .observer import NullObserver, Observer
from .plan import Role, tag_of
from .store import MAX_AMOUNT, Counter, CounterKind, Store, StoreError, StoreUnavailable

__all__ = ["REFILL_RETRY_SECONDS", "Leases", "Lot", "Pool", "Record", "Share", "block_size"]

log = logging.getLogger("aigw.governance")
REFILL_RETRY_SECONDS = 1.0
"""After a refused or failed lease, calls count per call this long before the next try."""
_WAITS = 3
"""Leases a call that does not fit waits for before it is counted per call."""
_Defer = Callable[[tuple[Store, str, str, list[Counter], list[int], float]], None]


class Leases:
    """Every pool and lot of one governor."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        lease_seconds: float,
        new_id: Callable[[], str],
        defer: _Defer,
        holding: Callable[[], None],
        observer: Observer | None = None,
    ) -> None:
        """``defer`` queues a settlement the store could not take; ``holding`` is called
        when a block is leased (so the governor's maintenance task renews it)."""
        self._store = store
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._new_id = new_id
        self._defer = defer
        self._holding = holding
        self._observer: Observer = observer or NullObserver()
        self._pools: dict[tuple[object, str, str], Pool] = {}
        self._lots: set[Lot] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> int:
        """Lots leased and not yet returned."""
        return len(self._lots)

    def lots(self) -> list[Lot]:
        """The lots not yet returned (status, tests)."""
        return list(self._lots)

    def pool(self, view: object, identity: Identity, counters: Sequence[Counter]) -> Pool | None:
        """The pool of this request's use case, or None when it leases nothing."""
        leasing = identity.use_case.leasing
        if leasing is None:
            return None
        key = (view, identity.tenant, identity.use_case.name)
        pool = self._pools.get(key)
        if pool is None:
            indices = tuple(i for i, c in enumerate(counters) if c.kind is not CounterKind.LEASE)
            if not indices:
                return None
            sizes = tuple(block_size(counters[i].limit, leasing.block_percent) for i in indices)
            rest = tuple(i for i in range(len(counters)) if i not in indices)
            pool = Pool(view, tag_of(identity), indices, sizes, rest)
            self._pools[key] = pool
        return None if pool.closed else pool

    async def take(
        self, pool: Pool, counters: Sequence[Counter], roles: Sequence[Role], now: float
    ) -> Share | None:
        """Take the request's worst case from the pool's lot (leasing if needed); None:
        count this call per call."""
        amounts = [counters[i].amount for i in pool.indices]
        if any(a > s for a, s in zip(amounts, pool.sizes, strict=True)):
            return None  # larger than a block: it could never fit
        for attempt in range(_WAITS + 1):
            lot = pool.current
            if lot is not None and not lot.usable(now):
                self._retire(pool, lot)
                lot = None
            if lot is not None and all(a <= v for a, v in zip(amounts, lot.left, strict=True)):
                return self._consume(pool, lot, amounts, counters, roles, now=now)
            if attempt == _WAITS or pool.closed:
                return None
            if pool.refilling is None:
                if now < pool.next_try:
                    return None
                self._refill(pool, counters, now)
            refill = pool.refilling
            if refill is not None:
                await asyncio.shield(refill)
        return None

    def _consume(
        self,
        pool: Pool,
        lot: Lot,
        amounts: list[int],
        counters: Sequence[Counter],
        roles: Sequence[Role],
        *,
        now: float,
    ) -> Share:
        left = lot.left
        for k, amount in enumerate(amounts):
            left[k] -= amount
            lot.taken[k] += amount
        lot.calls += 1
        lot.last_used = now
        if (
            pool.refilling is None
            and now >= pool.next_try
            and any(2 * v < s for v, s in zip(left, pool.sizes, strict=True))
        ):
            self._refill(pool, counters, now)  # in the background: this call goes on
        levels = tuple(b - v for b, v in zip(lot.base, left, strict=True))
        return Share(
            lot,
            amounts,
            [counters[i] for i in pool.indices],
            [roles[i] for i in pool.indices],
            levels,
        )

    def settle(self, share: Share, actual: Sequence[int]) -> None:
        """Credit the lot with what the call did not use (or charge what it used beyond)."""
        lot = share.lot
        if lot.returned:
            return  # returned at shutdown while the call ran: its worst case stays counted
        for k, (reserved, used) in enumerate(zip(share.amounts, actual, strict=True)):
            lot.left[k] += reserved - used
            lot.taken[k] -= reserved
        lot.calls -= 1
        share.levels = tuple(b - v for b, v in zip(lot.base, lot.left, strict=True))
        if lot.retired and lot.calls == 0:
            self._spawn(self._return(lot))

    def give_back(self, share: Share) -> None:
        """The call was refused after taking its share (its concurrency limit): undo it."""
        self.settle(share, [0] * len(share.amounts))

    def _refill(self, pool: Pool, counters: Sequence[Counter], now: float) -> None:
        pool.refilling = asyncio.get_running_loop().create_task(self._lease(pool, counters, now))

    async def _lease(self, pool: Pool, counters: Sequence[Counter], now: float) -> None:
        """Top the pool's lot up to a full block of every counter (or lease a new lot)."""
        lot = pool.current
        if lot is not None and not lot.usable(now):
            self._retire(pool, lot)
            lot = None
        # What the pod holds of a counter, unspent or reserved by its calls in flight,
        # stays within one block: the top-up is what is missing of it.
        held = [0] * len(pool.sizes)
        if lot is not None:
            held = [v + t for v, t in zip(lot.left, lot.taken, strict=True)]
        wanted = [
            replace(counters[i], amount=max(0, size - h), enforce=True)
            for i, size, h in zip(pool.indices, pool.sizes, held, strict=True)
        ]
        if not any(c.amount for c in wanted):
            pool.refilling = None
            return  # a full block is held: the calls in flight have it
        rid = self._new_id()
        until = now + self._lease_seconds
        try:
            result = await self._store.reserve(pool.tag, rid, wanted, now, until)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable) and exc.maybe_applied:
                self._defer((self._store, pool.tag, rid, wanted, [0] * len(wanted), now))
            pool.next_try = now + REFILL_RETRY_SECONDS
            self._observer.lease_event("failed")
            return
        finally:
            pool.refilling = None
        if not result.ok:
            # No full block fits under a limit any more: give the lot back and count per
            # call (exact) until a block fits again.
            pool.next_try = now + REFILL_RETRY_SECONDS
            self._observer.lease_event("refused")
            if pool.current is not None:
                self._retire(pool, pool.current)
            return
        self._observer.lease_event("leased")
        self._adopt(pool, Record(rid, wanted), result.levels, now=now, until=until)

    def _adopt(
        self, pool: Pool, record: Record, levels: tuple[float, ...], *, now: float, until: float
    ) -> None:
        """Add a lease that succeeded to the pool's lot (or start a lot with it)."""
        lot = pool.current
        if lot is None or not lot.usable(now) or pool.closed:
            if lot is not None:
                self._retire(pool, lot)
            wanted = record.counters
            ends = min((c.param for c in wanted if c.kind is CounterKind.TOTAL), default=math.inf)
            amounts = [c.amount for c in wanted]
            lot = Lot(pool.tag, [record], amounts, levels, until, ends, now, [0] * len(amounts))
            self._lots.add(lot)
            if pool.closed:
                self._retire(pool, lot)
                return
            pool.current = lot
        else:
            for k, counter in enumerate(record.counters):
                lot.left[k] += counter.amount
            lot.base = levels
            lot.held_until = min(lot.held_until, until)
            lot.records.append(record)
            lot.prune()
        self._holding()

    def _retire(self, pool: Pool | None, lot: Lot) -> None:
        """No new calls for ``lot``; returned as soon as its calls have settled."""
        if pool is not None and pool.current is lot:
            pool.current = None
        if lot.retired:
            return
        lot.retired = True
        if lot.calls == 0:
            self._spawn(self._return(lot))

    def retire_except(self, view: object) -> None:
        """A new bundle is loaded: the other bundles' pools take no new calls."""
        for key, pool in list(self._pools.items()):
            if pool.view is not view:
                pool.closed = True
                if pool.current is not None:
                    self._retire(pool, pool.current)
                del self._pools[key]

    def _spawn(self, coroutine: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _return(self, lot: Lot) -> None:
        """Settle the lot's records to what was spent of them: the remainder is credited
        back, split newest first (a debt, usage beyond a reservation, goes on the newest)."""
        if lot.returned:
            return
        lot.returned = True
        self._lots.discard(lot)
        self._observer.lease_event("returned")
        now = self._clock.now()
        rest = list(lot.left)
        for n, record in enumerate(reversed(lot.records)):
            spent: list[int] = []
            for k, counter in enumerate(record.counters):
                give = min(rest[k], counter.amount) if n or rest[k] >= 0 else rest[k]
                rest[k] -= give
                spent.append(min(MAX_AMOUNT, counter.amount - give))
            if all(s == c.amount for s, c in zip(spent, record.counters, strict=True)):
                continue  # all of it spent: the record expires by itself, counted in full
            try:
                await self._store.reconcile(lot.tag, record.rid, record.counters, spent, now)
            except StoreUnavailable:
                self._defer((self._store, lot.tag, record.rid, record.counters, spent, now))
            except StoreError as exc:
                log.error("state store refused the return of lease %s: %s", record.rid, exc)

    async def maintain(self, now: float, renew_within: float) -> None:
        """Retire idle lots and lots of ended windows; renew the others' records when due."""
        current = {id(p.current): p for p in self._pools.values() if p.current is not None}
        for lot in list(self._lots):
            pool = current.get(id(lot))
            if not lot.retired and (now >= lot.ends or now - lot.last_used >= self._lease_seconds):
                self._retire(pool, lot)
                continue
            if lot.returned or lot.held_until - now >= renew_within:
                continue
            until = now + self._lease_seconds
            try:
                held = [
                    await self._store.renew(lot.tag, r.rid, r.counters, now, until)
                    for r in lot.records
                ]
            except StoreError:
                continue  # tried again next round; past held_until the lot serves no call
            lot.held_until = until
            if not all(held):  # a record expired: what it held stays counted
                log.warning("a lease of %s was no longer held when renewed", lot.tag)
                self._retire(pool, lot)

    async def aclose(self) -> None:
        """Return every lot (shutdown: after the calls in flight have settled)."""
        for pool in self._pools.values():
            pool.closed = True
            if pool.refilling is not None:
                await asyncio.gather(pool.refilling, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for lot in list(self._lots):
            await self._return(lot)
        self._pools.clear()
