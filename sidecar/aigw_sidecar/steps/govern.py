"""Steps: governance before the call (identify, authorize, constrain, limit) and its
settlement after (reconcile usage and cost, streams and failures included).

Before the call :class:`Govern` runs the engine (:mod:`aigw_sidecar.governance`) on the
canonical request: a refused request raises the matching sidecar error (403
``permission_denied``, 429 ``rate_limited``/``budget_exceeded`` with ``Retry-After``, 400
``cost_limit_exceeded``, 503 when shared state is down and the policy fails closed). An
admitted one gets its ``max_tokens`` clamped, its deadline tightened, its route switched to
a budget's fallback route when the budget is spent, and the headers ``X-AIGW-Warning``
(warn mode) and ``X-AIGW-Budget-Remaining-Tokens``/``-USD``.

After the call the reservation is settled exactly once: to the provider's usage; for a
stream without usage, to the prompt estimate plus the streamed output counted here; for a
failed call, to nothing (the reservation is released); for a stream cut mid-way, to what
was streamed. Reservations are keyed by the sidecar's own request id. With Redis state the
settlement runs in a background task, so the answer does not wait for that round trip
(shutdown waits for them); a request right behind may briefly see the worst case still
reserved, which errs on the safe side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aigw_contract import Bundle
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
    Decision,
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
    TokenCounter,
    Usage,
    Verdict,
    format_usd,
)
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Step
from aigw_sidecar.runtime import RuntimeConfig
from aigw_sidecar.settings import SidecarSettings

__all__ = ["Govern", "build_governor", "error_of", "with_governance"]

_ERRORS: dict[DenyKind, type[SidecarError]] = {
    DenyKind.INVALID_REQUEST: InvalidRequest,
    DenyKind.PERMISSION_DENIED: PermissionDenied,
    DenyKind.RATE_LIMITED: RateLimited,
    DenyKind.BUDGET_EXCEEDED: BudgetExceeded,
    DenyKind.COST_LIMIT_EXCEEDED: CostLimitExceeded,
    DenyKind.STATE_UNAVAILABLE: UpstreamUnavailable,
}
_ESTIMATE = EstimateCounter()
_log = logging.getLogger("aigw.governance")


def error_of(denied: Denied) -> SidecarError:
    """The sidecar error a governance refusal is rendered as."""
    return _ERRORS[denied.kind](denied.message, code=denied.code, retry_after=denied.retry_after)


@dataclass(slots=True)
class _Held:
    grant: Grant
    view: BundleView
    """The bundle's view the request started under (a reload mid-request changes nothing)."""
    output_tokens: int = 0
    """Streamed output counted here, for providers that report no usage."""


