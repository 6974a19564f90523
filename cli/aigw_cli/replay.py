"""Re-evaluating recorded calls under a candidate bundle, offline, with the real engine.

Nothing here re-implements policy. Each recorded call (``docs/audit.md``: the ``request``
member holds its claims, prompt estimate, output bound, choices and tools) goes through:

1. **routing**: the sidecar's own route step (:class:`aigw_sidecar.steps.ResolveRoute`) on
   the recorded ``model`` and claims, over the candidate's runtime config prepared with the
   pod's governance view: route names, model aliases, intent families with quality tier and
   region, and their refusals;
2. **admission**: :meth:`aigw_sidecar.governance.Governor.admit` (identify, authorize,
   constrain) with the recorded prompt estimate;
3. **limits and budgets**: :meth:`~aigw_sidecar.governance.Governor.limit` at the call's
   recorded start and :meth:`~aigw_sidecar.governance.Governor.settle` at its recorded end
   (an idempotent replay reserves nothing, as in the sidecar: that step runs before limits),
   every call's events in timestamp order on one memory store under a manual clock, so
   rate limits, concurrency and budgets (with their fallback routes) see the traffic as it
   happened; a call settles to its recorded usage at the serving backend's prices;
4. **backend**: the recorded backend when the final route still has it with a positive
   weight, else the final route's heaviest backend (the first among equals): a
   deterministic stand-in for the weighted pick;
5. **cache eligibility**: the cache step's own rule
   (:func:`aigw_sidecar.cache.eligibility.cache_eligible`) on the final use case's ``cache``
   settings, the recorded operation, the admitted data classification and a recorded
   ``Cache-Control: no-store`` (the cache's ``cache_bypass_no_store`` decision).

Projected cost: the recorded usage at the candidate backend's prices (a call blocked under
the candidate costs nothing; one newly allowed has no recorded usage, so its worst-case
estimate is reported apart). Records of calls refused before their claims were known
(malformed bodies, bare records) or by steps the trail cannot re-run without the prompt
(inspection) keep their recorded outcome and are counted as not re-evaluated.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from aigw_contract import Bundle, DataClassification
from aigw_contract.bundle import BundleRoute
from aigw_sidecar.cache.eligibility import ASKED_OUTCOMES, cache_eligible
from aigw_sidecar.claims import QUALITY_TIER
from aigw_sidecar.context import RequestContext
from aigw_sidecar.errors import SidecarError
from aigw_sidecar.governance import (
    NANO,
    Admission,
    BundleView,
    Denied,
    Governor,
    Grant,
    MemoryStore,
    PodIdentity,
    Prices,
    Usage,
)
from aigw_sidecar.governance.claims import Claims
from aigw_sidecar.governance.clock import ManualClock
from aigw_sidecar.governance.grants import GovernanceSettings
from aigw_sidecar.governance.money import usd_to_nano
from aigw_sidecar.keys import CLAIMS, GOVERNANCE_VIEW
from aigw_sidecar.runtime import RuntimeConfig, build_runtime
from aigw_sidecar.steps import ResolveRoute

__all__ = ["Outcome", "Simulation", "outcome_of_record", "simulate"]

_GOVERNANCE_STEPS = frozenset({"route", "admit", "identify", "authorize", "constrain", "limit"})
_NO_SECRETS = Path("/nonexistent/aigw-replay-secrets")
_HOLD_S = 86_000.0
"""Reservations are held until the recorded end of the call (settled then), not renewed:
just under the stores' one-day bound on a hold."""


@dataclass
class Outcome:
    """What one call did (recorded) or would do (simulated)."""

    allowed: bool
    reason: str = ""
    """The code that blocked it (``budget_exceeded``, ``route_not_allowed``, ...)."""
    route: str | None = None
    backend: str | None = None
    cost_nano: int = 0
    estimate_nano: int = 0
    """The admission's worst-case cost estimate (newly allowed calls have no usage)."""
    cache_eligible: bool = False
    evaluated: bool = True
    """False: kept as recorded (not re-evaluable offline)."""
    tenant: str | None = None
    use_case: str | None = None


def _nano(text: object) -> int:
    return usd_to_nano(Decimal(str(text))) if text not in (None, "") else 0


def replayable(record: dict[str, Any]) -> bool:
    request = record.get("request")
    return (
        record.get("kind") == "call"
        and isinstance(request, dict)
        and isinstance(request.get("claims"), dict)
        and isinstance(request.get("prompt_tokens"), int)
        and isinstance(record.get("requested_model"), str)
        and not _blocked_by_other_steps(record)
    )


