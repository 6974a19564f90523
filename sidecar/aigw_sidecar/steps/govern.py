"""Steps: governance before the call (admit: identify, authorize, constrain; limit: reserve
against rate limits and budgets) and its settlement after.

:class:`Admit` (``Phase.ADMIT``) runs the engine (:mod:`aigw_sidecar.governance`) on the
canonical request: a refused request raises the matching sidecar error (403
``permission_denied``, 400 ``cost_limit_exceeded``); an admitted one gets its ``max_tokens``
clamped and its deadline tightened, and publishes ``ctx.state[IDENTITY]`` and
``ctx.state[ADMISSION]``. Per bundle it prepares the engine's view (``GOVERNANCE_VIEW``) and
the ``/v1/models`` list of the routes the governing policy grants (``MODELS``; empty when
no policy governs the pod, since every call would be refused).

:class:`Limit` (``Phase.LIMIT``, after inspection) reserves the worst case (429
``rate_limited``/``budget_exceeded`` with ``Retry-After``, 503 when shared state is down and
the policy fails closed), switches to a spent budget's fallback route, and holds the
reservation in ``ctx.state[GRANT]``. It is settled exactly once: to the call's usage as the
account step computed it (provider-reported, or estimated with the one estimator), to
nothing when no upstream call answered (a failure, or a step such as a cache hit that
answered: not billed), to what was streamed for a stream cut mid-way. With Redis state the
settlement is sent as the call ends and finished when Redis replies, so the answer does not
wait for that round trip (:meth:`~aigw_sidecar.governance.Governor.settle_soon`; shutdown
waits for them).
"""

from __future__ import annotations

import asyncio
import logging

from aigw_sidecar.context import Decision as AuditDecision
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.errors import (
    BudgetExceeded,
    CostLimitExceeded,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    SidecarError,
    UpstreamUnavailable,
)
from aigw_sidecar.governance import (
    BpeCounter,
    BundleView,
    Denied,
    DenyKind,
    EstimateCounter,
    GovernanceSettings,
    Governor,
    Grant,
    MemoryStore,
    PodIdentity,
    PrometheusObserver,
    RedisStore,
    Store,
    TlsSettings,
    TokenCounter,
    Verdict,
    format_usd,
)
from aigw_sidecar.governance import Decision as GovernanceDecision
from aigw_sidecar.keys import ADMISSION, GOVERNANCE_VIEW, GRANT, IDENTITY, MODELS
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeConfig, render_models
from aigw_sidecar.settings import SidecarSettings

from .route import request_claims, route_to

__all__ = ["Admit", "Governance", "Limit", "build_governance", "error_of"]

_ERRORS: dict[DenyKind, type[SidecarError]] = {
    DenyKind.INVALID_REQUEST: InvalidRequest,
    DenyKind.PERMISSION_DENIED: PermissionDenied,
    DenyKind.RATE_LIMITED: RateLimited,
    DenyKind.BUDGET_EXCEEDED: BudgetExceeded,
    DenyKind.COST_LIMIT_EXCEEDED: CostLimitExceeded,
    DenyKind.STATE_UNAVAILABLE: UpstreamUnavailable,
}
_log = logging.getLogger("aigw.governance")


def error_of(denied: Denied) -> SidecarError:
    """The sidecar error a governance refusal is rendered as."""
    return _ERRORS[denied.kind](denied.message, code=denied.code, retry_after=denied.retry_after)


