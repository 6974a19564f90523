"""The attempt chain: every upstream attempt goes through an onion of attempt middlewares.

In the spirit of aiohttp's client middlewares and Envoy's router with upstream filters, a
middleware is ``async (attempt, call_next) -> Upstream``; it may look at or change the
attempt (``attempt.headers`` is this attempt's own copy of the backend's headers), call
``call_next`` once, several times (retries, fallbacks: with ``attempt.retry(...)``) or not at
all (an open circuit breaker raises instead), and look at the result or the error::

    retry/fallback (Stage.RETRY) -> breaker (Stage.BREAKER) -> span (Stage.SPAN)
        -> your middleware (Stage.CUSTOM) -> translate + credentials + HTTP (the terminal)

Middlewares sort by ``stage`` (stable within a stage); everything inside ``Stage.RETRY``
sees every attempt. The terminal (:mod:`.http`) translates the canonical request for the
backend's provider, adds nothing the attempt's headers do not already have, calls it, and
returns an :class:`Upstream`: a complete canonical response, or a stream whose first batch
was already read inside the attempt (so a 200 followed by an immediate failure is still a
failed attempt that can be retried).

Each attempt has an :class:`~aigw_sidecar.context.AttemptRecord` in ``ctx.attempts`` (for
the audit record and the attempt span) and a ``backend_state``: the typed state of its
(route, backend) that outlives bundle reloads (:class:`BackendStates`; circuit breakers and
passive health live there). The route's compiled :class:`~aigw_sidecar.runtime.AttemptPlan`
says what retrying may do (``attempt.route.plan``).

With no middleware the chain is the terminal alone: one call, no extra awaits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from aigw_sidecar.context import AttemptRecord, Json, RequestContext
from aigw_sidecar.runtime import RuntimeBackend, RuntimeConfig, RuntimeRoute
from aigw_sidecar.state import State

__all__ = [
    "Attempt",
    "AttemptChain",
    "AttemptMiddleware",
    "BackendStates",
    "CallNext",
    "Stage",
    "Upstream",
]


class Stage(IntEnum):
    """Where an attempt middleware sits in the onion (lower: further out)."""

    RETRY = 100
    """Retries and fallbacks: the only stage that calls ``call_next`` more than once."""
    BREAKER = 200
    """Circuit breakers and passive health: may refuse an attempt (per backend)."""
    SPAN = 300
    """One span per attempt (``traceparent`` onto ``attempt.headers``)."""
    CUSTOM = 400
    """Anything else, nearest the HTTP call."""


@dataclass(slots=True, eq=False)
class Attempt:
    """One try of one backend for one request."""

    ctx: RequestContext
    route: RuntimeRoute
    backend: RuntimeBackend
    record: AttemptRecord
    """This attempt's entry in ``ctx.attempts``."""
    headers: dict[str, str]
    """The upstream request headers of this attempt (a copy of the backend's, credential
    included): middlewares may add to them (``traceparent``). Never log them."""
    backend_state: State
    """Typed state of this (route, backend) that outlives bundle reloads."""
    _chain: AttemptChain = field(repr=False)

    @property
    def number(self) -> int:
        """1 for the request's first attempt, then 2, 3, ..."""
        return self.record.number

    @property
    def states(self) -> BackendStates:
        """The health and state of every (route, backend) (for picking the next one)."""
        return self._chain.states

    def retry(self, backend: RuntimeBackend | None = None) -> Attempt:
        """A new attempt of the same request, on ``backend`` (default: the same one); pass
        it to ``call_next``. It gets its own record, headers and backend state."""
        return self._chain.attempt(self.ctx, self.route, backend or self.backend)


@dataclass(slots=True)
class Upstream:
    """What an attempt produced: a complete canonical answer or a stream."""

    attempt: Attempt
    response: Json | None = None
    chunks: AsyncIterator[list[Json]] | None = None
    """The stream's batches, the first (already read) included."""


CallNext = Callable[[Attempt], Awaitable[Upstream]]


