"""The governance engine: identify, authorize, constrain, limit before the call; settle after.

One :class:`Governor` lives in the sidecar process; one :class:`BundleView` per loaded
bundle holds what can be computed once (the policy governing this pod, route prices), so
the per-request work is a few dictionary look-ups, one token estimate and, when the use case
has limits or budgets, one store round trip to reserve and one to settle.

Reserve the worst case, settle to the truth. :meth:`Governor.limit` reserves prompt
estimate + output bound (tokens, times ``n`` choices) and the worst-case cost against every
rate limit and budget atomically; :meth:`Governor.settle` adjusts them to the provider's
usage (or the counted stream, or nothing for a failed call) and ends the concurrency lease.
Both are keyed by a reservation id the governor generates itself for every admission
(never an id the caller sent, which a caller could repeat to share one lease or settle one
reservation twice); the caller's id only travels along for logs.

A reservation lives as long as its call: it is held for ``lease_seconds``, renewed every
third of that by one background task while the call runs (:meth:`Governor._maintain`),
and ended by the settlement. A sidecar that dies stops renewing; its leases end by
themselves within ``lease_seconds``.

Shared state failing (unreachable, timing out, or answering an error such as READONLY):
the policy's ``failMode`` decides, for every failure alike. ``open`` counts in this pod's
memory meanwhile (a per-pod bound is better than none); ``closed`` refuses under enforce.
A metric counts each, and one log line per outcome every 10 s says which happened. A
reservation whose reply did not come in time may still run later: the script refuses to
write past its give-up deadline, and a compensating release is queued as well. Settlements
and releases that cannot reach the store wait in a bounded queue, replayed in the
background once it answers again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aigw_contract import Bundle, DataClassification, EnforcementMode, ExhaustionAction, FailMode

from .authorize import authorize, declared_tools
from .claims import Claims
from .clock import Clock, SystemClock
from .constraints import Constraints, constrain, requested_choices, requested_max_tokens
from .decisions import Decision, Denied, DenyKind, Verdict
from .grants import Admission, BundleView, GovernanceSettings, Grant, Usage
from .identity import Identity, PodIdentity
from .leases import Leases, Pool
from .memory_store import MemoryStore
from .money import Prices
from .observer import NullObserver, Observer
from .plan import Role, denial, settled_amount, tag_of
from .redis_store import RedisStore, ScriptNotLoaded
from .store import MAX_AMOUNT, Counter, Store, StoreError, StoreRejected, StoreUnavailable
from .tokens import EstimateCounter, TokenCounter, count_prompt

__all__ = [
    "Admission",
    "BundleView",
    "GovernanceSettings",
    "Governor",
    "Grant",
    "Usage",
]

log = logging.getLogger("aigw.governance")
_Pending = tuple[Store, str, str, list[Counter], list[int], float]
"""A deferred settlement: store, tag, reservation id, counters, actual amounts, time."""
_Job = tuple[str, str, list[int], float]
"""A settlement to send: tag, reservation id, actual amounts, time."""
_NO_CLAIMS = Claims()


class Governor:
    """Runs the governance steps for every request of one sidecar."""

    def __init__(
        self,
        pod: PodIdentity,
        store: Store,
        *,
        settings: GovernanceSettings | None = None,
        clock: Clock | None = None,
        counter: TokenCounter | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.pod = pod
        self.store = store
        self.settings = settings or GovernanceSettings()
        self._default_classification = DataClassification(self.settings.default_data_classification)
        """Of a request that claims none (an enum made once, not per call)."""
        self.clock: Clock = clock or SystemClock()
        self.counter: TokenCounter = counter or EstimateCounter()
        self.observer: Observer = observer or NullObserver()
        self.local: Store = store if isinstance(store, MemoryStore) else MemoryStore()
        self._logged: dict[str, list[float]] = {}
        """Outcome -> [monotonic time of its last log line, requests not logged since]."""
        self._pending: deque[_Pending] = deque(maxlen=self.settings.pending_settlements)
        self._prefix = "rsv_" + secrets.token_hex(8)
        self._ids = itertools.count(1)
        self._active: dict[str, Grant] = {}
        """Reservation id -> grant of a call in progress (renewed while it runs)."""
        self._maintainer: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Future[Any]] = set()
        """Settlements of :meth:`settle_soon` in flight: reply futures, or tasks."""
        self.leases = Leases(
            store,
            clock=self.clock,
            lease_seconds=self.settings.lease_seconds,
            new_id=self.new_reservation_id,
            defer=self._defer,
            holding=self._start_maintenance,
            observer=self.observer,
        )
        """Hot-tenant mode: the blocks this sidecar leased (:mod:`.leases`)."""

    def new_reservation_id(self) -> str:
        """A reservation id: a random per-process prefix and a counter (unique across pods)."""
        return f"{self._prefix}{next(self._ids):08x}"

    async def aclose(self) -> None:
        """Wait for the settlements in flight, return leased blocks, stop renewing, then
        close the shared store's connection (shutdown: after the calls in flight ended)."""
        await self.settled()
        await self.leases.aclose()
        task, self._maintainer = self._maintainer, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pending and self.store is not self.local:
            await self._replay()  # returns the store could not take yet: one more try
        if isinstance(self.store, RedisStore):
            await self.store.client.aclose()

    def view(self, bundle: Bundle) -> BundleView:
        """Precompute what a newly loaded bundle means for this pod; blocks leased under
        the previous bundle are returned (once their calls settle)."""
        view = BundleView(bundle, self.pod)
        self.leases.retire_except(view)
        return view

    # -- before the call -------------------------------------------------------------------

    def admit(
        self,
        view: BundleView,
        *,
        request_id: str,
        body: Mapping[str, Any],
        route: str,
        claims: Claims = _NO_CLAIMS,
        prompt_tokens: int | None = None,
    ) -> Admission:
        """Identify, authorize and constrain; raise :class:`Denied` when enforced checks fail.

        ``claims`` are the request's own statements (tenant, use case, classification,
        limits), already parsed and bounded by the sidecar's edge. ``prompt_tokens``: the
        prompt estimate when it is already known (``aigw replay`` re-evaluating a recorded
        call whose prompt was not stored); None: estimated from ``body``.
        """
        policy = view.index.policy
        mode = policy.mode if policy is not None else EnforcementMode.ENFORCE
        identity = view.index.identify(
            claims.tenant, claims.use_case, enforce=mode is EnforcementMode.ENFORCE
        )
        decisions = [
            Decision.for_mode(mode, "identify", "claim_not_granted", v) for v in identity.violations
        ]
        classification = claims.data_classification or self._default_classification
        decisions += authorize(
            identity.use_case,
            mode,
            route=route,
            tools=declared_tools(body),
            classification=classification,
        )
        prices = view.route_prices.get(route) or _free()
        # Embeddings produce no output tokens: nothing to reserve for or clamp.
        chat = "messages" in body or "input" not in body
        constraints = constrain(
            identity.use_case,
            mode,
            prompt_tokens=count_prompt(body, self.counter)
            if prompt_tokens is None
            else prompt_tokens,
            requested_output=requested_max_tokens(body),
            prices=prices,
            default_max_output=self.settings.default_max_output_tokens if chat else 0,
            produces_output=chat,
            caller_max_cost_nusd=claims.max_cost_nusd,
            caller_max_latency_ms=claims.max_latency_ms,
            choices=requested_choices(body) if chat else 1,
        )
        decisions += constraints.decisions
        return Admission(
            request_id,
            self.new_reservation_id(),
            identity,
            route,
            constraints,
            prices,
            decisions,
            classification,
        )

    async def limit(self, view: BundleView, admission: Admission) -> Grant:
        """Reserve the worst case against every rate limit and budget of the use case."""
        identity = admission.identity
        enforce = admission.mode is EnforcementMode.ENFORCE
        now = self.clock.now()
        degraded: frozenset[str] = frozenset()
        while True:
            counters, roles = view.plans.counters(
                identity, admission.constraints, now=now, enforce=enforce, degraded=degraded
            )
            if not counters:
                return Grant(admission, None, counters, roles, ())
            if enforce and not degraded and self.store is not self.local:
                pool = self.leases.pool(view, identity, counters)
                if pool is not None:
                    leased = await self._leased(pool, admission, counters, roles, now)
                    if leased is not None:
                        return leased
            store, result = await self._reserve(identity, admission, counters, now, enforce)
            if result.ok:
                self._record_over(admission, counters, roles, result.over, degraded)
                grant = Grant(admission, store, counters, roles, result.levels)
                grant.held_until = now + self.settings.lease_seconds
                if degraded:
                    grant.degraded_to = admission.route
                if not result.duplicate:
                    self._active[admission.reservation_id] = grant
                    self._start_maintenance()
                return grant
            counter, role = counters[result.failed], roles[result.failed]
            budget = role.budget
            if (
                budget is not None
                and budget.on_exhausted is ExhaustionAction.FALLBACK
                and budget.fallback_route is not None
                and budget.name not in degraded
            ):
                # Degrade: the spent budget keeps counting but stops refusing.
                self.observer.limit_decision(counter.name, "fallback")
                log.info(
                    "budget %s spent: request %s degrades to route %s",
                    budget.name,
                    admission.request_id,
                    budget.fallback_route,
                )
                degraded |= {budget.name}
                admission.route = budget.fallback_route
                admission.prices = view.route_prices.get(budget.fallback_route) or _free()
                admission.constraints = _reprice(admission.constraints, admission.prices)
                continue
            self.observer.limit_decision(counter.name, Verdict.BLOCKED.value)
            raise denial(counter, role, result.retry_after, now)

    async def _leased(
        self,
        pool: Pool,
        admission: Admission,
        counters: list[Counter],
        roles: list[Role],
        now: float,
    ) -> Grant | None:
        """Hot-tenant mode: admit against a leased block (None: reserve per call)."""
        share = await self.leases.take(pool, counters, roles, now)
        if share is None:
            return None
        grant = Grant(admission, None, [], [], (), share=share)
        if not pool.rest:
            return grant
        rest = [counters[i] for i in pool.rest]
        rest_roles = [roles[i] for i in pool.rest]
        try:
            store, result = await self._reserve(admission.identity, admission, rest, now, True)
        except BaseException:
            self.leases.give_back(share)
            raise
        if not result.ok:
            self.leases.give_back(share)
            counter = rest[result.failed]
            self.observer.limit_decision(counter.name, Verdict.BLOCKED.value)
            raise denial(counter, rest_roles[result.failed], result.retry_after, now)
        grant.store, grant.counters, grant.roles = store, rest, rest_roles
        grant.levels = result.levels
        grant.held_until = now + self.settings.lease_seconds
        if not result.duplicate:
            self._active[admission.reservation_id] = grant
            self._start_maintenance()
        return grant

    async def _reserve(
        self,
        identity: Identity,
        admission: Admission,
        counters: list[Counter],
        now: float,
        enforce: bool,
    ) -> tuple[Store, Any]:
        tag = tag_of(identity)
        rid = admission.reservation_id
        until = now + self.settings.lease_seconds
        try:
            result = await self.store.reserve(tag, rid, counters, now, until)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable) and exc.maybe_applied:
                # The script may still run (a frozen Redis): it refuses past its give-up
                # deadline, and this release undoes it if it ran before.
                self._defer((self.store, tag, rid, counters, [0] * len(counters), now))
            elif isinstance(exc, StoreRejected):
                log.error("state store refused reservation %s: %s", rid, exc)
            fail_mode = identity.policy.fail_mode
            if fail_mode is FailMode.CLOSED and enforce:
                self.observer.state_unavailable("reserve", "fail_closed")
                self._log_unavailable(
                    logging.ERROR,
                    "fail_closed",
                    f"state store unreachable ({exc}): policy {identity.policy.name} fails "
                    f"closed, request {admission.request_id} refused",
                )
                raise Denied(
                    DenyKind.STATE_UNAVAILABLE,
                    "shared rate-limit and budget state is unreachable; the policy fails closed",
                    code="state_unavailable",
                    retry_after=1,
                ) from exc
            outcome = "fail_open" if fail_mode is FailMode.OPEN else "fail_closed_not_enforced"
            self.observer.state_unavailable("reserve", outcome)
            self._log_unavailable(
                logging.WARNING,
                outcome,
                f"state store unreachable ({exc}): policy {identity.policy.name} "
                f"{outcome.replace('_', ' ')}, counting in this pod only for request "
                f"{admission.request_id}",
            )
            if fail_mode is FailMode.CLOSED:
                admission.decisions.append(
                    Decision.for_mode(
                        admission.mode,
                        "limit",
                        "state_unavailable",
                        "shared state unreachable: the policy would fail closed",
                    )
                )
            result = await self.local.reserve(tag, rid, counters, now, until)
            return self.local, result
        if self._logged:
            self._logged.clear()
            log.warning("state store reachable again: limits and budgets are shared again")
        if self._pending and self.store is not self.local:
            self._start_maintenance()
        return self.store, result

    def _log_unavailable(self, level: int, outcome: str, message: str) -> None:
        """One line per outcome every 10 s while the store is down (not one per request),
        saying how many were not logged; the metric counts every one."""
        now = time.monotonic()
        entry = self._logged.get(outcome)
        if entry is not None and now - entry[0] < 10.0:
            entry[1] += 1
            return
        skipped = entry[1] if entry is not None else 0
        suffix = f" ({int(skipped)} more since the last line)" if skipped else ""
        log.log(level, "%s%s", message, suffix)
        self._logged[outcome] = [now, 0]

    def _record_over(
        self,
        admission: Admission,
        counters: list[Counter],
        roles: list[Role],
        over: tuple[int, ...],
        degraded: frozenset[str],
    ) -> None:
        for i in over:
            budget = roles[i].budget
            if budget is not None and budget.name in degraded:
                continue  # already decided (the request went to the fallback route)
            code = "budget_exceeded" if budget is not None else "rate_limited"
            message = f"{counters[i].name} limit {counters[i].limit} exceeded"
            if budget is not None and budget.on_exhausted is ExhaustionAction.FALLBACK:
                code = "budget_fallback"
                message += f": would fall back to route {budget.fallback_route}"
            decision = Decision.for_mode(admission.mode, "limit", code, message)
            admission.decisions.append(decision)
            self.observer.limit_decision(counters[i].name, decision.verdict.value)

    # -- after the call --------------------------------------------------------------------

    async def settle(self, grant: Grant, usage: Usage | None, prices: Prices | None = None) -> None:
        """Reconcile a grant with what the call consumed; ``usage=None`` releases it.

        ``prices`` are the serving backend's (the route's worst case when unknown).
        Settling twice does nothing the second time.
        """
        job = self._settlement(grant, usage, prices)
        if job is not None:
            await self._reconcile(grant, job)

    def settle_soon(self, grant: Grant, usage: Usage | None, prices: Prices | None = None) -> None:
        """:meth:`settle` without waiting for the store (the sidecar answers first): the
        same settlement and failure handling, finished in the background; :meth:`settled`
        and :meth:`aclose` wait for it.

        With Redis the command goes out now and the reply's callback finishes it (no task,
        no coroutine per call); what cannot go out at once (no open connection, a
        cluster, NOSCRIPT) runs :meth:`settle`'s path in a task.
        """
        try:  # a failure is logged, as the task's was: never the call's error
            job = self._settlement(grant, usage, prices)
            if job is None:
                return
            store = grant.store
            reply = None
            if isinstance(store, RedisStore):
                tag, rid, actual, now = job
                reply = store.reconcile_nowait(tag, rid, grant.counters, actual, now)
        except Exception:
            log.exception("settling a reservation failed")
            return
        if reply is None:
            self._settle_in_task(grant, job)
            return
        self._settling.add(reply)
        reply.add_done_callback(functools.partial(self._replied, grant, job))

    @property
    def settling(self) -> int:
        """Settlements started by :meth:`settle_soon` and not finished yet."""
        return len(self._settling)

    async def settled(self) -> None:
        """Wait until every settlement :meth:`settle_soon` started is finished (a waiter
        that is cancelled leaves them running: cancelling a reply would lose its outcome)."""
        while self._settling:
            await asyncio.wait(set(self._settling))

    def _settle_in_task(self, grant: Grant, job: _Job) -> None:
        task = asyncio.get_running_loop().create_task(self._reconcile(grant, job))
        self._settling.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("settling a reservation failed", exc_info=task.exception())

    def _replied(self, grant: Grant, job: _Job, reply: asyncio.Future[Any]) -> None:
        """The end of a settlement sent by :meth:`settle_soon` (the reply's callback)."""
        try:
            store = grant.store
            assert isinstance(store, RedisStore)
            try:
                levels = store.reconciled_reply(reply)
            except ScriptNotLoaded:  # tracked before the reply is let go: no gap for drain
                self._settle_in_task(grant, job)
                return
            except (StoreRejected, StoreUnavailable) as exc:
                self._settle_failed(grant, job, exc)
                return
            if levels is not None:
                grant.levels = levels
        except Exception:
            log.exception("settling a reservation failed")
        finally:
            self._settling.discard(reply)

    def _settlement(self, grant: Grant, usage: Usage | None, prices: Prices | None) -> _Job | None:
        """Mark ``grant`` settled and settle its leased share; what the store is still to
        be told (None: nothing, or settled before)."""
        if grant.settled:
            return None
        grant.settled = True
        share = grant.share
        if grant.store is None and share is None:
            return None
        tokens = usage.total if usage is not None else 0
        cost = 0
        if usage is not None:
            price = prices or grant.admission.prices
            cost = price.cost_of(usage)
        if share is not None:
            self.leases.settle(
                share, [min(settled_amount(r, tokens, cost), MAX_AMOUNT) for r in share.roles]
            )
        if grant.store is None:
            return None
        # Provider-reported usage is bounded like everything else that reaches a store.
        actual = [min(settled_amount(role, tokens, cost), MAX_AMOUNT) for role in grant.roles]
        rid = grant.admission.reservation_id
        self._active.pop(rid, None)
        return tag_of(grant.admission.identity), rid, actual, self.clock.now()

    async def _reconcile(self, grant: Grant, job: _Job) -> None:
        """Tell the store (``grant.store``, not None) what the call consumed."""
        store = grant.store
        assert store is not None
        tag, rid, actual, now = job
        try:
            levels = await store.reconcile(tag, rid, grant.counters, actual, now)
        except (StoreRejected, StoreUnavailable) as exc:
            self._settle_failed(grant, job, exc)
            return
        if levels is not None:
            grant.levels = levels

    def _settle_failed(
        self, grant: Grant, job: _Job, exc: StoreRejected | StoreUnavailable
    ) -> None:
        """A refused settlement is logged; one the store could not take waits for it."""
        tag, rid, actual, now = job
        if not isinstance(exc, StoreUnavailable):
            log.error("state store refused the settlement of %s: %s", rid, exc)
            return
        assert grant.store is not None
        self.observer.state_unavailable("settle", "deferred")
        self._log_unavailable(
            logging.WARNING, "deferred", f"state store failed ({exc}): settlement deferred"
        )
        self._defer((grant.store, tag, rid, grant.counters, actual, now))

    def _defer(self, entry: _Pending) -> None:
        """Queue a settlement (or a compensating release) until the store answers again."""
        self._pending.append(entry)
        self._start_maintenance()

    @property
    def pending(self) -> int:
        """Settlements and releases waiting for the store to answer again."""
        return len(self._pending)

    async def _replay(self) -> bool:
        """Replay queued settlements; False when the store still fails."""
        # Entries are taken off the queue before awaiting, so concurrent replays never
        # settle one twice; a failure puts the entry back and stops.
        while self._pending:
            entry = self._pending.popleft()
            store, tag, rid, counters, actual, when = entry
            try:
                await store.reconcile(tag, rid, counters, actual, max(when, self.clock.now()))
            except StoreRejected as exc:
                log.error("state store refused a deferred settlement of %s: %s", rid, exc)
            except StoreUnavailable:
                self._pending.appendleft(entry)
                return False
        return True

    def _start_maintenance(self) -> None:
        if self._maintainer is None or self._maintainer.done():
            self._maintainer = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        """Renew the reservations of calls in progress and replay deferred settlements;
        ends by itself when there is nothing left to do."""
        interval = self.settings.lease_seconds / 3
        retry = min(interval, 0.5)
        while self._active or self._pending or self.leases.held:
            if self._pending and await self._replay():
                continue
            await asyncio.sleep(retry if self._pending else interval)
            now = self.clock.now()
            await self.leases.maintain(now, 2 * interval)
            due = [g for g in self._active.values() if g.held_until - now < 2 * interval]
            for grant in due:
                await self._renew(grant, now)

    async def _renew(self, grant: Grant, now: float) -> None:
        store = grant.store
        rid = grant.admission.reservation_id
        if store is None or grant.settled:
            return
        until = now + self.settings.lease_seconds
        try:
            tag = tag_of(grant.admission.identity)
            held = await store.renew(tag, rid, grant.counters, now, until)
        except StoreError as exc:
            self._log_unavailable(
                logging.WARNING, "renew", f"state store failed ({exc}): leases not renewed"
            )
            return
        if held:
            grant.held_until = until
        else:
            self._active.pop(rid, None)
            log.warning("reservation %s was no longer held when renewed", rid)


def _free() -> Prices:
    return Prices(0, 0)


def _reprice(constraints: Constraints, prices: Prices) -> Constraints:
    cost = prices.cost(constraints.prompt_tokens, constraints.max_output_tokens)
    return replace(constraints, estimated_cost_nusd=cost)