class Governance:
    """One sidecar's governance: the engine, its metrics, and the two steps that use it."""

    def __init__(self, governor: Governor, observer: PrometheusObserver | None = None) -> None:
        self.governor = governor
        self.observer = observer
        self._view: tuple[object, BundleView] | None = None
        self._background = not isinstance(governor.store, MemoryStore)
        self.admit = Admit(self)
        self.limit = Limit(self)

    @property
    def steps(self) -> tuple[Step, Step]:
        return self.admit, self.limit

    def view(self, config: RuntimeConfig) -> BundleView:
        """The view prepared for ``config`` (built here if it was loaded without it)."""
        view = config.prepared.get(GOVERNANCE_VIEW)
        if view is not None:
            return view
        cached = self._view
        if cached is not None and cached[0] is config.bundle:
            return cached[1]
        view = self.governor.view(config.bundle)
        self._view = (config.bundle, view)
        return view

    def record(self, ctx: RequestContext, decisions: list[GovernanceDecision]) -> None:
        for decision in decisions:
            ctx.decisions.append(
                AuditDecision(
                    decision.step, decision.verdict.value, decision.message, decision.code
                )
            )
            if self.observer is not None:
                self.observer.decision(decision)

    async def settle(self, ctx: RequestContext, grant: Grant) -> bool:
        """Settle ``grant`` to the call's usage (none: released), now (memory state: no I/O)
        or in the background (shared state). True when it is already done."""
        usage = ctx.usage if ctx.answered_by is None else None
        prices = ctx.backend.prices if ctx.backend is not None and usage is not None else None
        if not self._background or grant.store is None:  # memory, or a leased block only
            await self.governor.settle(grant, usage, prices)
            return True
        self.governor.settle_soon(grant, usage, prices)
        return False

    async def drain(self) -> None:
        """Wait for background settlements (shutdown), then close the shared store."""
        await self.governor.aclose()  # which waits for the settlements first


def _deny(ctx: RequestContext, step: str, denied: Denied, governance: Governance) -> SidecarError:
    ctx.decisions.append(AuditDecision(step, "blocked", denied.message, denied.code))
    if governance.observer is not None:  # blocked decisions are counted like the others
        decision = GovernanceDecision(denied.step, denied.code, denied.message, Verdict.BLOCKED)
        governance.observer.decision(decision)
    return error_of(denied)


def _warning_header(ctx: RequestContext, warnings: list[str]) -> None:
    if warnings:
        # Messages may quote caller-supplied claims: keep the header printable ASCII.
        text = "; ".join(warnings)[:1000].encode("ascii", "backslashreplace").decode()
        ctx.response_headers["X-AIGW-Warning"] = "".join(
            c if c.isprintable() else "?" for c in text
        )


class Admit(Step):
    """Identify, authorize and constrain."""

    name = "admit"
    phase = Phase.ADMIT

    def __init__(self, governance: Governance) -> None:
        self._g = governance

    def prepare(self, config: RuntimeConfig) -> None:
        view = self._g.governor.view(config.bundle)
        config.prepared[GOVERNANCE_VIEW] = view
        policy = view.index.policy
        if policy is None:
            config.prepared[MODELS] = render_models(config.bundle, [])
            return
        allowed = {route for use_case in policy.use_cases for route in use_case.routes}
        names = [name for name in config.routes if name in allowed]
        names += [alias for alias, route in config.aliases.items() if route in allowed]
        config.prepared[MODELS] = render_models(config.bundle, names)

    async def on_request(self, ctx: RequestContext) -> None:
        view = self._g.view(ctx.config)
        route = ctx.route
        claims = request_claims(ctx)  # 400 for a malformed or repeated claim
        _strip_consumed_claims(ctx.body)
        try:
            admission = self._g.governor.admit(
                view,
                request_id=ctx.request_id,
                body=ctx.body,
                route=route.name if route is not None else ctx.requested_model,
                claims=claims,
            )
        except Denied as denied:
            raise _deny(ctx, self.name, denied, self._g) from None
        constraints = admission.constraints
        if constraints.clamp_to is not None and ctx.operation == "chat":
            key = "max_completion_tokens" if "max_completion_tokens" in ctx.body else "max_tokens"
            ctx.body[key] = constraints.clamp_to
        if constraints.deadline_ms is not None:
            ctx.deadline = min(ctx.deadline, ctx.started + constraints.deadline_ms / 1000)
        ctx.state[ADMISSION] = admission
        ctx.state[IDENTITY] = admission.identity
        self._g.record(ctx, admission.decisions)
        _warning_header(ctx, admission.warnings)

    async def on_finish(self, ctx: RequestContext) -> None:
        admission = ctx.state.get(ADMISSION)
        if admission is None:
            return
        limit = admission.constraints.unenforced_latency_ms
        if limit is None:
            return
        elapsed_ms = (asyncio.get_running_loop().time() - ctx.started) * 1000
        if elapsed_ms > limit:  # observe/warn: enforce would have cut this call here
            decision = GovernanceDecision.for_mode(
                admission.mode,
                "constrain",
                "latency_limit_exceeded",
                f"the call took {elapsed_ms:.0f} ms, past the policy's maxLatencyMs {limit}",
            )
            self._g.record(ctx, [decision])


