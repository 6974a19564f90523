"""The governance pipeline: an ordered list of small steps, each with one job.

A step is a :class:`Step` subclass that overrides any of five hooks::

    class MyStep(Step):
        name = "my-step"

        def prepare(self, config):                # once per bundle load, before the swap
            return MyIndex(config.bundle)         # -> ctx.config.prepared["my-step"]

        async def on_request(self, ctx):          # before the call, in pipeline order
            ...                                   # raise a SidecarError to refuse, or set
                                                  # ctx.response / ctx.chunks to answer
        def on_chunk(self, ctx, chunk):           # each stream chunk, in reverse order
            return chunk                          # (return None to drop it)
        async def on_response(self, ctx):         # after a complete answer, reverse order
            ...                                   # (streams: after the last chunk)
        async def on_finish(self, ctx):           # always, once, reverse order, also on
            ...                                   # failure and disconnect (ctx.error)

``prepare`` is how a step precomputes per-bundle state (a policy index, prices) off the
request path: it runs on the event loop when a new bundle has passed validation; the value
travels inside the runtime config snapshot, so a request always sees state matching its
bundle. If ``prepare`` raises, the bundle is refused like an invalid one.

Only hooks a step overrides are called, so an idle hook costs nothing per request or chunk.
The last step of the default pipeline (:class:`~aigw_sidecar.steps.upstream.CallUpstream`)
answers every request that reached it; any earlier step may answer instead (a cache hit sets
``ctx.response`` or ``ctx.chunks``), and the remaining ``on_request`` hooks are skipped.
``on_response`` and ``on_finish`` run for every step regardless.

Default order (DESIGN "The governance pipeline"); later steps slot in where marked::

    ResolveRoute  ->  [identify, authorize, inspect, constrain, limit, cache]  ->
    Account (usage, cost)  ->  CallUpstream (backend choice, attempts)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import ClassVar

from .context import Json, RequestContext
from .runtime import RuntimeConfig

__all__ = ["Pipeline", "Step"]

_log = logging.getLogger(__name__)


class Step:
    """Base of every pipeline step; every hook is a no-op until overridden."""

    name: ClassVar[str] = "step"

    def prepare(self, config: RuntimeConfig) -> object:
        """Per-bundle state, stored as ``config.prepared[self.name]``; raise to refuse."""
        return None

    async def on_request(self, ctx: RequestContext) -> None:
        """Before the call. Raise to refuse; set ``ctx.response``/``ctx.chunks`` to answer."""

    def on_chunk(self, ctx: RequestContext, chunk: Json) -> Json | None:
        """One canonical stream chunk on its way out; return it (changed or not) or None."""
        return chunk

    async def on_response(self, ctx: RequestContext) -> None:
        """After a complete answer (``ctx.response``, or the end of ``ctx.chunks``)."""

    async def on_finish(self, ctx: RequestContext) -> None:
        """Always once at the end, success or not; must not raise."""


def _overrides(step: Step, hook: str) -> bool:
    return getattr(type(step), hook) is not getattr(Step, hook)


class Pipeline:
    """Runs the steps' hooks in order."""

    __slots__ = ("_chunk", "_finish", "_prepare", "_request", "_response", "steps")

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = tuple(steps)
        backwards = self.steps[::-1]
        self._prepare = tuple(s for s in self.steps if _overrides(s, "prepare"))
        self._request = tuple(s for s in self.steps if _overrides(s, "on_request"))
        self._chunk = tuple(s for s in backwards if _overrides(s, "on_chunk"))
        self._response = tuple(s for s in backwards if _overrides(s, "on_response"))
        self._finish = tuple(s for s in backwards if _overrides(s, "on_finish"))

    def prepare(self, config: RuntimeConfig) -> None:
        """Every step's per-bundle state, into ``config.prepared`` (before the swap)."""
        for step in self._prepare:
            config.prepared[step.name] = step.prepare(config)

    async def run(self, ctx: RequestContext) -> None:
        """The request phase; for a complete answer, also its response phase."""
        for step in self._request:
            await step.on_request(ctx)
            if ctx.response is not None or ctx.chunks is not None:
                break
        if ctx.response is not None:
            for step in self._response:
                await step.on_response(ctx)

    async def stream(self, ctx: RequestContext) -> AsyncGenerator[list[Json], None]:
        """``ctx.chunks`` (batches) with every chunk through every ``on_chunk`` hook, then
        the response phase."""
        chunks = ctx.chunks
        assert chunks is not None
        hooks = self._chunk
        try:
            async for received in chunks:
                if not hooks:
                    yield received
                    continue
                batch: list[Json] = []
                for chunk in received:
                    out: Json | None = chunk
                    for step in hooks:
                        out = step.on_chunk(ctx, out)  # type: ignore[arg-type]  # None breaks
                        if out is None:
                            break
                    if out is not None:
                        batch.append(out)
                if batch:
                    yield batch
        finally:
            await chunks.aclose()  # a consumer that stops early closes the upstream call
        for step in self._response:
            await step.on_response(ctx)

    async def finish(self, ctx: RequestContext) -> None:
        """Every ``on_finish`` hook; a failing hook is logged, never raised."""
        for step in self._finish:
            try:
                await step.on_finish(ctx)
            except Exception:  # noqa: BLE001 - accounting must not fail the answer
                _log.exception("pipeline step %s failed in on_finish", step.name)
