"""The sidecar's settings: one frozen dataclass, built once by ``aigw sidecar`` from flags and
the environment (the only place either is read) and passed explicitly from there on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_SECRETS_DIR",
    "AuditConfig",
    "SidecarSettings",
    "TelemetryConfig",
    "TracingConfig",
    "parse_downward_labels",
]

DEFAULT_SECRETS_DIR = Path("/var/run/aigw/secrets")


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Where audit records go (``docs/audit.md``). No sink: no records are written."""

    file: Path | None = None
    """A JSON-lines file, rotated by size (in a pod: the emptyDir the injector mounts)."""
    stdout: bool = False
    """Also write each record as a line on standard output (logs go to standard error)."""
    otlp_endpoint: str | None = None
    """Also send records as OTLP logs to this OTLP/HTTP base URL (``http://host:4318``)."""
    file_max_bytes: int = 64 * 1024 * 1024
    """Rotate the file once it would grow past this size."""
    file_keep: int = 8
    """Rotated files kept at most (older ones are removed, and counted, before retention)."""
    queue_size: int = 10_000
    """Records waiting for the writer at most; full: each use case's ``onQueueFull``."""
    hash_key: bytes | None = field(default=None, repr=False)
    """Key of the user-id hash (HMAC-SHA256). None: a random key for this process."""

    @property
    def enabled(self) -> bool:
        return self.file is not None or self.stdout or self.otlp_endpoint is not None


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """OpenTelemetry traces exported by OTLP (``docs/telemetry.md``), from the standard
    ``OTEL_*`` variables. The SDK and the exporter are imported only when this exists."""

    endpoint: str
    """Where spans go: for ``http/protobuf`` the full traces URL (``.../v1/traces``), for
    ``grpc`` the collector's URL or ``host:port``."""
    protocol: Literal["grpc", "http/protobuf"] = "http/protobuf"
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Extra export headers (an API key of a hosted backend): never logged."""
    timeout_s: float = 10.0
    """Longest one export (with its retries) may take, in the exporter's thread."""
    insecure: bool = False
    """gRPC without TLS (an ``http://`` endpoint is insecure already)."""
    compression: Literal["none", "gzip"] = "none"
    certificate: str | None = None
    """A CA bundle file to verify the collector's TLS certificate with."""
    service_name: str = "aigw-sidecar"
    resource_attributes: tuple[tuple[str, str], ...] = ()
    """``OTEL_RESOURCE_ATTRIBUTES`` (the injector sets the pod's namespace, name and service
    account) and the attributes the sidecar adds itself."""
    sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_always_on"
    ratio: float = 1.0
    """The ratio of the ``traceidratio`` samplers (``OTEL_TRACES_SAMPLER_ARG``)."""
    baggage: bool = False
    """``OTEL_PROPAGATORS`` names ``baggage``: a caller's W3C baggage is passed on to the
    provider. Otherwise it is ignored."""
    queue_size: int = 2048
    """Ended spans waiting for the exporter at most; past it new spans are dropped and
    counted (``aigw_trace_spans_dropped_total{reason="queue_full"}``)."""
    batch_size: int = 512
    schedule_delay_s: float = 5.0
    """The longest an ended span waits before its batch is exported."""


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Traces (optional) and the GenAI metrics (always on, Prometheus)."""

    tracing: TracingConfig | None = None
    """None: no traces, and no OpenTelemetry module is imported."""
    semconv: Literal["latest", "dup"] = "latest"
    """``latest``: the GenAI conventions of semantic-conventions-genai v0.1.0 only; ``dup``:
    the v1.41 names (``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
    ``gen_ai.usage.cache_creation.input_tokens``) too, for dashboards built on them."""
    tenant_label_cap: int = 200
    """Most distinct (tenant, use case) label pairs of the tenant metrics in one sidecar;
    further pairs are counted under ``tenant="_other"``. Tenants come from the policies
    (at most 65 a policy), so the cap is reached only by a bundle with very many."""


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    """How one sidecar process runs."""

    bundle_path: Path
    """The mounted bundle file (kubelet layout: ``dir/bundle.json -> ..data/bundle.json``)."""
    port: int = 8787
    """API port. It binds ``host`` only: the app reaches it over the pod's loopback."""
    admin_port: int = 8788
    """Admin port: /metrics, /healthz, /readyz, and /aigw/status for loopback peers."""
    host: str = "127.0.0.1"
    """API bind address. Loopback, so nothing outside the pod can use the sidecar's keys."""
    admin_host: str = "0.0.0.0"  # noqa: S104 - probes and Prometheus scrape from outside the pod
    """Admin bind address: the kubelet's probes and Prometheus reach it on the pod's IP."""
    status_from_network: bool = False
    """Serve ``/aigw/status`` (tenants, counters, usage, the bundle path) to peers beyond the
    pod's loopback too. Off: a request to it from any other address is a 404."""
    secrets_dir: Path = DEFAULT_SECRETS_DIR
    """Where provider Secrets are mounted: ``<secrets_dir>/<secret name>/<key>``."""
    reload_interval_s: float = 1.0
    """How often the bundle path is polled for a new bundle."""
    drain_timeout_s: float = 25.0
    """On SIGTERM, the whole drain: requests in flight finish within it, or are cut (a stream
    ends with a typed error event) so that the process exits by then. Keep it below the pod's
    ``terminationGracePeriodSeconds`` (the operator injects the two consistently)."""
    idle_timeout_s: float = 30.0
    """A caller connection with no request in progress is closed this long after it opened or
    its previous response ended: silent connections, idle keep-alive ones, and request heads
    still trickling in. Longer than the SDKs' own keep-alive expiry (5 s for httpx)."""
    body_timeout_s: float = 30.0
    """Longest a caller may take to send a request body once its headers arrived (408)."""
    send_timeout_s: float = 30.0
    """Longest one write to the caller may wait for the caller to read (a stream chunk, an
    answer): past it the connection is closed and the call ends, which releases its upstream
    connection and its lease. ``idleMs`` of a route bounds the upstream side."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted (413 above it)."""
    max_header_bytes: int = 8190
    """Largest request line and header field (aiohttp's parser refuses longer ones)."""
    max_headers: int = 100
    """Most header fields in one request."""
    upstream_pool_size: int = 256
    """Keep-alive connections kept open to providers, in total."""
    seed: int | None = None
    """Seed of the backend-choice RNG (tests, reproducible canaries); None: from the OS."""
    pod_namespace: str | None = None
    """The pod's namespace (downward API); None: the bundle's namespace."""
    pod_name: str | None = None
    """The pod's name (downward API), for logs and audit records."""
    service_account: str = "default"
    """The pod's service account (downward API)."""
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    """The pod's labels (downward API file, parsed with :func:`parse_downward_labels`)."""
    redis_url: str | None = None
    """Shared state for rate limits and budgets across replicas; None: this pod's memory."""
    redis_timeout_s: float = 0.5
    """Bound of connecting to Redis and of each reply; past it the policy's failMode applies."""
    redis_tls_ca_file: Path | None = None
    """``rediss://``: PEM bundle of the CAs that sign the server's certificate (None: the
    system's)."""
    redis_tls_cert_file: Path | None = None
    """``rediss://``: client certificate (PEM), for a Redis with ``tls-auth-clients yes``."""
    redis_tls_key_file: Path | None = None
    """``rediss://``: private key of ``redis_tls_cert_file`` (None: inside that file)."""
    redis_tls_server_name: str | None = None
    """``rediss://``: name the server's certificate must carry (None: the URL's host)."""
    lease_s: float = 30.0
    """How long a reservation and its concurrency lease are held in the state store without
    renewal; renewed every third of it while the call runs, so a sidecar that dies holds
    them at most this long."""
    tokenizer: str = "estimate"
    """Prompt token counting: ``estimate`` (conservative, built in) or an OpenAI encoding
    (``o200k_base``, ``cl100k_base``) when the optional ``bpe-openai`` package is installed."""
    redaction_key: bytes | None = field(default=None, repr=False)
    """Key of redaction mode ``hash`` (from a mounted Secret): replicas sharing it produce
    the same hash for the same value and tenant. None: a random key per process."""
    injection_classifier: str | None = None
    """``module:factory`` of an optional prompt-injection classifier (imported only when
    set); ``factory()`` returns an object with ``name``, ``threshold`` and ``score(text)``."""
    audit: AuditConfig = field(default_factory=AuditConfig)
    """Audit record sinks (none: no records)."""
    cache_store: str = "auto"
    """Where the response cache keeps entries (``docs/cache.md``): ``memory`` (this pod),
    ``redis`` (the shared-state Redis, shared by every sidecar of a tenant), or ``auto``
    (Redis when ``redis_url`` is set, else memory)."""
    cache_max_bytes: int = 8 * 1024 * 1024
    """Bound of the memory cache store, in bytes (entries, keys and bookkeeping)."""
    cache_max_entry_bytes: int = 1024 * 1024
    """Largest entry a cache store keeps (after compression for Redis); the memory store
    also keeps none larger than an eighth of ``cache_max_bytes``."""
    cache_semantic_max_bytes: int = 8 * 1024 * 1024
    """Bound of the semantic cache's in-process vector index, in bytes (1,536-dimension
    vectors: about 1,300 of them)."""
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    """Traces and GenAI metrics (``docs/telemetry.md``)."""


def parse_downward_labels(text: str) -> dict[str, str]:
    """The labels of a downward API ``labels`` file (``key="value"`` lines, Go-quoted)."""
    labels: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, quoted = line.partition("=")
        if not sep or not key.strip():
            continue
        try:
            value = json.loads(quoted)
        except ValueError:
            value = quoted.strip('"')
        labels[key.strip()] = str(value)
    return labels
