"""A minimal retry and fallback middleware: the shape, not the finished feature.

It proves the attempt chain's retry stage: a failure whose ``error_class`` the route's
``retryOn`` lists is tried again, up to ``retry.attempts`` attempts in all, on the next
backend of the route's ``fallback`` order not tried yet (else the same backend), after a
full-jitter exponential backoff (``backoffBaseMs``, capped by ``backoffMaxMs``). A provider's
``Retry-After`` longer than ``backoffMaxMs``, or a pause that would pass the request
deadline, ends retrying. Anything else fails at once.

Not in the default pipeline yet: the resilience work (breakers, Retry-After budgets,
idempotency, hedging) owns retry behaviour and turns it on; tests add it explicitly.
"""

from __future__ import annotations

import asyncio
import random

from aigw_sidecar.errors import UpstreamFailure
from aigw_sidecar.runtime import AttemptPlan

from .chain import Attempt, AttemptMiddleware, CallNext, Stage, Upstream

__all__ = ["RetryFallback", "backoff_seconds"]


def backoff_seconds(
    plan: AttemptPlan, failed_attempts: int, rng: random.Random, retry_after: int | None
) -> float | None:
    """The pause before the next attempt, or None when retrying should stop."""
    if retry_after is not None and retry_after > plan.backoff_max_s:
        return None
    ceiling = min(plan.backoff_max_s, plan.backoff_base_s * 2 ** (failed_attempts - 1))
    pause = rng.uniform(0, ceiling)
    return max(pause, float(retry_after or 0))


class RetryFallback(AttemptMiddleware):
    """Retry retryable failures per the route's plan, moving along its fallback order."""

    name = "retry"
    stage = Stage.RETRY

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    async def __call__(self, attempt: Attempt, call_next: CallNext) -> Upstream:
        plan = attempt.route.plan
        while True:
            try:
                return await call_next(attempt)
            except UpstreamFailure as exc:
                ctx = attempt.ctx
                if attempt.number >= plan.attempts or not plan.retryable(exc.error_class):
                    raise
                pause = backoff_seconds(plan, attempt.number, self._rng, exc.retry_after)
                loop = asyncio.get_running_loop()
                if pause is None or loop.time() + pause >= ctx.deadline:
                    raise
                if pause > 0:
                    await asyncio.sleep(pause)
                tried = {record.backend for record in ctx.attempts}
                attempt = attempt.retry(plan.next_backend(tried, attempt.backend))
