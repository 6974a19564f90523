"""Steps: the response cache (``docs/cache.md``): look up before the call, answer on a hit,
record and store on a miss.

Two steps around the limit step, so that a hit still counts against requests/min (the limit
step reserved it) but costs no tokens or money (an answer from a step never reaches the
account step, and the limit step releases the reservation):

- :class:`CacheLookup` (``Phase.LIMIT - 10``): decides whether the request may use the cache
  at all (a bypass: the use case's excluded data classifications, ``Cache-Control:
  no-store``, an operation that is not chat or embeddings; the one rule of
  :mod:`aigw_sidecar.cache.eligibility`, which ``aigw replay`` applies too), computes the key
  (:mod:`aigw_sidecar.cache.key`) over the request as it will be sent upstream (after
  admission's clamp and the prompt's redaction), and, with a shared store, starts reading
  the entry so that the Redis round trip overlaps the limit step's;
- :class:`CacheAnswer` (``Phase.ANSWER``): a valid entry answers (``X-AIGW-Cache: hit``,
  ``X-AIGW-Cost-USD: 0``) as a complete answer or as a stream, whichever the caller asked
  for; a miss goes upstream and its answer is offered to the store on the way back: a
  complete answer in ``on_response``, a stream through a :class:`~.recording.Recorder`
  (stored only when it completed). It sits outside the answer's inspection
  (``Phase.ANSWER + 50``) and inside the prompt's placeholder restore (``Phase.INSPECT``):
  what is stored is what the caller received after the answer's redaction, before its own
  values were put back, so no entry holds what redaction took out and no caller gets
  another's values.

Fail-open: a store that is down is a miss (read) or an answer not stored (write), counted in
``aigw_cache_store_errors_total`` and logged at most once per 10 s; never an error to the
caller. Every decision (bypass and why, hit, miss and why, stored or not and why) is a
``cache`` entry in ``ctx.decisions`` and ``ctx.cache`` for the audit record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aigw_sidecar.adapters.base import CARRIAGE
from aigw_sidecar.cache import (
    CacheControl,
    CacheStoreDown,
    Entry,
    EntryInvalid,
    Partition,
    chunks_of,
    decode_entry,
    exact_key,
    parse_cache_control,
    replay,
    response_of,
)
from aigw_sidecar.cache.eligibility import BYPASS_REASONS
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.keys import ADMISSION, GOVERNANCE_VIEW
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeConfig, RuntimeRoute
from aigw_sidecar.state import Key
from aigw_sidecar.streaming import StreamTransform

from .caching import PLANS, ROUTE_FPS, CachePlan, Caching, compile_plans, route_fingerprints
from .recording import Recorder, RecordingBudget
from .semantic import SemanticLookup

__all__ = ["LOOKUP", "CacheAnswer", "CacheLookup", "Lookup", "cache_steps"]

_log = logging.getLogger("aigw.cache")
_NOT_CACHED_FINISH = frozenset({"content_filter"})
"""Finish reasons whose answers are never stored (the provider withheld the answer)."""


@dataclass(slots=True)
class Lookup:
    """One request's dealings with the cache."""

    plan: CachePlan
    partition: Partition
    route: str
    key: str
    control: CacheControl
    pending: asyncio.Task[bytes | None] | None = None
    recorder: Recorder | None = None
    record: bool = False
    """A miss whose answer is offered to the store."""
    stored: bool = False
    semantic_partition: Partition | None = None
    """The semantic cache's partition (always one tenant's use case), when it is on."""
    semantic: SemanticLookup | None = None


LOOKUP = Key("cache.lookup", Lookup)


def _route_key(ctx: RequestContext, route: RuntimeRoute, plan: CachePlan, part: Partition) -> str:
    carriage = ctx.state.get(CARRIAGE)
    extra: list[object] = []
    if carriage is not None:
        extra = [dict(carriage.anthropic_params), carriage.native, carriage.anthropic_beta]
    fps = ctx.config.prepared.get(ROUTE_FPS) or {}
    return exact_key(
        part,
        route=route.name,
        route_fp=fps.get(route.name, ""),
        answer_fp=plan.answer_fp,
        api=ctx.api,
        operation=ctx.operation,
        body=ctx.body,
        carriage=extra,
    )


def _caching_on(config: RuntimeConfig) -> bool:
    """Whether a use case has a cache plan (none: the lookup never starts one, and the
    answer step acts only on a lookup)."""
    plans = config.prepared.get(PLANS)
    return plans is None or bool(plans)


