"""The semantic cache inside the cache steps (``docs/cache.md``): embed the last user turn
through the policy's embeddings route, match it among the partition's entries, store the
answer of a miss with its vector.

The embedding is a call of its own through the same pipeline (:meth:`Semantic.embed`): the
embeddings route is admitted for the caller's tenant and use case like any request (the
contract requires it among the use case's routes), its tokens and cost count against the
use case's limits and budgets, it has its own audit record (request id
``<caller's id>.embed``), its own metrics, and, with the exact cache on, an identical prompt
is embedded once. Only the caller's ``X-AIGW-*`` claims and trace context go with it. A
failed embedding (refused, limited, provider down) is a semantic miss
(``embedding_failed``), never an error of the caller's request.

The index is this process's (:class:`~aigw_sidecar.cache.VectorIndex`), created when a bundle
first enables the semantic cache (numpy is imported then, not before). With the Redis store
the vectors are shared (:class:`~aigw_sidecar.cache.SharedVectors`): a partition is read from
Redis when it is matched in and this pod's copy is older than a second, so a new pod warms
from what the others stored.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from aigw_sidecar.adapters.base import CARRIAGE
from aigw_sidecar.cache import (
    MemoryCache,
    RedisCache,
    SharedVectors,
    VectorIndex,
    entry_id,
    semantic_partition,
    semantic_prompt,
)
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.errors import SidecarError

if TYPE_CHECKING:
    from aigw_sidecar.pipeline import Pipeline

    from .cache import Lookup

__all__ = ["Semantic", "SemanticLookup", "calls_tools"]

_log = logging.getLogger("aigw.cache")
_FORWARDED = ("traceparent", "tracestate")


@dataclass(slots=True)
class SemanticLookup:
    """One request's semantic side."""

    part: str
    """The partition digest (everything but the last user text)."""
    prompt: str
    entry: str
    """The id its answer is stored under."""
    unit: Any = None
    """The prompt's unit vector, once embedded."""


def calls_tools(response: Json | None, batches: list[list[Json]] | None) -> bool:
    """Whether an answer calls a tool (never stored in the semantic cache)."""
    if response is not None:
        for choice in response.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and (message.get("tool_calls") or
                                              message.get("function_call")):  # fmt: skip
                return True
        return False
    for batch in batches or ():
        for chunk in batch:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("tool_calls") or delta.get("function_call"):
                    return True
    return False


class Semantic:
    """The semantic cache of one sidecar: the index, the shared vectors, the sub-calls."""

    def __init__(self, store: MemoryCache | RedisCache, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self.index: VectorIndex | None = None
        self.shared = SharedVectors(store) if isinstance(store, RedisCache) else None
        self.pipeline: Pipeline | None = None

    def prepare(self, enabled: bool) -> None:
        """A bundle was loaded: create the index when it first needs one."""
        if enabled and self.index is None:
            self.index = VectorIndex(self._max_bytes)

    def begin(self, ctx: RequestContext, lookup: Lookup, route_fp: str) -> SemanticLookup | None:
        """The request's partition and prompt, or None: not eligible (the safety rule)."""
        found = semantic_prompt(ctx.body) if ctx.operation == "chat" else None
        if found is None:
            return None
        prompt, rest = found
        carriage = ctx.state.get(CARRIAGE)
        extra: list[Any] = []
        if carriage is not None:
            extra = [dict(carriage.anthropic_params), carriage.native, carriage.anthropic_beta]
        partition = lookup.semantic_partition
        if partition is None:
            return None
        part = semantic_partition(
            partition,
            route=lookup.route,
            route_fp=route_fp,
            answer_fp=lookup.plan.answer_fp,
            api=ctx.api,
            carriage=extra,
            rest=rest,
        )
        return SemanticLookup(part, prompt, entry_id(part, prompt))

    async def embed(self, ctx: RequestContext, route: str, text: str) -> list[float] | None:
        """The embedding of ``text`` by ``route``: a governed call of its own."""
        pipeline = self.pipeline
        if pipeline is None:
            return None
        from aigw_sidecar.context import RequestContext as Context  # noqa: PLC0415

        headers = CIMultiDict(
            (k, v) for k, v in ctx.headers.items()
            if k.lower().startswith("x-aigw-") or k.lower() in _FORWARDED
        )  # fmt: skip
        sub = Context(
            request_id=f"{ctx.request_id}.embed",
            api="openai",
            operation="embeddings",
            headers=CIMultiDictProxy(headers),
            config=ctx.config,
            started=asyncio.get_running_loop().time(),
        )
        sub.deadline = ctx.deadline
        body: Json = {"model": route, "input": text, "encoding_format": "float"}

        async def decode() -> Json:
            return body

        try:
            await pipeline.run(sub, decode)
        except SidecarError as exc:
            sub.error = exc
            sub.status, sub.error_type = exc.status, exc.type
            _log.debug("the semantic cache's embedding failed: %s", exc.type)
            return None
        else:
            sub.status = 200
        finally:
            await pipeline.finish(sub)
        data = (sub.response or {}).get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            return None
        vector = data[0].get("embedding")
        return vector if isinstance(vector, list) else None

    async def sync(self, tag: str, part: str) -> None:
        """This pod's copy of a partition, refreshed from Redis when it is stale."""
        index, shared = self.index, self.shared
        if index is None or shared is None:
            return
        loop = asyncio.get_running_loop()
        candidates = index.candidates(tag, part)
        if loop.time() - candidates.synced < shared.refresh_s:
            return
        known = index.known(tag, part)
        live = await shared.read(tag, part, set(known))
        np = index.np
        entries: dict[str, tuple[Any, float]] = {}
        for entry, (packed, ttl) in live.items():
            if packed is None:
                entries[entry] = (known[entry], ttl)
                continue
            unit = np.frombuffer(packed, dtype="<f4")
            if unit.size:
                entries[entry] = (unit, ttl)
        index.replace(tag, part, entries, loop.time())

    async def offer(self, tag: str, sem: SemanticLookup, data: bytes, ttl_s: float) -> None:
        """Store the answer of a semantic miss: the entry, its vector here and in Redis."""
        index = self.index
        if index is None or sem.unit is None:
            return
        await self._store.put(tag, f"s:{sem.entry}", data, ttl_s)
        index.add(tag, sem.part, sem.entry, sem.unit, ttl_s)
        if self.shared is not None:
            packed = sem.unit.astype("<f4").tobytes()
            await self.shared.add(tag, sem.part, sem.entry, packed, ttl_s)