def _blocked_by_other_steps(record: dict[str, Any]) -> bool:
    return any(
        d.get("action") == "blocked" and d.get("step") not in _GOVERNANCE_STEPS
        for d in record.get("decisions") or ()
    )


def outcome_of_record(record: dict[str, Any]) -> Outcome:
    """The outcome the record states (the baseline without ``--baseline``)."""
    blocked = next((d for d in record.get("decisions") or () if d.get("action") == "blocked"), None)
    reason = ""
    if blocked is not None:
        reason = str(blocked.get("code") or blocked.get("step"))
    elif record.get("error_code") == "model_not_found":
        reason = "model_not_found"
    request = record.get("request") or {}
    return Outcome(
        allowed=not reason,
        reason=reason,
        route=record.get("route"),
        backend=record.get("backend"),
        cost_nano=_nano(record.get("cost_usd")),
        estimate_nano=_nano(request.get("cost_estimate_usd")),
        cache_eligible=record.get("cache") in ASKED_OUTCOMES,
        evaluated=replayable(record),
        tenant=record.get("tenant"),
        use_case=record.get("use_case"),
    )


def _no_store(record: dict[str, Any]) -> bool:
    """The caller said ``Cache-Control: no-store`` (the record keeps it as the cache's
    bypass decision; no other header is recorded)."""
    return any(d.get("code") == "cache_bypass_no_store" for d in record.get("decisions") or ())


def _epoch(text: object) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _claims(raw: dict[str, Any]) -> Claims:
    classification = raw.get("data_classification")
    max_cost = raw.get("max_cost_usd")
    return Claims(
        tenant=raw.get("tenant"),
        use_case=raw.get("use_case"),
        data_classification=DataClassification(classification) if classification else None,
        max_cost_nusd=_nano(max_cost) if max_cost is not None else None,
        max_latency_ms=raw.get("max_latency_ms"),
        quality_tier=raw.get("quality_tier"),
        region=raw.get("region"),
    )


def _body(record: dict[str, Any]) -> dict[str, Any]:
    request = record["request"]
    body: dict[str, Any] = {"input": ""} if record.get("operation") == "embeddings" else {}
    if "input" not in body:
        body["messages"] = []
    if request.get("max_tokens"):
        body["max_tokens"] = request["max_tokens"]
    if request.get("n", 1) != 1:
        body["n"] = request["n"]
    tools = request.get("tools") or []
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": t}} for t in tools]
    return body


def _usage(record: dict[str, Any]) -> Usage | None:
    raw = record.get("usage")
    if not isinstance(raw, dict):
        return None
    return Usage(
        int(raw.get("input") or 0),
        int(raw.get("output") or 0),
        int(raw.get("cached") or 0),
        int(raw.get("cache_write") or 0),
    )


def _backend(route: BundleRoute, recorded: str | None) -> str | None:
    live = [b for b in route.backends if b.weight > 0] or list(route.backends)
    for backend in live:
        if backend.name == recorded:
            return backend.name
    if not live:
        return None
    heaviest = max(b.weight for b in live)
    return next(b.name for b in live if b.weight == heaviest)


def _pod(record: dict[str, Any]) -> PodIdentity:
    pod = record.get("pod") or {}
    labels = pod.get("labels") or {}
    return PodIdentity(
        pod.get("namespace"),
        str(pod.get("service_account") or "default"),
        {str(k): str(v) for k, v in labels.items()},
    )


@dataclass
class _Pending:
    record: dict[str, Any]
    outcome: Outcome
    grant: Grant | None = None
    prices: Prices | None = None


