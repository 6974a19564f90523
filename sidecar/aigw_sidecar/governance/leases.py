"""Hot-tenant mode: blocks of a use case's counters leased from shared state, spent locally.

Without it every governed call is one reservation round trip to Redis, and every call of a
tenant lands on the one shard that owns the tenant's hash tag: a tenant busier than one
shard's ceiling cannot be served. With ``leasing.blockPercent`` on a use case, a sidecar
instead reserves a **block** of every requests/min, tokens/min and budget counter of the
use case (``blockPercent`` of each limit, at least 1) with one ordinary ``RESERVE`` under a
block id of its own, and admits calls against the block in memory: no round trip per call.

* **Refill**: when a counter of the current block falls below half its size a new block is
  leased in the background (one in flight per pool); a call that does not fit waits for it.
  The new block replaces the old one, whose remainder is returned once its calls settle.
* **Return** (``RECONCILE`` of the block to what was spent of it): the replaced block; a
  block unused for a lease period; a budget window's end (a block belongs to its window);
  a bundle reload (the old bundle's pools take no new calls); shutdown (``aclose``).
* **Lease TTL**: a block is a reservation record held ``lease_seconds`` and renewed by the
  governor's maintenance task; a sidecar that dies stops renewing, and its block's record
  expires. As for any reservation, what it held stays counted (never credited back twice).
* **Exact near the limit**: a block that no longer fits under a limit is refused; the pod
  returns its current block and counts per call, exactly as without leasing, until a block
  fits again (tried again after ``REFILL_RETRY_SECONDS``). A call larger than a block, a use
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
from dataclasses import dataclass, field, replace
from decimal import Decimal

from .clock import Clock
from .identity import Identity
from .plan import Role, tag_of
from .store import MAX_AMOUNT, Counter, CounterKind, Store, StoreError, StoreUnavailable

__all__ = ["REFILL_RETRY_SECONDS", "Block", "Leases", "Pool", "Share", "block_size"]

log = logging.getLogger("aigw.governance")
REFILL_RETRY_SECONDS = 1.0
"""After a refused or failed block lease, calls count per call this long before another."""
_Defer = Callable[[tuple[Store, str, str, list[Counter], list[int], float]], None]


def block_size(limit: int, percent: float) -> int:
    """``percent`` of ``limit``, rounded down, at least 1 (computed in decimal)."""
    return max(1, min(MAX_AMOUNT, int(Decimal(limit) * Decimal(str(percent)) / 100)))


@dataclass(slots=True, eq=False)
class Block:
    """One leased block: a reservation record in the store and what is left of it here."""

    rid: str
    tag: str
    counters: list[Counter]
    """The leased counters as reserved: ``amount`` is the block's size of each."""
    left: list[int]
    base: tuple[float, ...]
    """Each counter's level in the store right after the lease (this block included)."""
    held_until: float
    ends: float
    """The earliest end of the block's budget windows (inf: rate limits only)."""
    last_used: float
    inflight: int = 0
    retired: bool = False
    returned: bool = False

    def usable(self, now: float) -> bool:
        return not self.retired and now < self.held_until and now < self.ends


@dataclass(slots=True, eq=False)
class Share:
    """What one call took from a block (its worst case of each leased counter)."""

    block: Block
    amounts: list[int]
    counters: list[Counter]
    roles: list[Role]
    levels: tuple[float, ...]
    """Estimated level of each counter: the store's at the lease, minus what is unspent here."""


@dataclass(slots=True, eq=False)
class Pool:
    """The blocks of one (bundle, tenant, use case) in this sidecar."""

    view: object
    tag: str
    indices: tuple[int, ...]
    """Positions of the leased counters in the use case's plan (all but concurrency)."""
    sizes: tuple[int, ...]
    current: Block | None = None
    refilling: asyncio.Task[None] | None = None
    next_try: float = 0.0
    closed: bool = False
    rest: tuple[int, ...] = field(default=())
    """Positions of the counters still reserved per call (concurrency)."""