class AttemptMiddleware:
    """Base of attempt middlewares: override ``__call__`` (and ``prepare`` if needed)."""

    name: ClassVar[str] = "middleware"
    stage: ClassVar[int] = Stage.CUSTOM

    def prepare(self, config: RuntimeConfig) -> None:
        """Per-bundle state into ``config.prepared`` (as ``Step.prepare``); raise to refuse."""

    async def __call__(self, attempt: Attempt, call_next: CallNext) -> Upstream:
        return await call_next(attempt)

    async def first_backend(
        self, ctx: RequestContext, route: RuntimeRoute, states: BackendStates
    ) -> RuntimeBackend:
        """The backend of a request's first attempt. Override it to choose (health,
        residency; it may wait or raise); the outermost middleware that does is asked, and
        with none the plan's weighted pick is used."""
        raise NotImplementedError  # only called where a subclass overrides it


class BackendStates:
    """Per (route, backend) typed state that survives bundle reloads.

    Keyed by names, so a reload that keeps a route's backend keeps its breaker; entries of
    backends no longer in the bundle are dropped at the next load (:meth:`retain`).
    """

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], State] = {}

    def get(self, route: str, backend: str) -> State:
        key = (route, backend)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = State()
        return state

    def peek(self, route: str, backend: str) -> State | None:
        """The state of (route, backend) if it has any (never creates one)."""
        return self._states.get((route, backend))

    def retain(self, config: RuntimeConfig) -> None:
        """Forget the state of backends the new bundle no longer has."""
        keep = {(r.name, b.name) for r in config.routes.values() for b in r.backends}
        for key in [k for k in self._states if k not in keep]:
            del self._states[key]

    def items(self) -> list[tuple[tuple[str, str], State]]:
        return list(self._states.items())


def _bind(middleware: AttemptMiddleware, call_next: CallNext) -> CallNext:
    """``call_next`` of the middleware outside ``middleware``: a plain function handing back
    the middleware's own coroutine, so a layer of the onion adds no coroutine of its own."""

    def call(attempt: Attempt) -> Awaitable[Upstream]:
        return middleware(attempt, call_next)

    return call


class AttemptChain:
    """The compiled onion: middlewares (sorted by stage) around the terminal."""

    __slots__ = ("_call", "_first", "middlewares", "rng", "states")

    def __init__(
        self,
        middlewares: Sequence[AttemptMiddleware],
        terminal: CallNext,
        *,
        rng: random.Random,
        states: BackendStates | None = None,
    ) -> None:
        self.middlewares = tuple(sorted(middlewares, key=lambda m: m.stage))
        self.rng = rng
        self.states = states if states is not None else BackendStates()
        call = terminal
        for middleware in reversed(self.middlewares):
            call = _bind(middleware, call)
        self._call = call
        self._first = next(
            (
                m
                for m in self.middlewares
                if type(m).first_backend is not AttemptMiddleware.first_backend
            ),
            None,
        )

    def prepare(self, config: RuntimeConfig) -> None:
        for middleware in self.middlewares:
            middleware.prepare(config)
        self.states.retain(config)

    def attempt(self, ctx: RequestContext, route: RuntimeRoute, backend: RuntimeBackend) -> Attempt:
        """A new attempt on ``backend``, recorded in ``ctx.attempts``."""
        record = AttemptRecord(
            number=len(ctx.attempts) + 1,
            backend=backend.name,
            provider=backend.provider.value,
            model=backend.model,
            started=asyncio.get_running_loop().time(),
        )
        ctx.attempts.append(record)
        ctx.backend = backend
        ctx.response_headers["X-AIGW-Backend"] = backend.name
        return Attempt(
            ctx,
            route,
            backend,
            record,
            dict(backend.headers),
            self.states.get(route.name, backend.name),
            self,
        )

    async def run(self, ctx: RequestContext) -> Upstream:
        """Call upstream for ``ctx``: the plan's primary pick through the whole chain."""
        route = ctx.route
        assert route is not None, "a route is resolved before the upstream call"
        chooser = self._first
        if chooser is None:
            backend = route.plan.pick(self.rng)
        else:
            backend = await chooser.first_backend(ctx, route, self.states)
        first = self.attempt(ctx, route, backend)
        try:
            upstream = await self._call(first)
        finally:
            made = sum(1 for record in ctx.attempts if record.outcome != "circuit_open")
            ctx.response_headers["X-AIGW-Attempts"] = str(made)
        ctx.backend = upstream.attempt.backend
        ctx.response_headers["X-AIGW-Backend"] = upstream.attempt.backend.name
        return upstream