class CacheLookup(Step):
    """Bypass or not; the key; the shared store's read started early."""

    name = "cache"
    phase = Phase.LIMIT - 10

    def __init__(self, caching: Caching) -> None:
        self._c = caching

    def prepare(self, config: RuntimeConfig) -> None:
        view = config.prepared.get(GOVERNANCE_VIEW)
        policy = view.index.policy if view is not None else None
        plans = compile_plans(policy)
        config.prepared[PLANS] = plans
        config.prepared[ROUTE_FPS] = route_fingerprints(config)
        self._c.semantic.prepare(any(p.semantic is not None for p in plans.values()))

    def active(self, config: RuntimeConfig) -> bool:
        return _caching_on(config)

    async def on_request(self, ctx: RequestContext) -> None:
        admission = ctx.state.get(ADMISSION)
        plans = ctx.config.prepared.get(PLANS)
        if admission is None or not plans:
            return
        identity = admission.identity
        plan = plans.get(identity.use_case.name)
        route = ctx.route
        if plan is None or route is None:
            return
        control = parse_cache_control(ctx.headers.getall("Cache-Control", ()))
        reason = plan.rule.check(ctx.operation, admission.classification, no_store=control.no_store)
        if reason in BYPASS_REASONS:
            self._c.bypass(ctx, route.name, reason, admission.classification)
            return
        if reason:
            return  # the semantic cache answers chat only (its own embeddings included)
        partition = Partition.of(
            identity.namespace, identity.policy.name, plan.scope, identity.tenant, plan.use_case
        )
        key = _route_key(ctx, route, plan, partition) if plan.exact else ""
        lookup = Lookup(plan, partition, route.name, key, control)
        if plan.semantic is not None and ctx.operation == "chat":
            lookup.semantic_partition = Partition.of(
                identity.namespace, identity.policy.name, "useCase", identity.tenant,
                plan.use_case,
            )  # fmt: skip
        if plan.exact and not control.no_cache and self._c.store.remote:
            lookup.pending = asyncio.ensure_future(self._c.store.get(partition.tag, lookup.key))
        ctx.state[LOOKUP] = lookup

    async def on_finish(self, ctx: RequestContext) -> None:
        lookup = ctx.state.get(LOOKUP)
        if lookup is None:
            return
        if lookup.recorder is not None:  # offered (the entry keeps its batches) or dropped
            lookup.recorder.release()
        pending = lookup.pending
        if pending is not None and not pending.done():  # refused before the answer step
            pending.cancel()
        if lookup.record and not lookup.stored and ctx.error is not None:
            self._c.not_stored(ctx, lookup, "incomplete", "the answer failed or was cut")