class Leases:
    """Every pool and block of one governor."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        lease_seconds: float,
        new_id: Callable[[], str],
        defer: _Defer,
        holding: Callable[[], None],
    ) -> None:
        """``defer`` queues a settlement the store could not take; ``holding`` is called
        when a block is leased (so the governor's maintenance task renews it)."""
        self._store = store
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._new_id = new_id
        self._defer = defer
        self._holding = holding
        self._pools: dict[tuple[object, str, str], Pool] = {}
        self._blocks: set[Block] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> int:
        """Blocks leased and not yet returned."""
        return len(self._blocks)

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
            pool = Pool(view, tag_of(identity), indices, sizes, rest=rest)
            self._pools[key] = pool
        return None if pool.closed else pool

    async def take(
        self, pool: Pool, counters: Sequence[Counter], roles: Sequence[Role], now: float
    ) -> Share | None:
        """Take the request's worst case from the current block (leasing one if needed);
        None: count this call per call."""
        amounts = [counters[i].amount for i in pool.indices]
        if any(a > s for a, s in zip(amounts, pool.sizes, strict=True)):
            return None  # larger than a block: it could never fit one
        for attempt in range(2):
            block = pool.current
            if block is not None and not block.usable(now):
                self._retire(pool, block)
                block = None
            if block is not None and all(
                a <= left for a, left in zip(amounts, block.left, strict=True)
            ):
                return self._consume(pool, block, amounts, counters, roles, now=now)
            if attempt or pool.closed:
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
        block: Block,
        amounts: list[int],
        counters: Sequence[Counter],
        roles: Sequence[Role],
        *,
        now: float,
    ) -> Share:
        left = block.left
        for k, amount in enumerate(amounts):
            left[k] -= amount
        block.inflight += 1
        block.last_used = now
        if (
            pool.refilling is None
            and now >= pool.next_try
            and any(2 * v < s for v, s in zip(left, pool.sizes, strict=True))
        ):
            self._refill(pool, counters, now)  # in the background: this call goes on
        levels = tuple(
            block.base[k] - left[k] for k in range(len(left))
        )  # what the store counted at the lease, minus what is unspent here
        return Share(
            block,
            amounts,
            [counters[i] for i in pool.indices],
            [roles[i] for i in pool.indices],
            levels,
        )

    def settle(self, share: Share, actual: Sequence[int]) -> None:
        """Credit the block with what the call did not use (or charge what it used beyond)."""
        block = share.block
        if block.returned:
            return  # returned at shutdown while the call ran: its worst case stays counted
        for k, (reserved, used) in enumerate(zip(share.amounts, actual, strict=True)):
            block.left[k] += reserved - used
        block.inflight -= 1
        if block.retired and block.inflight == 0:
            self._spawn(self._return(block))

    def give_back(self, share: Share) -> None:
        """The call was refused after taking its share (its concurrency limit): undo it."""
        self.settle(share, [0] * len(share.amounts))

    def _refill(self, pool: Pool, counters: Sequence[Counter], now: float) -> None:
        pool.refilling = asyncio.get_running_loop().create_task(self._lease(pool, counters, now))

    async def _lease(self, pool: Pool, counters: Sequence[Counter], now: float) -> None:
        rid = self._new_id()
        wanted = [
            replace(counters[i], amount=size, enforce=True)
            for i, size in zip(pool.indices, pool.sizes, strict=True)
        ]
        until = now + self._lease_seconds
        try:
            result = await self._store.reserve(pool.tag, rid, wanted, now, until)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable) and exc.maybe_applied:
                self._defer((self._store, pool.tag, rid, wanted, [0] * len(wanted), now))
            pool.next_try = now + REFILL_RETRY_SECONDS
            return
        finally:
            pool.refilling = None
        old = pool.current
        if not result.ok:
            # No full block fits under a limit: give this one back and count per call
            # (exact) until a block fits again.
            pool.next_try = now + REFILL_RETRY_SECONDS
            if old is not None:
                self._retire(pool, old)
            return
        ends = min((c.param for c in wanted if c.kind is CounterKind.TOTAL), default=math.inf)
        block = Block(
            rid, pool.tag, wanted, [c.amount for c in wanted], result.levels, until, ends, now
        )
        self._blocks.add(block)
        if pool.closed:
            self._retire(pool, block)
            return
        pool.current = block
        if old is not None:
            self._retire(pool, old)
        self._holding()

    def _retire(self, pool: Pool | None, block: Block) -> None:
        """No new calls for ``block``; returned as soon as its calls have settled."""
        if pool is not None and pool.current is block:
            pool.current = None
        if block.retired:
            return
        block.retired = True
        if block.inflight == 0:
            self._spawn(self._return(block))

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

    async def _return(self, block: Block) -> None:
        """Settle the block's record to what was spent of it: the remainder is credited."""
        if block.returned:
            return
        block.returned = True
        self._blocks.discard(block)
        spent = [
            min(MAX_AMOUNT, max(0, c.amount - left))
            for c, left in zip(block.counters, block.left, strict=True)
        ]
        when = self._clock.now()
        try:
            await self._store.reconcile(block.tag, block.rid, block.counters, spent, when)
        except StoreUnavailable:
            self._defer((self._store, block.tag, block.rid, block.counters, spent, when))
        except StoreError as exc:
            log.error("state store refused the return of block %s: %s", block.rid, exc)

    async def maintain(self, now: float, renew_within: float) -> None:
        """Retire idle blocks and blocks of ended windows; renew the others when due."""
        current = {id(p.current): p for p in self._pools.values() if p.current is not None}
        for block in list(self._blocks):
            pool = current.get(id(block))
            if not block.retired and (
                now >= block.ends or now - block.last_used >= self._lease_seconds
            ):
                self._retire(pool, block)
                continue
            if block.returned or block.held_until - now >= renew_within:
                continue
            until = now + self._lease_seconds
            try:
                held = await self._store.renew(block.tag, block.rid, block.counters, now, until)
            except StoreError:
                continue  # tried again next round; past held_until the block serves no call
            if held:
                block.held_until = until
            else:  # the record expired: what it held stays counted, nothing to return
                log.warning("block %s was no longer held when renewed", block.rid)
                block.returned = True
                self._blocks.discard(block)
                self._retire(pool, block)

    async def aclose(self) -> None:
        """Return every block (shutdown: after the calls in flight have settled)."""
        for pool in self._pools.values():
            pool.closed = True
            if pool.refilling is not None:
                await asyncio.gather(pool.refilling, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for block in list(self._blocks):
            await self._return(block)
        self._pools.clear()
