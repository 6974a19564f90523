"""The operator's settings: frozen, documented, passed explicitly (kopf style).

``aigw operator`` builds these from flags and the environment (read there and nowhere else);
tests build them directly. Nothing in the operator reads the environment or a global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "BundleSettings",
    "KubeSettings",
    "OperatorSettings",
    "PeeringSettings",
    "Resources",
    "RolloutSettings",
    "SidecarSettings",
    "WebhookSettings",
]


@dataclass(frozen=True, slots=True)
class Resources:
    """Requests and limits of the injected sidecar container."""

    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str = "1"
    memory_limit: str = "256Mi"


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    """What the webhook injects."""

    image: str = "ghcr.io/aigw/aigw:0.1.0"
    """Container image of the sidecar (the aigw image; its entry point is ``aigw``)."""
    version: str = "0.1.0"
    """Sidecar version recorded in the pod's injection-status annotation."""
    command: tuple[str, ...] = ("aigw", "sidecar")
    """Command the sidecar container runs; the bundle/port flags are appended as args."""
    port: int = 15400
    """Loopback port of the proxy the app containers call."""
    admin_port: int = 15401
    """Port of /aigw/healthz, /aigw/ready, /metrics and /aigw/rollout (and /aigw/status for
    the pod's loopback)."""
    drain_timeout_s: int = 25
    """Longest drain of an injected sidecar on SIGTERM. Each pod gets
    ``min(this, terminationGracePeriodSeconds - DRAIN_MARGIN_S)``, and a pod that sets no
    grace period gets ``max(30, this + DRAIN_MARGIN_S)``, so the kubelet never kills a
    sidecar in the middle of its drain."""
    status_from_network: bool = False
    """Let injected sidecars serve /aigw/status (tenants, counters, usage) beyond the pod's
    loopback; off by default."""
    audit_size_limit: str | None = "1Gi"
    """Size limit of the audit ``emptyDir`` mounted at ``/var/log/aigw`` (the sidecar writes
    ``audit.jsonl`` there, rotated at 64 MiB, 8 rotated files kept: a log agent ships them).
    None: no audit volume and no ``--audit-file``, so the sidecar writes no records."""
    user_id: int = 65532
    """Non-root uid and gid the sidecar runs as."""
    resources: Resources = field(default_factory=Resources)
    image_pull_policy: str = "IfNotPresent"
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment of every injected sidecar (shared Redis, OpenTelemetry): the chart's
    ``AIGW_SIDECAR_<NAME>`` operator variables, as ``AIGW_<NAME>`` (``AIGW_SIDECAR_OTEL_<NAME>``
    as the standard ``OTEL_<NAME>``)."""
    native: Literal["auto", "always", "never"] = "auto"
    """Native sidecar (init container with restartPolicy Always): auto = if the apiserver is
    v1.29 or newer, where the SidecarContainers feature is on by default."""
    redis_tls_secret: str | None = None
    """Secret (in each injected pod's namespace) holding the PEM files of a ``rediss``
    Redis: mounted read-only at ``redis_tls_dir`` in the sidecar container only, where the
    ``AIGW_REDIS_TLS_*_FILE`` paths of ``env`` must point. None: nothing mounted."""
    redis_tls_dir: str = "/etc/aigw/redis-tls"
    """Where ``redis_tls_secret`` is mounted (a directory of the sidecar container)."""
    redaction_key_secret: str | None = None
    """Secret (in each injected pod's namespace) holding the key of redaction mode ``hash``:
    its entry ``redaction_key_entry`` is mounted read-only in the sidecar container only
    and passed as ``--redaction-key-file``, so every pod of the namespace (and every
    namespace given the same key) hashes a value to the same token. Not optional: a pod
    waits for it. None: each sidecar draws a key of its own (tokens match within a pod)."""
    redaction_key_entry: str = "key"
    """The entry of ``redaction_key_secret`` that holds the key (at least 16 bytes)."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The mutating admission webhook server, served by every replica."""

    enabled: bool = True
    host: str = "0.0.0.0"  # noqa: S104 - the apiserver must reach every replica
    port: int = 9443
    cert_dir: Path = Path("/tmp/aigw-webhook-certs")  # noqa: S108 - overridden in the chart
    """Holds tls.crt/tls.key (and ca.crt). Supplied from outside (chart, cert-manager) when
    present; otherwise generated at startup with ``cryptography``."""
    sans: tuple[str, ...] = ("127.0.0.1", "localhost")
    """Subject alternative names of a generated serving certificate (IPs or DNS names)."""
    cert_secret: tuple[str, str] | None = None
    """(namespace, name) of a Secret holding the certificate every replica serves; the first
    replica to start generates it there. None: use or generate files in ``cert_dir``."""
    configuration_name: str | None = None
    """MutatingWebhookConfiguration whose caBundle the operator patches after generating
    certificates; None when the caBundle is managed outside (chart, cert-manager). Generated
    certificates suit one replica: several replicas need one CA supplied to all of them."""
    register_url: str | None = None
    """Outside a cluster (local demo, development): create or replace the configuration
    ``configuration_name`` itself, calling the webhook at this ``https://host:port``."""
    excluded_namespaces: tuple[str, ...] = ("kube-system",)
    """Namespaces a registered configuration never selects (add the operator's own)."""
    failure_policy: Literal["Fail", "Ignore"] = "Fail"
    """failurePolicy of a registered configuration."""


@dataclass(frozen=True, slots=True)
class BundleSettings:
    """Compilation and history of the namespace bundles."""

    keep_revisions: int = 5
    """History ConfigMaps kept for rollback and audit (the one in force is always kept)."""
    debounce_seconds: float = 0.15
    """Quiet time after a change before compiling: a burst of edits gives one bundle."""
    max_delay_seconds: float = 1.0
    """Longest a change waits while edits keep arriving."""
    format_version: int = 2
    """Bundle format written: 2 (gzip, defaults once, sharded; sidecars from this release
    on) or 1 (one JSON file, for sidecars older than format 2 during an upgrade)."""
    part_bytes: int = 900_000
    """Largest part of a format-2 bundle (one per ConfigMap); tests lower it to shard."""


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """The rollout poller: which sidecar serves which bundle (leader only)."""

    enabled: bool = True
    interval_seconds: float = 0.5
    """Poll period while a namespace is converging (a published revision not yet served
    everywhere); 5x this once every pod serves it."""
    unknown_after_seconds: float = 10.0
    """A pod that has not answered for this long is ``Unknown``."""
    scrape_timeout_seconds: float = 1.0
    """Bound of one ``GET /aigw/rollout``."""
    concurrency: int = 16
    """Pods polled at once."""
    status_interval_seconds: float = 2.0
    """Shortest time between two ``status.rollout`` writes of a namespace's resources while
    it converges (a converged state is written at once; the ``aigw-rollout`` ConfigMap is
    always current)."""


@dataclass(frozen=True, slots=True)
class PeeringSettings:
    """kopf peering: only the live replica with the highest priority compiles."""

    name: str | None = "aigw-operator"
    """KopfPeering (ClusterKopfPeering when cluster-wide) object name; None = standalone."""
    priority: int = 0
    """Distinct per replica: equal priorities pause every replica."""
    lifetime_seconds: int = 60
    """A replica that stops sending keep-alives is presumed dead after this long."""


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """How to reach the apiserver."""

    kubeconfig: Path | None = None
    """A kubeconfig file (outside the cluster); None = the in-cluster service account."""
    context: str | None = None
    in_cluster_host: str | None = None
    """``https://host:port`` of the apiserver in the cluster (from KUBERNETES_SERVICE_*)."""
    service_account_dir: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Everything ``aigw operator`` needs."""

    kube: KubeSettings = field(default_factory=KubeSettings)
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty = cluster-wide."""
    sidecar: SidecarSettings = field(default_factory=SidecarSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    bundles: BundleSettings = field(default_factory=BundleSettings)
    peering: PeeringSettings = field(default_factory=PeeringSettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    health_host: str = "0.0.0.0"  # noqa: S104 - kubelet probes and Prometheus scrape it
    health_port: int = 8080
    """Serves /healthz, /readyz and /metrics."""
