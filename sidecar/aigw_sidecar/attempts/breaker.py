"""Attempt middleware: circuit breakers and the provider's back-off, per (route, backend).

Sits at ``Stage.BREAKER``, inside retry/fallback, so it sees every attempt. Before the call
it asks the backend's :class:`~aigw_sidecar.attempts.health.Health` to admit the attempt
(an open circuit, or a half-open one whose probe is in flight, refuses it with 503
``circuit_open``; the picker normally never chooses such a backend, so this only guards
custom pipelines). After the call it records the verdict:

- success (an answer, or a stream's first batch): the circuit closes, the failure count
  resets, the latency average learns the time to headers;
- a health failure (``timeout``, ``upstream_unavailable``, ``upstream_error``, including a
  stream that fails after its first batch): counted, and the circuit opens at
  ``consecutiveFailures`` in a row (or at once after a failed probe);
- a provider back-off (``Retry-After`` and kin on a 429 or 503): the backend is out until
  then (``Health.not_before``) for every request of the route;
- anything else (a 429 without other trouble, a 4xx the provider answered, the caller
  going away): no verdict; a probe that ends so frees the half-open slot.

The thresholds are read from the route's plan at each attempt, so a reload that changes
them applies at once while the state (kept in ``backend_state``) carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from aigw_contract import ErrorClass
from aigw_sidecar.context import Json
from aigw_sidecar.errors import SidecarError, UpstreamFailure, UpstreamUnavailable
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.runtime import AttemptPlan

from .chain import Attempt, AttemptMiddleware, CallNext, Stage, Upstream
from .health import HEALTH, Health

__all__ = ["CircuitBreaker", "health_of"]

_HEALTH_FAILURES = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.UPSTREAM_UNAVAILABLE, ErrorClass.UPSTREAM_ERROR}
)


def health_of(attempt: Attempt, metrics: Metrics | None) -> Health:
    """The attempt's (route, backend) health, made on first use."""
    state = attempt.backend_state
    health = state.get(HEALTH)
    if health is None:
        children = metrics.breaker(attempt.route.name, attempt.backend.name) if metrics else None
        health = state[HEALTH] = Health(children)
    return health


class CircuitBreaker(AttemptMiddleware):
    """Passive health per (route, backend) (see the module docstring)."""

    name = "breaker"
    stage = Stage.BREAKER

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def __call__(self, attempt: Attempt, call_next: CallNext) -> Upstream:
        health = health_of(attempt, self._metrics)
        loop = asyncio.get_running_loop()
        probe = health.admit(loop.time())
        if probe is None:
            attempt.record.outcome = "circuit_open"
            attempt.record.code = "circuit_open"
            raise UpstreamUnavailable(
                f"backend {attempt.backend.name} is failing (circuit open)", code="circuit_open"
            )
        plan = attempt.route.plan
        try:
            upstream = await call_next(attempt)
        except UpstreamFailure as exc:
            now = loop.time()
            if exc.wait_s is not None:
                health.back_off(
                    now, exc.wait_s, rate_limited=exc.error_class is ErrorClass.RATE_LIMITED
                )
            _judge(health, exc, plan, now, probe=probe)
            raise
        except SidecarError:  # the provider answered (a 4xx): it is up
            health.succeeded(None)
            raise
        except BaseException:
            if probe:
                health.released()
            raise
        if upstream.chunks is None:
            health.succeeded(attempt.record.latency_s)
        else:
            # A stream's head is not yet health: a backend that cuts every stream mid-way
            # would otherwise reset the failure count with each new stream's first bytes and
            # never trip the breaker under concurrency. Only a stream that ends cleanly counts.
            upstream.chunks = _watched(upstream.chunks, attempt, health, probe=probe)
        return upstream


async def _watched(
    chunks: AsyncIterator[list[Json]], attempt: Attempt, health: Health, *, probe: bool
) -> AsyncGenerator[list[Json], None]:
    """A stream whose failure after its first batch still counts against the backend; its
    success counts when it ends cleanly."""
    try:
        async for batch in chunks:
            yield batch
    except UpstreamFailure as exc:
        _judge(health, exc, attempt.route.plan, asyncio.get_running_loop().time(), probe=probe)
        raise
    except BaseException:
        if probe:
            health.released()
        raise
    else:
        health.succeeded(attempt.record.latency_s)
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


def _judge(
    health: Health, exc: UpstreamFailure, plan: AttemptPlan, now: float, *, probe: bool
) -> None:
    """A failed attempt or stream: a health failure counts against the backend; any other
    failure ends a half-open probe without a verdict."""
    if exc.error_class in _HEALTH_FAILURES:
        health.failed(now, plan.breaker_failures, plan.breaker_open_s, probe=probe)
    elif probe:
        health.released()