class Govern(Step):
    """Identify, authorize, constrain and reserve; settle when the request is over."""

    name = "govern"

    def __init__(self, governor: Governor, observer: PrometheusObserver | None = None) -> None:
        self.governor = governor
        self._observer = observer
        self._view: tuple[Bundle, BundleView] | None = None
        self._held: dict[str, _Held] = {}
        self._background = not isinstance(governor.store, MemoryStore)
        self._settling: set[asyncio.Task[None]] = set()

    def prepare(self, config: RuntimeConfig) -> BundleView:
        """The engine's view of a new bundle (its policy for this pod, route prices)."""
        return self.governor.view(config.bundle)

    def view(self, config: RuntimeConfig) -> BundleView:
        """The view prepared for ``config`` (built here if it was loaded without it)."""
        view = config.prepared.get(self.name)
        if isinstance(view, BundleView):
            return view
        cached = self._view
        if cached is not None and cached[0] is config.bundle:
            return cached[1]
        view = self.governor.view(config.bundle)
        self._view = (config.bundle, view)
        return view

    async def on_request(self, ctx: RequestContext) -> None:
        view = self.view(ctx.config)
        try:
            admission = self.governor.admit(
                view,
                request_id=ctx.request_id,
                body=ctx.body,
                route=ctx.requested_model,
                headers=ctx.headers,
            )
            constraints = admission.constraints
            if constraints.clamp_to is not None:
                key = (
                    "max_completion_tokens" if "max_completion_tokens" in ctx.body else "max_tokens"
                )
                ctx.body[key] = constraints.clamp_to
            if constraints.deadline_ms is not None:
                ctx.deadline = min(ctx.deadline, ctx.started + constraints.deadline_ms / 1000)
            grant = await self.governor.limit(view, admission)
        except Denied as denied:
            ctx.decisions.append(
                AuditDecision(self.name, "deny", f"{denied.code}: {denied.message}")
            )
            if self._observer is not None:
                self._observer.decision(
                    Decision(denied.step, denied.code, denied.message, Verdict.BLOCKED)
                )
            raise error_of(denied) from None
        for decision in admission.decisions:
            ctx.decisions.append(
                AuditDecision(decision.step, decision.verdict.value, decision.message)
            )
            if self._observer is not None:
                self._observer.decision(decision)
        if grant.degraded_to is not None:
            route = ctx.config.routes.get(grant.degraded_to)
            if route is not None:
                ctx.route = route
                ctx.response_headers["X-AIGW-Route"] = route.name
                ctx.decisions.append(
                    AuditDecision(self.name, "route", f"budget spent: {route.name}")
                )
        headers = ctx.response_headers
        warnings = admission.warnings
        if warnings:
            # Messages may quote caller-supplied claims: keep the header printable ASCII.
            text = "; ".join(warnings)[:1000].encode("ascii", "backslashreplace").decode()
            headers["X-AIGW-Warning"] = "".join(c if c.isprintable() else "?" for c in text)
        _budget_headers(grant, headers)
        if grant.store is not None:
            self._held[ctx.request_id] = _Held(grant, view)

    def on_chunk(self, ctx: RequestContext, chunk: Json) -> Json | None:
        if ctx.usage is None:
            held = self._held.get(ctx.request_id)
            if held is not None:
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta")
                    if delta:
                        held.output_tokens += _message_tokens(delta)
        return chunk

    async def on_response(self, ctx: RequestContext) -> None:
        held = self._held.pop(ctx.request_id, None)
        if held is None:
            return
        usage = ctx.usage
        if usage is not None and not ctx.usage_estimated:
            actual = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        else:
            if ctx.response is not None:  # a complete answer without usage: count its output
                held.output_tokens = _response_output_tokens(ctx.response)
            actual = Usage(held.grant.admission.constraints.prompt_tokens, held.output_tokens)
        if await self._settle(ctx, held, actual) and not ctx.stream:
            _budget_headers(held.grant, ctx.response_headers)

    async def on_finish(self, ctx: RequestContext) -> None:
        held = self._held.pop(ctx.request_id, None)
        if held is None:
            return
        # Not settled by on_response: the call failed or the stream was cut. What was
        # streamed was produced (and billed); a call that produced nothing is released.
        prompt = held.grant.admission.constraints.prompt_tokens
        await self._settle(
            ctx, held, Usage(prompt, held.output_tokens) if held.output_tokens else None
        )

    async def _settle(self, ctx: RequestContext, held: _Held, usage: Usage | None) -> bool:
        """Settle now (memory state: no I/O) or in the background (shared state: a round
        trip the answer need not wait for). True when it is already done."""
        prices = None
        if ctx.route is not None and ctx.backend is not None:
            prices = held.view.backend_prices.get((ctx.route.name, ctx.backend.name))
        settling = self.governor.settle(held.grant, usage, prices)
        if not self._background:
            await settling
            return True
        task = asyncio.create_task(settling)
        self._settling.add(task)
        task.add_done_callback(self._settled)
        return False

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("settling a reservation failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for background settlements (shutdown), then close the shared store."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self.governor.aclose()


def _budget_headers(grant: Grant, headers: dict[str, str]) -> None:
    tokens, money = grant.budget_remaining()
    if tokens is not None:
        headers["X-AIGW-Budget-Remaining-Tokens"] = str(tokens)
    if money is not None:
        headers["X-AIGW-Budget-Remaining-USD"] = format_usd(money)


def build_governor(settings: SidecarSettings, metrics: Metrics) -> Govern:
    """The governance step of one sidecar: its pod identity, state store and metrics."""
    pod = PodIdentity(settings.pod_namespace, settings.service_account, dict(settings.pod_labels))
    store: Store
    if settings.redis_url:
        store = RedisStore.from_url(settings.redis_url, timeout=settings.redis_timeout_s)
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
    return Govern(governor, observer)


def with_governance(steps: Sequence[Step], govern: Govern) -> list[Step]:
    """``steps`` with governance right after route resolution (first if there is none)."""
    out = list(steps)
    names = [s.name for s in out]
    out.insert(names.index("route") + 1 if "route" in names else 0, govern)
    return out


def _message_tokens(message: Json) -> int:
    """Estimated tokens of a message or stream delta: its text and tool-call arguments."""
    tokens = 0
    text = message.get("content")
    if isinstance(text, str) and text:
        tokens += _ESTIMATE.count(text)
    for call in message.get("tool_calls") or ():
        args = (call.get("function") or {}).get("arguments")
        if isinstance(args, str) and args:
            tokens += _ESTIMATE.count(args)
    return tokens


def _response_output_tokens(response: Json) -> int:
    """Estimated output tokens of a complete chat completion (no usage reported)."""
    return sum(_message_tokens(c.get("message") or {}) for c in response.get("choices") or ())
