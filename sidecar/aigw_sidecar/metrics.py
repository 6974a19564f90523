"""Prometheus metrics of one sidecar, in a registry of its own (never the global one).

Labels are bounded: route and backend names come from the loaded bundle (a request naming an
unknown route is counted under ``route=""``), status is the HTTP status, error type is one
of the fixed error types (or ""). Never a user, tenant id, prompt or credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from aigw_sidecar.loopmetrics import Counter, Gauge, Histogram

__all__ = ["BackendMetrics", "BreakerMetrics", "CacheMetrics", "Metrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BackendMetrics:
    """The labelled children of one (route, backend): looked up once, then reused."""

    attempts_ok: Counter
    upstream_seconds: Histogram
    prompt_tokens: Counter
    completion_tokens: Counter
    cost: Counter


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """The circuit-breaker children of one (route, backend)."""

    state: Gauge
    """0 closed, 1 half-open, 2 open."""
    transitions: dict[str, Counter]
    """By the state moved to."""


class CacheMetrics:
    """The response cache's collectors (``docs/cache.md``)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.hits = Counter(
            "aigw_cache_hits",
            "Requests answered from the cache, by kind (exact, semantic).",
            ["route", "kind"],
            registry=r,
        )
        self.misses = Counter(
            "aigw_cache_misses",
            "Cache lookups that found no answer, by kind (exact, semantic) and reason (absent,"
            " revalidate, stale, format, invalid_entry, store_unavailable; semantic also"
            " ineligible, below_threshold, embedding_failed).",
            ["route", "kind", "reason"],
            registry=r,
        )
        self.bypasses = Counter(
            "aigw_cache_bypasses",
            "Requests of a use case with caching on that the cache did not touch, by reason"
            " (classification, no_store, operation).",
            ["route", "reason"],
            registry=r,
        )
        self.writes = Counter(
            "aigw_cache_writes",
            "Answers offered to the cache, by outcome (stored, too_large, incomplete,"
            " not_cacheable, store_unavailable).",
            ["route", "outcome"],
            registry=r,
        )
        self.saved = Counter(
            "aigw_cache_saved_usd",
            "What the answers served from the cache cost when they were produced, in US"
            " dollars: the provider spend the cache saved.",
            ["route"],
            registry=r,
        )
        self.bytes = Gauge(
            "aigw_cache_bytes", "Bytes held by the pod's memory cache store.", registry=r
        )
        self.entries = Gauge(
            "aigw_cache_entries", "Entries held by the pod's memory cache store.", registry=r
        )
        self.evictions = Counter(
            "aigw_cache_evictions",
            "Entries removed from the memory cache store, by reason (size, expired).",
            ["reason"],
            registry=r,
        )
        self.written_bytes = Counter(
            "aigw_cache_written_bytes",
            "Bytes of entries written to a cache store (after compression), by store.",
            ["store"],
            registry=r,
        )
        self.store_errors = Counter(
            "aigw_cache_store_errors",
            "Cache store operations that failed (fail-open: a miss or an answer not stored),"
            " by store and operation (get, put).",
            ["store", "operation"],
            registry=r,
        )


