"""The request walk: ordered request steps, then the attempt chain, then the unwinding.

::

    handler: RequestContext (no body yet)
      |
      |  on_request, in phase order           stream_transform / on_response / on_finish,
      v                                       in reverse order, only for steps reached
    OBSERVE    audit, request span        <-------------------------------------------+
    ~ DECODE   the body is read and decoded into the canonical form (400/413 here)   |
    ROUTE      resolve the route                                                      |
    ADMIT      identify, authorize, constrain                                         |
    INSPECT    redaction, prompt-injection checks                                     |
    LIMIT      rate limits and budgets (reserve; settle on the way back)              |
    ANSWER     idempotent replay, cache: may answer -> the walk stops here ------------+
    ACCOUNT    usage and cost of what upstream answered                               |
      |                                                                               |
      v   attempt chain (only when no step answered)                                  |
    retry/fallback -> breaker -> span -> custom -> translate + credentials + HTTP ----+

A step is a :class:`Step` subclass with a ``name`` (unique) and a ``phase`` (an int; the
:class:`Phase` values are landmarks, pick one in between to sit between two of them); it
overrides any of the hooks below. Only overridden hooks are called, so an unused hook costs
nothing per request or chunk.

- ``prepare(config)``: once per bundle load, before the swap; write per-bundle state into
  ``config.prepared[KEY]``; raising refuses the bundle (the last good one stays).
- ``active(config)``: once per bundle load, after every step's ``prepare`` (so it may read
  what they prepared): whether the step can act at all under this bundle. False only when
  the bundle guarantees that every hook of the step would do nothing for any request (no
  use case turns its feature on); then none of its hooks is called for requests under
  this bundle. Default True. Steps that must see every call (audit, metrics, accounting,
  governance) keep the default.
- ``on_request(ctx)``: in order. Raise a :class:`~aigw_sidecar.errors.SidecarError` to
  refuse; call ``ctx.answer(self, response=... | chunks=...)`` to answer without calling
  upstream (the walk stops after this step).
- ``stream_transform(ctx)``: a streamed answer is about to be sent: return a
  :class:`~aigw_sidecar.streaming.StreamTransform` for this request, or None.
- ``on_response(ctx)``: the answer is complete (``ctx.response``, or the stream ended).
- ``on_finish(ctx)``: always once at the end, success or not (``ctx.error``); must not
  raise (it is logged and ignored).

**Unwind only what ran** (Envoy's and agentgateway's rule): the walk records how far it
reached (``ctx.reached``); a step whose request side never ran (because an earlier step
refused or answered) gets neither ``stream_transform``, ``on_response`` nor ``on_finish``.
The step that answered does get them, and every step sees who answered in
``ctx.answered_by`` (None: upstream did). A step without ``on_request`` counts as reached
once the walk passes its place.

**The walk of a bundle**: the hook tuples (on_request before and after decoding,
stream_transform, on_response, on_finish) are built once per bundle in :meth:`Pipeline.prepare`
from the steps that are active under it, and kept in ``config.prepared`` under the
pipeline's own key, so a step that is off costs no coroutine per request. Each entry keeps
the step's index among all steps, so ``ctx.reached`` and "unwind only what ran" mean the
same whatever is active (an inactive step is passed like a step without that hook). A
request walks the walk of the config it started with (``ctx.config``) from start to end,
even if a reload swaps another bundle in meanwhile; a config this pipeline never prepared
gets the walk of every step.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from .attempts.chain import AttemptChain
from .context import Json, RequestContext
from .runtime import RuntimeConfig
from .state import Key
from .streaming import StreamTransform

__all__ = ["Decode", "Phase", "Pipeline", "Step"]

_log = logging.getLogger(__name__)


class Phase(IntEnum):
    """Landmarks of the request walk (a step's ``phase`` may be any int)."""

    OBSERVE = 0
    """Sees every request, the ones refused for their body included (audit, request span);
    runs before the body is decoded: ``ctx.body`` is still empty in ``on_request``."""
    DECODE = 50
    """Not a step: where the pipeline reads and decodes the body."""
    ROUTE = 100
    ADMIT = 200
    INSPECT = 300
    LIMIT = 400
    ANSWER = 500
    ACCOUNT = 600


class Step:
    """Base of every pipeline step; every hook is a no-op until overridden."""

    name: ClassVar[str] = "step"
    phase: ClassVar[int] = Phase.INSPECT

    def prepare(self, config: RuntimeConfig) -> None:
        """Per-bundle state into ``config.prepared[KEY]``; raise to refuse the bundle."""

    def active(self, config: RuntimeConfig) -> bool:
        """Whether this step can act at all under ``config`` (after every ``prepare``):
        False only when no request under this bundle could make a hook do anything; then
        none of its hooks is called under it."""
        return True

    async def on_request(self, ctx: RequestContext) -> None:
        """Before the call. Raise to refuse; ``ctx.answer(self, ...)`` to answer."""

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        """This request's transform of its stream, or None."""
        return None

    async def on_response(self, ctx: RequestContext) -> None:
        """After a complete answer (``ctx.response``, or the end of the stream)."""

    async def on_finish(self, ctx: RequestContext) -> None:
        """Always once at the end, success or not; must not raise."""


def _overrides(step: Step, hook: str) -> bool:
    return getattr(type(step), hook) is not getattr(Step, hook)


Decode = Callable[[], Awaitable[Json]]
_Hooks = tuple[tuple[int, Step], ...]


@dataclass(frozen=True, slots=True)
class _Walk:
    """The hooks one bundle calls, each with its step's index among all steps."""

    early: _Hooks
    """``on_request`` before the body is decoded, in order."""
    late: _Hooks
    """``on_request`` after, in order."""
    transform: _Hooks
    """``stream_transform``, innermost first (and so are the two below)."""
    response: _Hooks
    finish: _Hooks
    names: tuple[str, ...]
    """The active steps, in walk order."""

    @classmethod
    def of(cls, ordered: Sequence[Step], active: Sequence[bool]) -> _Walk:
        indexed = [(i, s) for i, s in enumerate(ordered) if active[i]]
        request = [(i, s) for i, s in indexed if _overrides(s, "on_request")]
        backwards = indexed[::-1]
        return cls(
            names=tuple(s.name for _, s in indexed),
            early=tuple((i, s) for i, s in request if s.phase < Phase.DECODE),
            late=tuple((i, s) for i, s in request if s.phase >= Phase.DECODE),
            transform=tuple((i, s) for i, s in backwards if _overrides(s, "stream_transform")),
            response=tuple((i, s) for i, s in backwards if _overrides(s, "on_response")),
            finish=tuple((i, s) for i, s in backwards if _overrides(s, "on_finish")),
        )


class Pipeline:
    """The steps in walk order and the attempt chain behind them."""

    __slots__ = ("_all", "_key", "_prepare", "chain", "decode_reach", "steps")

    def __init__(self, steps: Sequence[Step], chain: AttemptChain) -> None:
        ordered = tuple(sorted(steps, key=lambda s: s.phase))
        names = [s.name for s in ordered]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline step names must be unique: {names}")
        self.steps = ordered
        self.chain = chain
        self.decode_reach = sum(1 for s in ordered if s.phase < Phase.DECODE)
        """Steps reached once the walk gets to decoding the body."""
        self._prepare = tuple(s for s in ordered if _overrides(s, "prepare"))
        self._all = _Walk.of(ordered, [True] * len(ordered))
        """The walk of every step: a config this pipeline did not prepare."""
        self._key = Key[_Walk]("pipeline.walk")
        """This pipeline's walk in ``config.prepared`` (one key per pipeline)."""

    def prepare(self, config: RuntimeConfig) -> None:
        """Every step's and middleware's per-bundle state (before the swap), then the walk
        of the steps active under this bundle."""
        for step in self._prepare:
            step.prepare(config)
        self.chain.prepare(config)
        active = [step.active(config) for step in self.steps]
        config.prepared[self._key] = self._all if all(active) else _Walk.of(self.steps, active)

    def active(self, config: RuntimeConfig) -> tuple[str, ...]:
        """The names of the steps active under ``config`` (their hooks run), in walk order."""
        return self._walk(config).names

    def _walk(self, config: RuntimeConfig) -> _Walk:
        walk = config.prepared.get(self._key)
        return self._all if walk is None else walk

    async def run(self, ctx: RequestContext, decode: Decode) -> None:
        """The request walk (and, for a complete answer, its response side)."""
        walk = self._walk(ctx.config)
        for index, step in walk.early:
            ctx.reached = index + 1
            await step.on_request(ctx)
        ctx.reached = self.decode_reach
        ctx.set_body(await decode())
        for index, step in walk.late:
            ctx.reached = index + 1
            await step.on_request(ctx)
            if ctx.answered_by is not None:
                break
        else:
            ctx.reached = len(self.steps)
            upstream = await self.chain.run(ctx)
            ctx.response = upstream.response
            ctx.chunks = upstream.chunks
        if ctx.response is not None:
            await self.respond(ctx)

    async def respond(self, ctx: RequestContext) -> None:
        """The response side: ``on_response`` of every step reached, innermost first."""
        reached = ctx.reached
        for index, step in self._walk(ctx.config).response:
            if index < reached:
                await step.on_response(ctx)

    def stream(self, ctx: RequestContext) -> AsyncIterator[list[Json]]:
        """``ctx.chunks`` through this request's stream transforms (``ctx.chunks`` itself
        when there are none). The caller closes it; :meth:`respond` follows its end."""
        chunks = ctx.chunks
        assert chunks is not None
        reached = ctx.reached
        transforms: list[StreamTransform] = []
        for index, step in self._walk(ctx.config).transform:
            if index < reached:
                transform = step.stream_transform(ctx)
                if transform is not None:
                    transforms.append(transform)
        if not transforms:
            return chunks
        return _transformed(chunks, transforms)

    async def finish(self, ctx: RequestContext) -> None:
        """``on_finish`` of every step reached; a failing hook is logged, never raised."""
        reached = ctx.reached
        for index, step in self._walk(ctx.config).finish:
            if index < reached:
                try:
                    await step.on_finish(ctx)
                except Exception:  # noqa: BLE001 - accounting must not fail the answer
                    _log.exception("pipeline step %s failed in on_finish", step.name)


async def _transformed(
    chunks: AsyncIterator[list[Json]], transforms: list[StreamTransform]
) -> AsyncGenerator[list[Json], None]:
    try:
        async for received in chunks:
            batch = received
            for transform in transforms:
                batch = await transform.feed(batch)
                if not batch:
                    break
            if batch:
                yield batch
        pending: list[Json] = []
        for transform in transforms:  # a flush goes through the transforms outside it
            if pending:
                pending = await transform.feed(pending)
            pending = pending + await transform.flush()
        if pending:
            yield pending
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