class CacheAnswer(Step):
    """A hit answers; a miss is recorded and stored on the way back."""

    name = "cache.answer"
    phase = Phase.ANSWER

    def __init__(self, caching: Caching) -> None:
        self._c = caching

    @property
    def recording(self) -> RecordingBudget:
        """What the streamed misses being recorded hold together now."""
        return self._c.recording

    def active(self, config: RuntimeConfig) -> bool:
        return _caching_on(config)

    async def on_request(self, ctx: RequestContext) -> None:
        lookup = ctx.state.get(LOOKUP)
        route = ctx.route
        if lookup is None or route is None:
            return
        if route.name != lookup.route:  # the limit step moved the request to a fallback
            if lookup.pending is not None:
                lookup.pending.cancel()
                lookup.pending = None
            lookup.route = route.name
            if lookup.plan.exact:
                lookup.key = _route_key(ctx, route, lookup.plan, lookup.partition)
        if lookup.plan.exact and await self._exact(ctx, lookup):
            return
        if lookup.semantic_partition is not None:
            await self._semantic(ctx, lookup)

    async def _exact(self, ctx: RequestContext, lookup: Lookup) -> bool:
        """The exact lookup; True when it answered."""
        if lookup.control.no_cache:
            self._c.miss(ctx, lookup, "revalidate")
            return False
        try:
            if lookup.pending is not None:
                data = await lookup.pending
            else:
                data = await self._c.store.get(lookup.partition.tag, lookup.key)
        except CacheStoreDown as down:
            self._c.store_failed("get", down)
            self._c.miss(ctx, lookup, "store_unavailable")
            return False
        finally:
            lookup.pending = None
        if data is None:
            self._c.miss(ctx, lookup, "absent")
            return False
        entry = self._decode(
            ctx, lookup, data, key=lookup.key, tag=lookup.partition.tag, kind="exact"
        )
        if entry is None:
            return False
        age = time.time() - entry.created
        return self._answer(ctx, lookup, entry, f"exact, stored {age:.0f} s ago", "exact")

    def _decode(
        self, ctx: RequestContext, lookup: Lookup, data: bytes, *, key: str, tag: str, kind: str
    ) -> Entry | None:
        try:
            entry = decode_entry(data, key=key, tag=tag, max_bytes=self._c.max_entry_bytes)
        except EntryInvalid:
            self._c.miss(ctx, lookup, "invalid_entry", kind)
            return None
        max_age = lookup.control.max_age_s
        if max_age is not None and time.time() - entry.created > max_age:
            self._c.miss(ctx, lookup, "stale", kind)
            return None
        return entry

    async def _semantic(self, ctx: RequestContext, lookup: Lookup) -> None:  # noqa: PLR0911 - each miss says why
        plan, semantic = lookup.plan.semantic, self._c.semantic
        assert plan is not None
        fps = ctx.config.prepared.get(ROUTE_FPS) or {}
        sem = semantic.begin(ctx, lookup, fps.get(lookup.route, ""))
        if sem is None:
            self._c.miss(ctx, lookup, "ineligible", "semantic")
            return
        vector = await semantic.embed(ctx, plan.route, sem.prompt)
        index = semantic.index
        unit = index.unit(vector) if index is not None and vector is not None else None
        if unit is None or index is None:
            self._c.miss(ctx, lookup, "embedding_failed", "semantic")
            return
        sem.unit = unit
        lookup.semantic = sem
        if lookup.control.no_cache:
            self._c.miss(ctx, lookup, "revalidate", "semantic")
            return
        tag = lookup.semantic_partition.tag if lookup.semantic_partition else ""
        try:
            await semantic.sync(tag, sem.part)
            found = index.search(tag, sem.part, unit)
            if found is None or found[1] < plan.threshold:
                reason = "absent" if found is None else "below_threshold"
                self._c.miss(ctx, lookup, reason, "semantic")
                return
            entry_id, similarity = found
            data = await self._c.store.get(tag, f"s:{entry_id}")
        except CacheStoreDown as down:
            self._c.store_failed("get", down)
            self._c.miss(ctx, lookup, "store_unavailable", "semantic")
            return
        if data is None:
            index.remove(tag, sem.part, entry_id)
            self._c.miss(ctx, lookup, "absent", "semantic")
            return
        entry = self._decode(ctx, lookup, data, key=entry_id, tag=tag, kind="semantic")
        if entry is None:
            return
        reason = f"similarity {similarity:.4f} >= threshold {plan.threshold}"
        if self._answer(ctx, lookup, entry, reason, "semantic"):
            ctx.response_headers["X-AIGW-Cache-Similarity"] = f"{similarity:.4f}"

    def _answer(
        self, ctx: RequestContext, lookup: Lookup, entry: Entry, reason: str, kind: str
    ) -> bool:
        if ctx.stream:
            batches = entry.batches if entry.batches is not None else None
            if batches is None and entry.response is not None:
                batches = chunks_of(entry.response)
            if batches is None:
                self._c.miss(ctx, lookup, "format", kind)
                return False
            ctx.answer(self, chunks=replay(batches))
        else:
            response = entry.response
            if response is None and entry.batches is not None:
                response = response_of(entry.batches)
            if response is None:
                self._c.miss(ctx, lookup, "format", kind)
                return False
            ctx.answer(self, response=response)
        self._c.hit(ctx, lookup, entry, reason, kind)
        return True

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        lookup = ctx.state.get(LOOKUP)
        if lookup is None or not lookup.record or ctx.answered_by is not None:
            return None
        lookup.recorder = Recorder(self._c.max_entry_bytes, self._c.recording)
        return lookup.recorder

    async def on_response(self, ctx: RequestContext) -> None:
        lookup = ctx.state.get(LOOKUP)
        if lookup is None or not lookup.record or ctx.answered_by is not None:
            return
        if ctx.stream:
            recorder = lookup.recorder
            if recorder is None or recorder.overflow:
                self._c.not_stored(ctx, lookup, "too_large", "the stream outgrew the entry bound")
                return
            if not recorder.complete:
                self._c.not_stored(ctx, lookup, "incomplete", "a choice ended without a finish")
                return
            if _withheld(recorder.batches):
                self._c.not_stored(ctx, lookup, "not_cacheable", "the provider withheld it")
                return
            self._c.offer(ctx, lookup, batches=recorder.batches)
            return
        response = ctx.response
        if response is None or not _storable(response, ctx.operation):
            self._c.not_stored(ctx, lookup, "not_cacheable", "not a complete answer")
            return
        self._c.offer(ctx, lookup, response=response)


def _withheld(batches: list[list[Json]]) -> bool:
    return any(
        choice.get("finish_reason") in _NOT_CACHED_FINISH
        for batch in batches
        for chunk in batch
        for choice in chunk.get("choices") or ()
    )


def _storable(response: Json, operation: str) -> bool:
    if operation == "embeddings":
        return isinstance(response.get("data"), list) and bool(response["data"])
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            return False
        finish = choice.get("finish_reason")
        if not finish or finish in _NOT_CACHED_FINISH:
            return False
    return True


def cache_steps(caching: Caching) -> tuple[Step, Step]:
    """The two cache steps sharing ``caching``."""
    return CacheLookup(caching), CacheAnswer(caching)
