"""Step: the GenAI client metrics and the per-tenant families of every call (always on).

Runs in ``Phase.OBSERVE`` and does its work in ``on_finish``, when everything is known:

- per upstream attempt that called a backend: ``gen_ai_client_inference_duration_seconds``
  (request to the end of the answer or the failure, ``error_type`` set on failure: the same
  span the client span covers) and, for streams,
  ``gen_ai_client_inference_time_to_first_chunk_seconds``;
- for the attempt that answered: the token counters by type (input, output, cache read,
  cache write) and the per-operation token histograms;
- per request with a route: ``aigw_cache_requests_total{route,cache}`` (the cache hit rate);
- per request with an identity: ``aigw_tenant_requests_total``, ``aigw_tenant_tokens_total``,
  ``aigw_tenant_cost_usd_total`` and the budgets' ``aigw_budget_used_ratio``, with the
  tenant cap of :class:`~aigw_sidecar.telemetry.GenAiMetrics`.

An answer from a step (a cache hit) called no backend: no inference metric, but it counts as
a tenant request.
"""

from __future__ import annotations

import asyncio

from aigw_sidecar.context import RequestContext
from aigw_sidecar.governance import NANO, Usage
from aigw_sidecar.keys import GRANT, IDENTITY
from aigw_sidecar.loopmetrics import Counter
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.telemetry import GenAiMetrics
from aigw_sidecar.telemetry import semconv as sc

__all__ = ["GenAiMetricsStep"]

_NOT_CALLED = ("circuit_open", "pending")
_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
"""``status // 100`` -> the status class label; anything else (0, 600+) is ``other``."""


class GenAiMetricsStep(Step):
    """Records the metrics of the module docstring when a request ends."""

    name = "telemetry.metrics"
    phase = Phase.OBSERVE + 1

    def __init__(self, metrics: GenAiMetrics) -> None:
        self._metrics = metrics
        self._requests: dict[tuple[str, str, str], Counter] = {}
        """``aigw_tenant_requests_total`` children by their (capped) label values."""
        self._spend: dict[tuple[str, str], tuple[Counter, Counter, Counter]] = {}
        """The prompt-token, completion-token and cost children of a (capped) pair."""

    async def on_finish(self, ctx: RequestContext) -> None:
        operation = sc.OPERATIONS[ctx.operation]
        self._attempts(ctx, operation)
        usage = ctx.usage if ctx.answered_by is None else None
        backend = ctx.backend
        if usage is not None and backend is not None:
            self._usage(usage, operation, backend.provider.value, backend.model)
        if ctx.route is not None:
            self._metrics.cache_requests.labels(ctx.route.name, ctx.cache).inc()
        identity = ctx.state.get(IDENTITY)
        if identity is not None:
            self._tenant(ctx, identity.tenant, identity.use_case.name, usage)

    def _attempts(self, ctx: RequestContext, operation: str) -> None:
        metrics = self._metrics
        for record in ctx.attempts:
            if record.outcome in _NOT_CALLED:
                continue
            provider = sc.PROVIDER_NAMES.get(record.provider, record.provider)
            error = "" if record.outcome == "ok" else record.outcome
            duration, legacy = metrics.durations(operation, provider, record.model, error)
            ended = record.ended
            if ended is None:
                ended = asyncio.get_running_loop().time()
            seconds = ended - record.started
            duration.observe(seconds)
            if legacy is not None:
                legacy.observe(seconds)
            if record.first_chunk_s is not None:
                children = metrics.inference(operation, provider, record.model)
                children.first_chunk.observe(record.first_chunk_s)
                if children.legacy_first_chunk is not None:
                    children.legacy_first_chunk.observe(record.first_chunk_s)

    def _usage(self, usage: Usage, operation: str, provider: str, model: str) -> None:
        children = self._metrics.inference(
            operation, sc.PROVIDER_NAMES.get(provider, provider), model
        )
        children.input.inc(usage.prompt_tokens)
        children.output.inc(usage.completion_tokens)
        if usage.cached_tokens:
            children.cache_read.inc(usage.cached_tokens)
        if usage.cache_write_tokens:
            children.cache_write.inc(usage.cache_write_tokens)
        children.input_dist.observe(usage.prompt_tokens)
        children.output_dist.observe(usage.completion_tokens)
        if children.legacy_input is not None and children.legacy_output is not None:
            children.legacy_input.observe(usage.prompt_tokens)
            children.legacy_output.observe(usage.completion_tokens)

    def _tenant(
        self, ctx: RequestContext, tenant_name: str, use_case_name: str, usage: Usage | None
    ) -> None:
        metrics = self._metrics
        pair = metrics.tenant(tenant_name, use_case_name)
        tenant, use_case = pair
        labels = (tenant, use_case, _STATUS_CLASSES.get(ctx.status // 100, "other"))
        requests = self._requests.get(labels)
        if requests is None:
            requests = self._requests[labels] = metrics.tenant_requests.labels(*labels)
        requests.inc()
        if usage is not None:
            spend = self._spend.get(pair)
            if spend is None:
                spend = self._spend[pair] = (
                    metrics.tenant_tokens.labels(tenant, use_case, "prompt"),
                    metrics.tenant_tokens.labels(tenant, use_case, "completion"),
                    metrics.tenant_cost.labels(tenant, use_case),
                )
            prompt, completion, cost = spend
            prompt.inc(usage.prompt_tokens)
            completion.inc(usage.completion_tokens)
            if ctx.cost_nano:
                cost.inc(ctx.cost_nano / NANO)
        grant = ctx.state.get(GRANT)
        if grant is None:
            return
        for counter, role, level in zip(grant.counters, grant.roles, grant.levels, strict=True):
            if role.budget is not None and counter.limit > 0:
                metrics.budget_used.labels(counter.name, tenant, use_case).set(
                    level / counter.limit
                )
