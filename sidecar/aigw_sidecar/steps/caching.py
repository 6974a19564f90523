"""The response cache of one sidecar: its store, its per-bundle plans, its bookkeeping.

:class:`Caching` is shared by the cache steps (:mod:`.cache`): it picks the store from the
settings (``cache_store``: the pod's :class:`~aigw_sidecar.cache.MemoryCache`, bounded in
bytes, or :class:`~aigw_sidecar.cache.RedisCache` on the governance store's own Redis
client), records every decision on the request (``ctx.cache``, ``ctx.decisions``) and in
the metrics, and writes entries (memory: at once; Redis: in a background task, awaited at
shutdown by :meth:`Caching.drain`).

Per bundle, :func:`compile_plans` turns the governing policy's use cases into
:class:`CachePlan` (TTL, scope, excluded classifications, and the fingerprint of what
transforms an answer before it is stored), and :func:`route_fingerprints` gives each route
the fingerprint of its backends (provider, model, endpoint).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aigw_contract import BundlePolicy, DataClassification
from aigw_sidecar.cache import (
    LEAN_FAILURES,
    CacheStoreDown,
    Entry,
    MemoryCache,
    RedisCache,
    encode_entry,
    fingerprint,
)
from aigw_sidecar.cache.eligibility import CacheRule, cache_rule
from aigw_sidecar.context import Decision, Json, RequestContext
from aigw_sidecar.governance import format_usd
from aigw_sidecar.governance.resp import RespClient
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.runtime import RuntimeConfig
from aigw_sidecar.settings import SidecarSettings
from aigw_sidecar.state import Key

from .recording import BUDGET_BYTES, RecordingBudget
from .semantic import Semantic, calls_tools

if TYPE_CHECKING:
    from aigw_sidecar.pipeline import Pipeline

    from .cache import Lookup

__all__ = [
    "PLANS",
    "ROUTE_FPS",
    "CachePlan",
    "Caching",
    "SemanticPlan",
    "compile_plans",
    "route_fingerprints",
]

_log = logging.getLogger("aigw.cache")
_LOG_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class SemanticPlan:
    """One use case's semantic cache."""

    threshold: float
    ttl_s: int
    route: str
    """The embeddings route."""


@dataclass(frozen=True, slots=True)
class CachePlan:
    """One use case's caching, compiled once per bundle."""

    use_case: str
    exact: bool
    ttl_s: int
    scope: str
    rule: CacheRule
    """Which requests may use the cache (the rule ``aigw replay`` applies too)."""
    answer_fp: str
    """Fingerprint of the mode, redaction settings and tool allowlist: what changes an
    answer between the provider and the store."""
    semantic: SemanticPlan | None = None


PLANS: Key[Mapping[str, CachePlan]] = Key("cache.plans")
ROUTE_FPS: Key[Mapping[str, str]] = Key("cache.routes")


def compile_plans(policy: BundlePolicy | None) -> Mapping[str, CachePlan]:
    """The plans of the use cases with caching on (none: no policy, or caching off)."""
    if policy is None:
        return MappingProxyType({})
    plans: dict[str, CachePlan] = {}
    for use_case in policy.use_cases:
        cache = use_case.cache
        semantic = cache.semantic
        rule = cache_rule(cache)
        if rule is None:
            continue
        answer_fp = fingerprint(
            [
                policy.mode.value,
                use_case.redaction.model_dump(mode="json", by_alias=True),
                use_case.tools,
            ]
        )
        plans[use_case.name] = CachePlan(
            use_case.name,
            cache.exact.enabled,
            cache.exact.ttl_seconds,
            cache.exact.scope.value,
            rule,
            answer_fp,
            SemanticPlan(semantic.threshold, semantic.ttl_seconds, semantic.embeddings_route)
            if semantic.enabled and semantic.embeddings_route is not None
            else None,
        )
    return MappingProxyType(plans)


def route_fingerprints(config: RuntimeConfig) -> Mapping[str, str]:
    """Per route, the fingerprint of its backends (a route moved to another model misses)."""
    return MappingProxyType(
        {
            name: fingerprint(
                sorted(
                    [b.provider.value, b.model, b.chat_url, b.embeddings_url or ""]
                    for b in route.backends
                )
            )
            for name, route in config.routes.items()
        }
    )


def _store_of(settings: SidecarSettings, metrics: Metrics, client: Any) -> MemoryCache | RedisCache:
    use_redis = settings.cache_store == "redis" or (
        settings.cache_store == "auto" and client is not None
    )
    if use_redis and client is not None:
        failures = LEAN_FAILURES
        if not isinstance(client, RespClient):
            from aigw_sidecar.governance import redis_py  # noqa: PLC0415 - only with redis-py

            failures = redis_py.FAILURES
        return RedisCache(client, failures=failures, max_entry_bytes=settings.cache_max_entry_bytes)
    evictions = metrics.cache.evictions
    children = {reason: evictions.labels(reason) for reason in ("size", "expired")}
    return MemoryCache(
        settings.cache_max_bytes,
        max_entry_bytes=settings.cache_max_entry_bytes,
        on_evict=lambda reason: children[reason].inc(),
    )


