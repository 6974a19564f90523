"""Attempt middleware: retries and fallbacks under the route's retry policy and the deadline.

Sits at ``Stage.RETRY``, outermost, and drives every attempt of a request:

- the **first backend** comes from the :class:`~aigw_sidecar.attempts.select.Picker`
  (weighted, skipping open circuits, backends backing off and backends residency rules
  out; all open: 503 ``circuit_open`` with ``Retry-After``, without calling upstream);
- a failure is retried only when its class is in ``retryOn`` (``rate_limited``,
  ``timeout``, ``upstream_unavailable``, ``upstream_error``); anything else (the caller's
  request refused by the provider, a credential the provider refused with a 4xx mapped to
  ``invalid_request``, content blocked) fails at once;
- at most ``attempts`` upstream attempts in all, the first included (an attempt refused by
  an open circuit before it reached upstream does not count);
- the next backend is the first untried one of ``fallback`` (at once), else a retry of a
  tried one after a full-jitter exponential pause that never ends before the provider's
  ``Retry-After``; nothing starts that cannot finish before the deadline (the picker's
  rules, :mod:`.select`).

Streams are retried and fallen back as long as the caller has no byte: the terminal reads a
stream's first batch inside the attempt, so a stream that fails before it is a failed
attempt; once a batch is out, a failure ends the stream with an error event in the caller's
format (the handler), recorded on the context for the audit record.

Metrics: ``aigw_upstream_retries_total{route,backend,error_class}``,
``aigw_upstream_fallbacks_total{route,from_backend,to_backend}``,
``aigw_upstream_retry_stops_total{route,reason}``, ``aigw_request_attempts{route}``; the
response carries ``X-AIGW-Attempts`` and the final ``X-AIGW-Backend``.
"""

from __future__ import annotations

import asyncio
import random

from aigw_sidecar.context import RequestContext
from aigw_sidecar.errors import SidecarError, UpstreamFailure
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.runtime import RuntimeBackend, RuntimeRoute

from .chain import Attempt, AttemptMiddleware, BackendStates, CallNext, Stage, Upstream
from .select import Choice, Picker

__all__ = ["RetryFallback", "upstream_attempts"]


def upstream_attempts(ctx: RequestContext) -> int:
    """Attempts of ``ctx`` that reached (or were on their way to) upstream."""
    return sum(1 for record in ctx.attempts if record.outcome != "circuit_open")


class RetryFallback(AttemptMiddleware):
    """Retry retryable failures per the route's plan, moving along its fallback order."""

    name = "retry"
    stage = Stage.RETRY

    def __init__(self, rng: random.Random, metrics: Metrics | None = None) -> None:
        self._rng = rng
        self._metrics = metrics
        self._picker: Picker | None = None

    def _picker_for(self, states: BackendStates) -> Picker:
        picker = self._picker
        if picker is None or picker.states is not states:
            picker = self._picker = Picker(states, self._rng)
        return picker

    async def first_backend(
        self, ctx: RequestContext, route: RuntimeRoute, states: BackendStates
    ) -> RuntimeBackend:
        loop = asyncio.get_running_loop()
        try:
            choice = self._picker_for(states).first(ctx, route, loop.time())
        except SidecarError as exc:  # all circuits open, backing off, residency
            if self._metrics is not None:
                reason = exc.code if isinstance(exc, UpstreamFailure) else "residency"
                self._metrics.refused_attempts.labels(route.name, reason).inc()
            raise
        if choice.pause_s > 0:
            await asyncio.sleep(choice.pause_s)
        return choice.backend

    async def __call__(self, attempt: Attempt, call_next: CallNext) -> Upstream:
        ctx = attempt.ctx
        route = attempt.route
        plan = route.plan
        metrics = self._metrics
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    return await call_next(attempt)
                except UpstreamFailure as exc:
                    made = upstream_attempts(ctx)
                    failed = attempt.backend
                    if not plan.retryable(exc.error_class) and exc.code != "circuit_open":
                        self._stop(route, "not_retryable")
                        raise
                    if made >= plan.attempts:
                        self._stop(route, "attempts_exhausted")
                        raise
                    tried = {r.backend for r in ctx.attempts if r.outcome != "circuit_open"}
                    picker = self._picker_for(attempt.states)
                    choice = picker.next(ctx, route, failed, tried, max(1, made), loop.time())
                    if not isinstance(choice, Choice):
                        self._stop(route, choice)
                        raise
                    if metrics is not None:
                        metrics.retries.labels(route.name, failed.name, exc.error_class).inc()
                        if choice.backend is not failed:
                            metrics.fallbacks.labels(
                                route.name, failed.name, choice.backend.name
                            ).inc()
                    if choice.pause_s > 0:
                        await asyncio.sleep(choice.pause_s)
                    attempt = attempt.retry(choice.backend)
                except SidecarError:  # the provider refused the request itself (a 4xx)
                    self._stop(route, "not_retryable")
                    raise
        finally:
            if metrics is not None:
                metrics.request_attempts.labels(route.name).observe(upstream_attempts(ctx))

    def _stop(self, route: RuntimeRoute, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.retry_stops.labels(route.name, reason).inc()