class Metrics:
    """The sidecar's collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "aigw_requests",
            "API requests answered, by route, HTTP status and error type.",
            ["route", "status", "error_type"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "aigw_request_duration_seconds",
            "Time from request to the last byte of the answer.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "aigw_upstream_duration_seconds",
            "Time of an upstream attempt until its response headers (time to first byte).",
            ["route", "backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_attempts = Counter(
            "aigw_upstream_attempts",
            "Upstream attempts, by outcome (ok or an error type).",
            ["route", "backend", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "aigw_tokens",
            "Tokens used, by kind (prompt, completion).",
            ["route", "backend", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "aigw_cost_usd",
            "Cost of calls at the backends' prices, in US dollars.",
            ["route", "backend"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "aigw_time_to_first_token_seconds",
            "Streams: time from request to the first chunk sent to the caller.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("aigw_requests_in_flight", "API requests in progress.", registry=r)
        self.inspection = Counter(
            "aigw_inspection_findings_total",
            "Inspection findings (redaction, prompt injection, tool calls, detector errors) by "
            "what was done about them; never the values.",
            ["direction", "kind", "category", "action"],
            registry=r,
        )
        self.bundle_reloads = Counter(
            "aigw_bundle_reloads",
            "Bundle loads, by result (ok, failed).",
            ["result"],
            registry=r,
        )
        self.bundle_revision = Gauge(
            "aigw_bundle_revision", "Revision of the loaded bundle (-1: none).", registry=r
        )
        self.bundle_revision.set(-1)
        self.bundle_loaded_timestamp = Gauge(
            "aigw_bundle_loaded_timestamp_seconds",
            "Unix time the loaded bundle was loaded.",
            registry=r,
        )
        self.request_attempts = Histogram(
            "aigw_request_attempts",
            "Upstream attempts per request that called upstream (retries and fallbacks + 1).",
            ["route"],
            buckets=(1, 2, 3, 4, 5, 6, 8, 10),
            registry=r,
        )
        self.retries = Counter(
            "aigw_upstream_retries",
            "Attempts made again after a retryable failure, by the failed backend and the"
            " failure's class.",
            ["route", "backend", "error_class"],
            registry=r,
        )
        self.fallbacks = Counter(
            "aigw_upstream_fallbacks",
            "Retries that moved to another backend, by the backend left and the one tried.",
            ["route", "from_backend", "to_backend"],
            registry=r,
        )
        self.retry_stops = Counter(
            "aigw_upstream_retry_stops",
            "Failed requests that were not retried further, by reason (not_retryable,"
            " attempts_exhausted, deadline, backoff_too_long).",
            ["route", "reason"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "aigw_circuit_breaker_state",
            "Circuit breaker of a (route, backend): 0 closed, 1 half-open, 2 open.",
            ["route", "backend"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "aigw_circuit_breaker_transitions",
            "Circuit breaker transitions, by the state moved to.",
            ["route", "backend", "state"],
            registry=r,
        )
        self.refused_attempts = Counter(
            "aigw_upstream_refused",
            "Requests answered without calling upstream because every usable backend was"
            " out (circuit_open, backend_backing_off, residency).",
            ["route", "reason"],
            registry=r,
        )
        self.cache = CacheMetrics(r)
        self._request_children: dict[tuple[str, int, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._backend_children: dict[tuple[str, str], BackendMetrics] = {}

    def backend(self, route: str, backend: str) -> BackendMetrics:
        """The children of one (route, backend), cached (label lookups cost microseconds)."""
        key = (route, backend)
        children = self._backend_children.get(key)
        if children is None:
            children = BackendMetrics(
                attempts_ok=self.upstream_attempts.labels(route, backend, "ok"),
                upstream_seconds=self.upstream_seconds.labels(route, backend),
                prompt_tokens=self.tokens.labels(route, backend, "prompt"),
                completion_tokens=self.tokens.labels(route, backend, "completion"),
                cost=self.cost.labels(route, backend),
            )
            self._backend_children[key] = children
        return children

    def breaker(self, route: str, backend: str) -> BreakerMetrics:
        """The breaker children of one (route, backend) (made when its health is)."""
        state = self.breaker_state.labels(route, backend)
        state.set(0)
        return BreakerMetrics(
            state,
            {
                name: self.breaker_transitions.labels(route, backend, name)
                for name in ("closed", "half_open", "open")
            },
        )

    def count_request(self, route: str, status: int, error_type: str, seconds: float) -> None:
        key = (route, status, error_type)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(route, str(status), error_type)
            self._request_children[key] = child
        child.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self.request_seconds.labels(route)
            self._latency_children[route] = latency
        latency.observe(seconds)
