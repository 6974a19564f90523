"""The GenAI client metrics and the per-tenant families, in the sidecar's Prometheus registry.

Always on (no OpenTelemetry import: ``prometheus_client`` only). Names follow the
OpenTelemetry GenAI conventions of :mod:`.semconv` translated to Prometheus (unit suffix,
``_total`` on counters); labels are the conventions' required attributes with dots as
underscores. Every label value is bounded: the operation is one of three words, the provider
one of four, the request model a backend model of the bundle, ``error_type`` one of the
sidecar's fixed error types, the modality ``unknown`` (no provider here breaks usage down by
modality).

Tenants and use cases come from the policies (a policy grants at most 65 tenants); still, a
sidecar keeps at most ``tenant_label_cap`` distinct (tenant, use case) pairs and counts any
further ones under ``tenant="_other", use_case="_other"`` (documented in docs/telemetry.md).
Never a user, a request id or a prompt.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from aigw_sidecar.loopmetrics import Counter, Gauge, Histogram

__all__ = ["OTHER", "GenAiMetrics", "InferenceChildren"]

OTHER = "_other"
_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""The conventions' explicit bucket boundaries of the duration and first-chunk histograms."""
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
_TOKEN_LABELS = [*_LABELS, "gen_ai_token_modality"]


class InferenceChildren:
    """The labelled children of one (operation, provider, model), looked up once."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "first_chunk",
        "input",
        "input_dist",
        "legacy_first_chunk",
        "legacy_input",
        "legacy_output",
        "output",
        "output_dist",
    )

    def __init__(self, metrics: GenAiMetrics, labels: tuple[str, str, str]) -> None:
        token = (*labels, "unknown")
        self.input = metrics.usage_input.labels(*token)
        self.output = metrics.usage_output.labels(*token)
        self.cache_read = metrics.usage_cache_read.labels(*token)
        self.cache_write = metrics.usage_cache_write.labels(*token)
        self.input_dist = metrics.operation_input.labels(*labels)
        self.output_dist = metrics.operation_output.labels(*labels)
        self.first_chunk = metrics.first_chunk.labels(*labels)
        self.legacy_input = self.legacy_output = self.legacy_first_chunk = None
        if metrics.legacy_token_usage is not None and metrics.legacy_first_chunk is not None:
            self.legacy_input = metrics.legacy_token_usage.labels(*labels, "input")
            self.legacy_output = metrics.legacy_token_usage.labels(*labels, "output")
            self.legacy_first_chunk = metrics.legacy_first_chunk.labels(*labels)


class GenAiMetrics:
    """The collectors (see the module docstring); ``dup`` adds the v1.41 names."""

    def __init__(self, registry: CollectorRegistry, *, dup: bool, tenant_cap: int) -> None:
        r = registry
        self.duration = Histogram(
            "gen_ai_client_inference_duration_seconds",
            "GenAI client inference operation duration: one upstream attempt, from the request "
            "to the end of the answer (a stream: its last chunk) or the error.",
            [*_LABELS, "error_type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.first_chunk = Histogram(
            "gen_ai_client_inference_time_to_first_chunk_seconds",
            "Streams: time from the upstream request to the first chunk received.",
            _LABELS,
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.usage_input = Counter(
            "gen_ai_client_inference_usage_input_tokens",
            "Input (prompt) tokens used, cached ones included.",
            _TOKEN_LABELS,
            registry=r,
        )
        self.usage_output = Counter(
            "gen_ai_client_inference_usage_output_tokens",
            "Output (completion) tokens used.",
            _TOKEN_LABELS,
            registry=r,
        )
        self.usage_cache_read = Counter(
            "gen_ai_client_inference_usage_cache_read_input_tokens",
            "Input tokens served from the provider's prompt cache (a subset of the input).",
            _TOKEN_LABELS,
            registry=r,
        )
        self.usage_cache_write = Counter(
            "gen_ai_client_inference_usage_cache_write_input_tokens",
            "Input tokens written to the provider's prompt cache (a subset of the input).",
            _TOKEN_LABELS,
            registry=r,
        )
        self.operation_input = Histogram(
            "gen_ai_client_inference_operation_input_tokens",
            "Input tokens per inference operation (percentiles; not for totals).",
            _LABELS,
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.operation_output = Histogram(
            "gen_ai_client_inference_operation_output_tokens",
            "Output tokens per inference operation (percentiles; not for totals).",
            _LABELS,
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.legacy_duration: Histogram | None = None
        self.legacy_token_usage: Histogram | None = None
        self.legacy_first_chunk: Histogram | None = None
        if dup:
            self.legacy_duration = Histogram(
                "gen_ai_client_operation_duration_seconds",
                "GenAI operation duration (semantic conventions v1.41 name).",
                [*_LABELS, "error_type"],
                buckets=_DURATION_BUCKETS,
                registry=r,
            )
            self.legacy_token_usage = Histogram(
                "gen_ai_client_token_usage",
                "Input and output tokens used (semantic conventions v1.41 name).",
                [*_LABELS, "gen_ai_token_type"],
                buckets=_TOKEN_BUCKETS,
                registry=r,
            )
            self.legacy_first_chunk = Histogram(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Streams: time to the first chunk (semantic conventions v1.41 name).",
                _LABELS,
                buckets=_DURATION_BUCKETS,
                registry=r,
            )
        self.tenant_requests = Counter(
            "aigw_tenant_requests",
            "API requests by the tenant and use case governance resolved, and the HTTP status "
            "class (2xx, 4xx, 5xx).",
            ["tenant", "use_case", "status_class"],
            registry=r,
        )
        self.tenant_tokens = Counter(
            "aigw_tenant_tokens",
            "Tokens used, by tenant, use case and kind (prompt, completion).",
            ["tenant", "use_case", "kind"],
            registry=r,
        )
        self.tenant_cost = Counter(
            "aigw_tenant_cost_usd",
            "Cost of calls at the backends' prices, in US dollars, by tenant and use case.",
            ["tenant", "use_case"],
            registry=r,
        )
        self.budget_used = Gauge(
            "aigw_budget_used_ratio",
            "Share of a budget used (0..1 and past it), as the last call of this sidecar that "
            "reserved against it saw it (shared budgets: across every replica).",
            ["budget", "tenant", "use_case"],
            registry=r,
        )
        self.cache_requests = Counter(
            "aigw_cache_requests",
            "API requests by route and cache outcome (X-AIGW-Cache: hit, miss, bypass).",
            ["route", "cache"],
            registry=r,
        )
        self._cap = tenant_cap
        self._pairs: set[tuple[str, str]] = set()
        self._children: dict[tuple[str, str, str], InferenceChildren] = {}
        self._durations: dict[tuple[str, str, str, str], tuple[Histogram, Histogram | None]] = {}

    def inference(self, operation: str, provider: str, model: str) -> InferenceChildren:
        key = (operation, provider, model)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = InferenceChildren(self, key)
        return children

    def durations(
        self, operation: str, provider: str, model: str, error_type: str
    ) -> tuple[Histogram, Histogram | None]:
        """The duration child of these labels (and its v1.41 twin under ``dup``)."""
        key = (operation, provider, model, error_type)
        found = self._durations.get(key)
        if found is None:
            legacy = self.legacy_duration
            found = (
                self.duration.labels(*key),
                None if legacy is None else legacy.labels(*key),
            )
            self._durations[key] = found
        return found

    def tenant(self, tenant: str, use_case: str) -> tuple[str, str]:
        """The label values of (tenant, use case): themselves while under the cap."""
        pair = (tenant, use_case)
        if pair in self._pairs:
            return pair
        if len(self._pairs) < self._cap:
            self._pairs.add(pair)
            return pair
        return OTHER, OTHER
