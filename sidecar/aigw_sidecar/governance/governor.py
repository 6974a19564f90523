"""The governance engine: identify, authorize, constrain, limit before the call; settle after.

One :class:`Governor` lives in the sidecar process; one :class:`BundleView` per loaded
bundle holds what can be computed once (the policy governing this pod, route prices), so
the per-request work is a few dictionary look-ups, one token estimate and, when the use case
has limits or budgets, one store round trip to reserve and one to settle.

Reserve the worst case, settle to the truth. :meth:`Governor.limit` reserves prompt
estimate + output bound (tokens) and the worst-case cost against every rate limit and
budget atomically; :meth:`Governor.settle` adjusts them to the provider's usage (or the
counted stream, or nothing for a failed call) and ends the concurrency lease. Both are
idempotent per sidecar-generated request id (never a client-supplied one, which a client
could replay to skip counting).

Shared state down: the policy's ``failMode`` decides. ``open`` counts in this pod's memory
meanwhile (a per-pod bound is better than none); ``closed`` refuses under enforce. Either
way a metric and a log line say which happened. Settlements that cannot reach the store
wait in a bounded queue and are replayed after the next successful reservation.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aigw_contract import Bundle, DataClassification, EnforcementMode, ExhaustionAction, FailMode

from .authorize import authorize, declared_tools
from .claims import Claims
from .clock import Clock, SystemClock
from .constraints import Constraints, constrain, requested_max_tokens
from .decisions import Decision, Denied, DenyKind, Verdict
from .grants import Admission, BundleView, GovernanceSettings, Grant, Usage
from .identity import Identity, PodIdentity
from .memory_store import MemoryStore
from .money import Prices
from .observer import NullObserver, Observer
from .plan import Role, denial, settled_amount, tag_of
from .redis_store import RedisStore
from .store import Counter, Store, StoreUnavailable
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
        self.clock: Clock = clock or SystemClock()
        self.counter: TokenCounter = counter or EstimateCounter()
        self.observer: Observer = observer or NullObserver()
        self.local: Store = store if isinstance(store, MemoryStore) else MemoryStore()
        self._logged: dict[str, list[float]] = {}
        """Outcome -> [monotonic time of its last log line, requests not logged since]."""
        self._pending: deque[tuple[Store, str, str, list[Counter], list[int], float]] = deque(
            maxlen=self.settings.pending_settlements
        )

    async def aclose(self) -> None:
        """Close the shared store's connection (the sidecar is shutting down)."""
        if isinstance(self.store, RedisStore):
            await self.store.client.aclose()

    def view(self, bundle: Bundle) -> BundleView:
        """Precompute what a newly loaded bundle means for this pod."""
        return BundleView(bundle, self.pod)

    # -- before the call -------------------------------------------------------------------

    def admit(
        self,
        view: BundleView,
        *,
        request_id: str,
        body: Mapping[str, Any],
        route: str,
        claims: Claims = _NO_CLAIMS,
    ) -> Admission:
        """Identify, authorize and constrain; raise :class:`Denied` when enforced checks fail.

        ``claims`` are the request's own statements (tenant, use case, classification,
        limits), already parsed and bounded by the sidecar's edge.
        """
        policy = view.index.policy
        mode = policy.mode if policy is not None else EnforcementMode.ENFORCE
        identity = view.index.identify(
            claims.tenant, claims.use_case, enforce=mode is EnforcementMode.ENFORCE
        )
        decisions = [
            Decision.for_mode(mode, "identify", "claim_not_granted", v) for v in identity.violations
        ]
        decisions += authorize(
            identity.use_case,
            mode,
            route=route,
            tools=declared_tools(body),
            classification=claims.data_classification
            or DataClassification(self.settings.default_data_classification),
        )
        prices = view.route_prices.get(route) or _free()
        # Embeddings produce no output tokens: nothing to reserve for or clamp.
        chat = "messages" in body or "input" not in body
        constraints = constrain(
            identity.use_case,
            mode,
            prompt_tokens=count_prompt(body, self.counter),
            requested_output=requested_max_tokens(body),
            prices=prices,
            default_max_output=self.settings.default_max_output_tokens if chat else 0,
            produces_output=chat,
            caller_max_cost_nusd=claims.max_cost_nusd,
            caller_max_latency_ms=claims.max_latency_ms,
        )
        decisions += constraints.decisions
        return Admission(request_id, identity, route, constraints, prices, decisions)

    async def limit(self, view: BundleView, admission: Admission) -> Grant:
        """Reserve the worst case against every rate limit and budget of the use case."""
        identity = admission.identity
        enforce = admission.mode is EnforcementMode.ENFORCE
        now = self.clock.now()
        deadline = admission.constraints.deadline_ms
        lease = deadline / 1000.0 if deadline is not None else self.settings.max_request_seconds
        degraded: frozenset[str] = frozenset()
        while True:
            counters, roles = view.plans.counters(
                identity,
                admission.constraints,
                now=now,
                lease_seconds=lease + 5.0,
                enforce=enforce,
                degraded=degraded,
            )
            if not counters:
                return Grant(admission, None, counters, roles, ())
            store, result = await self._reserve(identity, admission, counters, now, enforce)
            if result.ok:
                self._record_over(admission, counters, roles, result.over, degraded)
                grant = Grant(admission, store, counters, roles, result.levels)
                if degraded:
                    grant.degraded_to = admission.route
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

    async def _reserve(
        self,
        identity: Identity,
        admission: Admission,
        counters: list[Counter],
        now: float,
        enforce: bool,
    ) -> tuple[Store, Any]:
        tag = tag_of(identity)
        ttl = self.settings.record_ttl_seconds
        try:
            result = await self.store.reserve(tag, admission.request_id, counters, now, ttl)
        except StoreUnavailable as exc:
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
            result = await self.local.reserve(tag, admission.request_id, counters, now, ttl)
            return self.local, result
        if self._logged:
            self._logged.clear()
            log.warning("state store reachable again: limits and budgets are shared again")
        if self._pending and self.store is not self.local:
            await self._replay()
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
        if grant.settled or grant.store is None:
            grant.settled = True
            return
        grant.settled = True
        tokens = usage.total if usage is not None else 0
        cost = 0
        if usage is not None:
            price = prices or grant.admission.prices
            cost = price.cost_of(usage)
        actual = [settled_amount(role, tokens, cost) for role in grant.roles]
        tag = tag_of(grant.admission.identity)
        now = self.clock.now()
        rid = grant.admission.request_id
        try:
            levels = await grant.store.reconcile(tag, rid, grant.counters, actual, now)
        except StoreUnavailable as exc:
            self.observer.state_unavailable("settle", "deferred")
            log.warning("state store unreachable (%s): settlement of %s deferred", exc, rid)
            self._pending.append((grant.store, tag, rid, grant.counters, actual, now))
            return
        if levels is not None:
            grant.levels = levels

    async def _replay(self) -> None:
        # Entries are taken off the queue before awaiting, so concurrent replays never
        # settle one twice; a failure puts the entry back and stops.
        while self._pending:
            entry = self._pending.popleft()
            store, tag, rid, counters, actual, when = entry
            try:
                await store.reconcile(tag, rid, counters, actual, max(when, self.clock.now()))
            except StoreUnavailable:
                self._pending.appendleft(entry)
                return


def _free() -> Prices:
    return Prices(0, 0)


def _reprice(constraints: Constraints, prices: Prices) -> Constraints:
    cost = prices.cost(constraints.prompt_tokens, constraints.max_output_tokens)
    return replace(constraints, estimated_cost_nusd=cost)