class Caching:
    """One sidecar's response cache: the store and the bookkeeping of its decisions."""

    def __init__(self, settings: SidecarSettings, metrics: Metrics, client: Any = None) -> None:
        """``client``: the governance store's Redis client (None: memory state)."""
        self.metrics = metrics.cache
        self.store = _store_of(settings, metrics, client)
        self.max_entry_bytes = settings.cache_max_entry_bytes
        self.recording = RecordingBudget(BUDGET_BYTES)
        """Bytes the streamed misses being recorded hold together (given back when each
        request ends; a stored stream's background encode then holds its batches until
        written)."""
        self.semantic = Semantic(self.store, settings.cache_semantic_max_bytes)
        self._writing: set[asyncio.Future[Any]] = set()
        """Writes in flight: Redis replies awaited by a callback, or tasks."""
        self._logged = -_LOG_EVERY_S

    # -- decisions -------------------------------------------------------------------------

    def bypass(
        self, ctx: RequestContext, route: str, reason: str, classification: DataClassification
    ) -> None:
        ctx.cache = "bypass"
        why = {
            "classification": f"data classification {classification.value} is never cached",
            "no_store": "Cache-Control: no-store",
            "operation": f"{ctx.operation} is not cached",
        }[reason]
        ctx.decisions.append(Decision("cache", "bypass", why, f"cache_bypass_{reason}"))
        self.metrics.bypasses.labels(route, reason).inc()

    def miss(self, ctx: RequestContext, lookup: Lookup, reason: str, kind: str = "exact") -> None:
        ctx.cache = "miss"
        lookup.record = True
        code = f"cache_miss_{reason}" if kind == "exact" else f"cache_semantic_miss_{reason}"
        ctx.decisions.append(Decision("cache", "miss", f"{kind}: {reason}", code))
        self.metrics.misses.labels(lookup.route, kind, reason).inc()

    def hit(
        self, ctx: RequestContext, lookup: Lookup, entry: Entry, reason: str, kind: str = "exact"
    ) -> None:
        ctx.cache = "hit" if kind == "exact" else "semantic-hit"
        ctx.cost_nano = 0
        ctx.response_headers["X-AIGW-Cost-USD"] = format_usd(0)
        code = "cache_hit" if kind == "exact" else "cache_semantic_hit"
        ctx.decisions.append(Decision("cache", ctx.cache, reason, code))
        self.metrics.hits.labels(lookup.route, kind).inc()
        if entry.cost_nano > 0:
            self.metrics.saved.labels(lookup.route).inc(entry.cost_nano / 1e9)

    def not_stored(self, ctx: RequestContext, lookup: Lookup, outcome: str, why: str) -> None:
        lookup.record = False
        ctx.decisions.append(Decision("cache", "not_stored", why, f"cache_not_stored_{outcome}"))
        self.metrics.writes.labels(lookup.route, outcome).inc()

    def store_failed(self, operation: str, error: CacheStoreDown) -> None:
        self.metrics.store_errors.labels(self.store.name, operation).inc()
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_S:
            self._logged = now
            _log.warning("cache store %s %s failed (%s): fail-open", self.store.name,
                         operation, error)  # fmt: skip

    # -- writing ---------------------------------------------------------------------------

    def offer(
        self,
        ctx: RequestContext,
        lookup: Lookup,
        *,
        response: Json | None = None,
        batches: list[list[Json]] | None = None,
    ) -> None:
        """Store this miss's answer (exact, semantic, or both). A complete answer is encoded
        now (a step further out rewrites it in place: the placeholders' restore); a stream's
        batches are final and are encoded in the background."""
        backend = ctx.backend
        created, cost = time.time(), ctx.cost_nano or 0
        name = backend.name if backend is not None else ""
        lookup.stored = True
        if lookup.plan.exact:
            entry = Entry(lookup.key, lookup.partition.tag, created, cost, name, response, batches)
            data = self._encode_now(ctx, lookup, entry)
            store = self.store
            if data is not None and isinstance(store, MemoryCache):
                self._put_memory(ctx, lookup, data)
            elif data is not None and isinstance(store, RedisCache):
                self._put_soon(store, lookup, entry, data)
            elif data is not None or response is None:
                self._background(self._put(lookup, entry, data))
        sem, plan = lookup.semantic, lookup.plan.semantic
        partition = lookup.semantic_partition
        if sem is None or plan is None or partition is None or sem.unit is None:
            return
        if calls_tools(response, batches):
            self.not_stored(ctx, lookup, "not_cacheable", "semantic: an answer that calls tools")
            return
        entry = Entry(sem.entry, partition.tag, created, cost, name, response, batches)
        data = self._encode_now(ctx, lookup, entry)
        if data is not None or response is None:
            self._background(self._put_semantic(lookup, entry, data, plan.ttl_s))

    def _encode_now(self, ctx: RequestContext, lookup: Lookup, entry: Entry) -> bytes | None:
        if entry.response is None:
            return None
        data = encode_entry(entry, compress=self.store.compress, max_bytes=self.max_entry_bytes)
        if data is None:
            self.not_stored(ctx, lookup, "too_large", "the answer outgrew the entry bound")
        return data

    async def _put_semantic(
        self, lookup: Lookup, entry: Entry, data: bytes | None, ttl_s: float
    ) -> None:
        sem = lookup.semantic
        assert sem is not None
        if data is None:
            data = encode_entry(entry, compress=self.store.compress, max_bytes=self.max_entry_bytes)
        if data is None:
            self.metrics.writes.labels(lookup.route, "too_large").inc()
            return
        try:
            await self.semantic.offer(entry.tag, sem, data, ttl_s)
        except CacheStoreDown as down:
            self.store_failed("put", down)
            self.metrics.writes.labels(lookup.route, "store_unavailable").inc()
            return
        self._stored(lookup, len(data))

    def _put_memory(self, ctx: RequestContext, lookup: Lookup, data: bytes) -> None:
        store = self.store
        assert isinstance(store, MemoryCache)
        if not store.put_now(lookup.partition.tag, lookup.key, data, lookup.plan.ttl_s):
            self.not_stored(ctx, lookup, "too_large", "the answer outgrew the entry bound")
            return
        self._stored(lookup, len(data))

    def _stored(self, lookup: Lookup, size: int) -> None:
        self.metrics.writes.labels(lookup.route, "stored").inc()
        self.metrics.written_bytes.labels(self.store.name).inc(size)
        store = self.store
        if isinstance(store, MemoryCache):
            self.metrics.bytes.set(store.bytes)
            self.metrics.entries.set(len(store))

    async def _put(self, lookup: Lookup, entry: Entry, data: bytes | None) -> None:
        if data is None:
            data = encode_entry(entry, compress=self.store.compress, max_bytes=self.max_entry_bytes)
        if data is None:
            self.metrics.writes.labels(lookup.route, "too_large").inc()
            return
        try:
            stored = await self.store.put(lookup.partition.tag, lookup.key, data, lookup.plan.ttl_s)
        except CacheStoreDown as down:
            self.store_failed("put", down)
            self.metrics.writes.labels(lookup.route, "store_unavailable").inc()
            return
        if stored:
            self._stored(lookup, len(data))
        else:
            self.metrics.writes.labels(lookup.route, "too_large").inc()

    def _put_soon(self, store: RedisCache, lookup: Lookup, entry: Entry, data: bytes) -> None:
        """Write a complete answer's entry: its ``SET`` sent now and counted in the reply's
        callback (no task per miss), else (not sent at once) in a background task."""
        reply = store.put_nowait(lookup.partition.tag, lookup.key, data, lookup.plan.ttl_s)
        if reply is None:
            self._background(self._put(lookup, entry, data))
            return
        self._writing.add(reply)
        reply.add_done_callback(functools.partial(self._put_replied, lookup, len(data)))

    def _put_replied(self, lookup: Lookup, size: int, reply: asyncio.Future[Any]) -> None:
        """The end of a write sent by :meth:`RedisCache.put_nowait` (the reply's callback):
        counted as :meth:`_put` counts it."""
        try:
            store = self.store
            assert isinstance(store, RedisCache)
            try:
                store.put_reply(reply)
            except CacheStoreDown as down:
                self.store_failed("put", down)
                self.metrics.writes.labels(lookup.route, "store_unavailable").inc()
                return
            self._stored(lookup, size)
        except Exception:  # noqa: BLE001 - logged with its traceback, as a task's failure is
            _log.exception("writing a cache entry failed")
        finally:
            self._writing.discard(reply)

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._writing.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Future[Any]) -> None:
        self._writing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("writing a cache entry failed", exc_info=task.exception())

    def bind(self, pipeline: Pipeline) -> None:
        """The pipeline the semantic cache's embedding calls go through."""
        self.semantic.pipeline = pipeline

    async def drain(self) -> None:
        """Wait for entries still being written (shutdown, before the Redis client closes)."""
        while self._writing:  # cancelled, it leaves them running (their counts with them)
            await asyncio.wait(set(self._writing))
