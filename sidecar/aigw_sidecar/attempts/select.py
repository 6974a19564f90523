"""Which backend an attempt goes to: the route's plan, filtered by health and residency.

A backend is *usable* for a request when the request's :class:`BackendFilter` allows it
(residency: ``ctx.state[BACKEND_FILTER]``, set by the residency step) and its circuit lets
an attempt through (:class:`~aigw_sidecar.attempts.health.Health`). A usable backend is
*ready* unless the provider asked for a pause that has not passed yet (``Retry-After``).

First attempt (:meth:`Picker.first`): weighted-random among the ready backends with weight
> 0, the weights of those left renormalised (an open 99% backend leaves its 1% canary with
all the traffic); none: the first ready backend of the route's ``fallback`` order (weight-0
backends included); none ready but some usable: wait for the earliest one's pause when it
ends within ``backoffMaxMs`` and the deadline, else fail fast with the provider's own error
type (429 ``rate_limited`` or 503 ``upstream_unavailable``, ``backend_backing_off``) and the
remaining ``Retry-After``; none usable: every allowed backend's circuit is open, 503
``upstream_unavailable`` (``circuit_open``) with ``Retry-After`` until the first one may
probe; none allowed at all: the filter's refusal (403 ``permission_denied`` naming the rule).

Next attempt (:meth:`Picker.next`): the first ready backend of ``fallback`` not tried yet by
this request goes at once (a fallback has not been stressed by this request); else the
backends already tried (the failed one first, then the fallback order) are retried after a
full-jitter exponential pause (``backoffBaseMs`` * 2^(failures-1), at most
``backoffMaxMs``) and never before their provider's ``Retry-After`` (a fallback still
backing off is waited for the same way), the soonest first; a pause the provider wants
longer than ``backoffMaxMs`` rules that backend out. Only when none of those can be tried
(circuits open, pauses too long) does another weighted backend of the route get the retry,
at once: the fallback order is the admin's, and a canary must not inherit a failing
primary's traffic while the primary can still be retried. No attempt starts that cannot
finish in time: the pause plus the backend's recent time to answer must end before the
deadline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from aigw_sidecar.context import RequestContext
from aigw_sidecar.errors import SidecarError, UpstreamRateLimited, UpstreamUnavailable
from aigw_sidecar.runtime import RuntimeBackend, RuntimeRoute
from aigw_sidecar.state import Key

from .chain import BackendStates
from .health import HEALTH, Circuit, Health

__all__ = ["BACKEND_FILTER", "BackendFilter", "Choice", "Picker"]


class BackendFilter(Protocol):
    """Which backends a request may reach (residency); set per request by a step."""

    def allows(self, backend: RuntimeBackend) -> bool: ...

    def refusal(self, route: RuntimeRoute) -> SidecarError:
        """The error when no backend of ``route`` is allowed."""
        ...


BACKEND_FILTER = Key[BackendFilter]("resilience.backend_filter")


@dataclass(frozen=True, slots=True)
class Choice:
    """The backend of the next attempt and the pause before it (seconds)."""

    backend: RuntimeBackend
    pause_s: float = 0.0


def _ready(
    allowed: BackendFilter | None, backend: RuntimeBackend, health: Health, now: float
) -> bool:
    return (
        (allowed is None or allowed.allows(backend))
        and health.closed_for(now)
        and not health.cooling(now)
    )


class Picker:
    """Chooses backends for attempts (see the module docstring)."""

    __slots__ = ("_fresh", "rng", "states")

    def __init__(self, states: BackendStates, rng: random.Random) -> None:
        self.states = states
        self.rng = rng
        self._fresh = Health()
        """What a backend never called yet looks like (only ever read)."""

    def health(self, route: RuntimeRoute, backend: RuntimeBackend) -> Health:
        found = self.states.peek(route.name, backend.name)
        if found is None:
            return self._fresh
        return found.get(HEALTH) or self._fresh

    def first(self, ctx: RequestContext, route: RuntimeRoute, now: float) -> Choice:
        """The backend of the request's first attempt; raises when there is none."""
        plan = route.plan
        allowed = ctx.state.get(BACKEND_FILTER)
        weighted = plan.weighted
        if allowed is None and len(weighted) == 1:  # the common case: one backend
            only = weighted[0]
            health = self.health(route, only)
            if health.circuit is Circuit.CLOSED and not health.cooling(now):
                return Choice(only)
        ready: list[RuntimeBackend] = []
        weights: list[int] = []
        for backend, weight in zip(weighted, plan.weights, strict=True):
            health = self.health(route, backend)
            if _ready(allowed, backend, health, now):
                ready.append(backend)
                weights.append(weight)
        if ready:
            if len(ready) == 1:
                return Choice(ready[0])
            return Choice(self.rng.choices(ready, weights)[0])
        for backend in plan.fallback:
            health = self.health(route, backend)
            if _ready(allowed, backend, health, now):
                return Choice(backend)
        return self._wait_or_refuse(ctx, route, now, allowed)

    def _wait_or_refuse(
        self, ctx: RequestContext, route: RuntimeRoute, now: float, allowed: BackendFilter | None
    ) -> Choice:
        candidates = [*route.plan.weighted, *route.plan.fallback]
        permitted = [b for b in candidates if allowed is None or allowed.allows(b)]
        if not permitted:
            if allowed is None:  # pragma: no cover - a route always has a weighted backend
                raise UpstreamUnavailable(f"route {route.name} has no backend")
            raise allowed.refusal(route)
        usable = [b for b in permitted if self.health(route, b).closed_for(now)]
        if not usable:
            reopen = min(self.health(route, b).open_until for b in permitted)
            raise UpstreamUnavailable(
                f"every backend of route {route.name} is failing (circuit open)",
                code="circuit_open",
                retry_after=max(1, math.ceil(reopen - now)),
            )
        soonest = min(usable, key=lambda b: self.health(route, b).not_before)
        health = self.health(route, soonest)
        wait = health.not_before - now
        if wait <= route.plan.backoff_max_s and now + wait + health.latency_s < ctx.deadline:
            return Choice(soonest, wait)
        seconds = max(1, math.ceil(wait))
        message = f"backend {soonest.name} asked for no calls for {seconds}s"
        if health.cool_rate_limited:
            raise UpstreamRateLimited(message, code="backend_backing_off", retry_after=seconds)
        raise UpstreamUnavailable(message, code="backend_backing_off", retry_after=seconds)

    def next(  # noqa: PLR0917 - one caller, all needed
        self,
        ctx: RequestContext,
        route: RuntimeRoute,
        failed: RuntimeBackend,
        tried: Collection[str],
        failures: int,
        now: float,
    ) -> Choice | str:
        """The next attempt after ``failures`` failed ones, or why there is none
        (``deadline``, ``backoff_too_long``, ``no_backend``)."""
        plan = route.plan
        allowed = ctx.state.get(BACKEND_FILTER)
        untried = self._untried(ctx, route, plan.fallback, tried, allowed, now)
        if untried is not None:
            return untried
        again = self._again(ctx, route, failed, tried, failures, allowed, now)
        if isinstance(again, Choice):
            return again
        # Last resort: another weighted backend, at once.
        return self._untried(ctx, route, plan.weighted, tried, allowed, now) or again

    def _untried(  # noqa: PLR0917 - private
        self,
        ctx: RequestContext,
        route: RuntimeRoute,
        backends: tuple[RuntimeBackend, ...],
        tried: Collection[str],
        allowed: BackendFilter | None,
        now: float,
    ) -> Choice | None:
        """The first of ``backends`` not tried yet that is ready and can finish in time."""
        for backend in backends:
            if backend.name in tried:
                continue
            health = self.health(route, backend)
            if _ready(allowed, backend, health, now) and now + health.latency_s < ctx.deadline:
                return Choice(backend)
        return None

    def _again(  # noqa: PLR0917 - private
        self,
        ctx: RequestContext,
        route: RuntimeRoute,
        failed: RuntimeBackend,
        tried: Collection[str],
        failures: int,
        allowed: BackendFilter | None,
        now: float,
    ) -> Choice | str:
        """The soonest retry of a tried backend (or a fallback backing off)."""
        plan = route.plan
        ceiling = min(plan.backoff_max_s, plan.backoff_base_s * 2 ** (failures - 1))
        jitter = self.rng.uniform(0, ceiling) if ceiling > 0 else 0.0
        candidates: dict[str, RuntimeBackend] = {}  # tried ones, then fallbacks backing off
        fallback = {b.name for b in plan.fallback}
        for backend in (failed, *plan.fallback, *route.backends):
            if backend.name in tried or backend.name in fallback:
                candidates.setdefault(backend.name, backend)
        best: Choice | str = "no_backend"
        best_at = math.inf
        for backend in candidates.values():
            health = self.health(route, backend)
            if (allowed is not None and not allowed.allows(backend)) or not health.closed_for(now):
                continue
            asked = health.not_before - now
            if asked > plan.backoff_max_s:
                best = "backoff_too_long" if isinstance(best, str) else best
                continue
            pause = max(jitter, asked) if backend.name in tried else max(0.0, asked)
            if now + pause + health.latency_s >= ctx.deadline:
                best = "deadline" if isinstance(best, str) else best
                continue
            if now + pause < best_at:
                best, best_at = Choice(backend, pause), now + pause
        return best
