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
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from enum import IntEnum
from typing import ClassVar

from .attempts.chain import AttemptChain
from .context import Json, RequestContext
from .runtime import RuntimeConfig
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


class Pipeline:
    """The steps in walk order and the attempt chain behind them."""

    __slots__ = (
        "_early",
        "_finish",
        "_late",
        "_prepare",
        "_response",
        "_transform",
        "chain",
        "decode_reach",
        "steps",
    )

    def __init__(self, steps: Sequence[Step], chain: AttemptChain) -> None:
        ordered = tuple(sorted(steps, key=lambda s: s.phase))
        names = [s.name for s in ordered]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline step names must be unique: {names}")
        self.steps = ordered
        self.chain = chain
        indexed = list(enumerate(ordered))
        request = [(i, s) for i, s in indexed if _overrides(s, "on_request")]
        self._early = tuple((i, s) for i, s in request if s.phase < Phase.DECODE)
        self._late = tuple((i, s) for i, s in request if s.phase >= Phase.DECODE)
        self.decode_reach = sum(1 for s in ordered if s.phase < Phase.DECODE)
        """Steps reached once the walk gets to decoding the body."""
        backwards = indexed[::-1]
        self._prepare = tuple(s for s in ordered if _overrides(s, "prepare"))
        self._transform = tuple((i, s) for i, s in backwards if _overrides(s, "stream_transform"))
        self._response = tuple((i, s) for i, s in backwards if _overrides(s, "on_response"))
        self._finish = tuple((i, s) for i, s in backwards if _overrides(s, "on_finish"))

    def prepare(self, config: RuntimeConfig) -> None:
        """Every step's and middleware's per-bundle state (before the swap)."""
        for step in self._prepare:
            step.prepare(config)
        self.chain.prepare(config)

    async def run(self, ctx: RequestContext, decode: Decode) -> None:
        """The request walk (and, for a complete answer, its response side)."""
        for index, step in self._early:
            ctx.reached = index + 1
            await step.on_request(ctx)
        ctx.reached = self.decode_reach
        ctx.set_body(await decode())
        for index, step in self._late:
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
        for index, step in self._response:
            if index < reached:
                await step.on_response(ctx)

    def stream(self, ctx: RequestContext) -> AsyncIterator[list[Json]]:
        """``ctx.chunks`` through this request's stream transforms (``ctx.chunks`` itself
        when there are none). The caller closes it; :meth:`respond` follows its end."""
        chunks = ctx.chunks
        assert chunks is not None
        reached = ctx.reached
        transforms: list[StreamTransform] = []
        for index, step in self._transform:
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
        for index, step in self._finish:
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