@dataclass
class Simulation:
    """One bundle's engine over a whole trail: governors per pod, one store, one clock."""

    bundle: Bundle
    clock: ManualClock = field(default_factory=lambda: ManualClock(0.0))
    store: MemoryStore = field(default_factory=MemoryStore)
    _governors: dict[str, tuple[Governor, BundleView, RuntimeConfig]] = field(default_factory=dict)

    def _governor(self, pod: PodIdentity) -> tuple[Governor, BundleView, RuntimeConfig]:
        """The engine of one recorded pod: its governor, its view of the bundle, and a
        runtime config prepared with that view (the route step reads it)."""
        key = repr((pod.namespace, pod.service_account, sorted(pod.labels.items())))
        found = self._governors.get(key)
        if found is None:
            governor = Governor(
                pod,
                self.store,
                clock=self.clock,
                settings=GovernanceSettings(lease_seconds=_HOLD_S),
            )
            view = governor.view(self.bundle)
            runtime = build_runtime(self.bundle, _NO_SECRETS)
            runtime.prepared[GOVERNANCE_VIEW] = view
            found = self._governors[key] = (governor, view, runtime)
        return found

    async def _route(self, record: dict[str, Any], runtime: RuntimeConfig) -> str:
        """The sidecar's own route step on the recorded model and claims: a route name, or
        raises the refusal it would answer (unknown model, family outside the use case,
        tier mismatch, ambiguous intent)."""
        claims = _claims(record["request"]["claims"])
        headers: CIMultiDict[str] = CIMultiDict()
        if claims.quality_tier is not None:
            headers[QUALITY_TIER] = claims.quality_tier
        ctx = RequestContext(
            request_id=str(record.get("id")),
            api="openai",
            operation="embeddings" if record.get("operation") == "embeddings" else "chat",
            headers=CIMultiDictProxy(headers),
            config=runtime,
            started=0.0,
            body={"model": record["requested_model"]},
        )
        ctx.state[CLAIMS] = claims
        await ResolveRoute().on_request(ctx)
        assert ctx.route is not None
        return ctx.route.name

    async def start(self, record: dict[str, Any]) -> _Pending:
        """Routing, admission and the reservation of one call at its start."""
        outcome = Outcome(allowed=False)
        pending = _Pending(record, outcome)
        governor, view, runtime = self._governor(_pod(record))
        try:
            route_name = await self._route(record, runtime)
        except SidecarError as refused:
            outcome.reason = refused.code
            return pending
        try:
            admission: Admission = governor.admit(
                view,
                request_id=str(record.get("id")),
                body=_body(record),
                route=route_name,
                claims=_claims(record["request"]["claims"]),
                prompt_tokens=record["request"]["prompt_tokens"],
            )
            outcome.tenant = admission.identity.tenant
            outcome.use_case = admission.identity.use_case.name
            outcome.estimate_nano = admission.constraints.estimated_cost_nusd
            grant: Grant | None = None
            if record.get("answered_by") != "idempotency":  # a replay reserves nothing
                grant = await governor.limit(view, admission)
        except Denied as denied:
            outcome.reason = denied.code
            return pending
        final = admission.route
        spec = next(r for r in self.bundle.routes if r.name == final)
        backend = _backend(spec, record.get("backend"))
        outcome.allowed = True
        outcome.route = final
        outcome.backend = backend
        prices = view.backend_prices.get((final, backend or ""))
        usage = _usage(record)
        if usage is not None and prices is not None:
            outcome.cost_nano = prices.cost_of(usage)
        outcome.cache_eligible = cache_eligible(
            admission.identity.use_case.cache,
            str(record.get("operation")),
            admission.classification,
            no_store=_no_store(record),
        )
        pending.grant, pending.prices = grant, prices
        return pending

    async def finish(self, pending: _Pending) -> None:
        """The settlement at the call's end: its recorded usage, or a release."""
        if pending.grant is None:
            return
        usage = _usage(pending.record)
        governor, _, _ = self._governor(_pod(pending.record))
        await governor.settle(pending.grant, usage, pending.prices)

    async def close(self) -> None:
        for governor, _, _ in self._governors.values():
            await governor.aclose()


async def _run(bundle: Bundle, records: list[dict[str, Any]]) -> list[Outcome]:
    simulation = Simulation(bundle)
    outcomes: list[Outcome] = [outcome_of_record(r) for r in records]
    events: list[tuple[float, int, int, int]] = []  # (time, 0 settle | 1 start, seq, index)
    seq = itertools.count()
    for index, record in enumerate(records):
        if outcomes[index].evaluated:
            heapq.heappush(events, (_epoch(record["time"]), 1, next(seq), index))
    pending: dict[int, _Pending] = {}
    try:
        while events:
            when, kind, _, index = heapq.heappop(events)
            simulation.clock.set(when)
            if kind == 1:
                started = await simulation.start(records[index])
                outcomes[index] = started.outcome
                pending[index] = started
                end = _epoch(records[index].get("end_time") or records[index]["time"])
                heapq.heappush(events, (max(end, when), 0, next(seq), index))
            else:
                await simulation.finish(pending.pop(index))
    finally:
        await simulation.close()
    return outcomes


def simulate(bundle: Bundle, records: list[dict[str, Any]]) -> list[Outcome]:
    """Every record's outcome under ``bundle`` (records in any order; time decides)."""
    return asyncio.run(_run(bundle, records))


def call_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The call records of a trail, oldest first (by start time)."""
    calls = [r for r in records if r.get("kind") == "call" and isinstance(r.get("time"), str)]
    calls.sort(key=lambda r: (r["time"], str(r.get("id"))))
    return calls


def usd(nano: int) -> str:
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO)
    return f"{sign}{whole}.{frac:09d}"