class Limit(Step):
    """Reserve against rate limits and budgets; settle when the call is over."""

    name = "limit"
    phase = Phase.LIMIT

    def __init__(self, governance: Governance) -> None:
        self._g = governance

    async def on_request(self, ctx: RequestContext) -> None:
        admission = ctx.state.get(ADMISSION)
        if admission is None or ctx.operation == "count_tokens":
            return
        recorded = len(admission.decisions)
        try:
            grant = await self._g.governor.limit(self._g.view(ctx.config), admission)
        except Denied as denied:
            raise _deny(ctx, self.name, denied, self._g) from None
        if len(admission.decisions) > recorded:
            self._g.record(ctx, admission.decisions[recorded:])
        if grant.degraded_to is not None:
            route = ctx.config.routes.get(grant.degraded_to)
            if route is not None:
                route_to(ctx, route, step=self.name, reason=f"budget spent: {route.name}")
        _warning_header(ctx, admission.warnings)
        if grant.counters or grant.share is not None:  # else no budget to report
            _budget_headers(grant, ctx.response_headers)
        if grant.store is not None or grant.share is not None:
            ctx.state[GRANT] = grant

    async def on_response(self, ctx: RequestContext) -> None:
        grant = ctx.state.get(GRANT)
        if grant is None or grant.settled:
            return
        if await self._g.settle(ctx, grant) and not ctx.stream:
            _budget_headers(grant, ctx.response_headers)

    async def on_finish(self, ctx: RequestContext) -> None:
        grant = ctx.state.get(GRANT)
        if grant is not None and not grant.settled:
            # The call failed or the stream was cut: what was streamed was produced (and
            # billed, the account step counted it); a call that produced nothing is released.
            await self._g.settle(ctx, grant)


_BODY_CLAIMS = ("tenant", "use_case")


def _strip_consumed_claims(body: Json) -> None:
    """Remove the ``metadata`` claims governance consumed, so they never reach a provider
    (the rest of ``metadata`` is the caller's own and goes through)."""
    meta = body.get("metadata")
    if isinstance(meta, dict) and any(k in meta for k in _BODY_CLAIMS):
        rest = {k: v for k, v in meta.items() if k not in _BODY_CLAIMS}
        if rest:
            body["metadata"] = rest
        else:
            del body["metadata"]


def _budget_headers(grant: Grant, headers: dict[str, str]) -> None:
    tokens, money = grant.budget_remaining()
    if tokens is not None:
        headers["X-AIGW-Budget-Remaining-Tokens"] = str(tokens)
    if money is not None:
        headers["X-AIGW-Budget-Remaining-USD"] = format_usd(money)


def build_governance(settings: SidecarSettings, metrics: Metrics) -> Governance:
    """The governance of one sidecar: its pod identity, state store, estimator and metrics."""
    pod = PodIdentity(settings.pod_namespace, settings.service_account, dict(settings.pod_labels))
    store: Store
    if settings.redis_url:
        tls = TlsSettings(
            ca_file=settings.redis_tls_ca_file,
            cert_file=settings.redis_tls_cert_file,
            key_file=settings.redis_tls_key_file,
            server_name=settings.redis_tls_server_name,
        )
        store = RedisStore.from_url(settings.redis_url, timeout=settings.redis_timeout_s, tls=tls)
    else:
        store = MemoryStore()
    observer = PrometheusObserver(metrics.registry)
    counter: TokenCounter = EstimateCounter()
    if settings.tokenizer != "estimate":
        try:
            counter = BpeCounter(settings.tokenizer)
        except (ImportError, ValueError, KeyError) as exc:
            _log.warning(
                "tokenizer %r unavailable (%s): using the conservative estimate",
                settings.tokenizer,
                exc,
            )
    tunables = GovernanceSettings(lease_seconds=settings.lease_s)
    governor = Governor(pod, store, settings=tunables, counter=counter, observer=observer)
    return Governance(governor, observer)
