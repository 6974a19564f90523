"""The sidecar's settings: one frozen dataclass, built once by ``aigw sidecar`` from flags and
the environment (the only place either is read) and passed explicitly from there on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_SECRETS_DIR", "SidecarSettings", "parse_downward_labels"]

DEFAULT_SECRETS_DIR = Path("/var/run/aigw/secrets")


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    """How one sidecar process runs."""

    bundle_path: Path
    """The mounted bundle file (kubelet layout: ``dir/bundle.json -> ..data/bundle.json``)."""
    port: int = 8787
    """API port. It binds ``host`` only: the app reaches it over the pod's loopback."""
    admin_port: int = 8788
    """Admin port: /metrics, /healthz, /readyz, /aigw/status."""
    host: str = "127.0.0.1"
    """API bind address. Loopback, so nothing outside the pod can use the sidecar's keys."""
    admin_host: str = "0.0.0.0"  # noqa: S104 - probes and Prometheus scrape from outside the pod
    """Admin bind address."""
    secrets_dir: Path = DEFAULT_SECRETS_DIR
    """Where provider Secrets are mounted: ``<secrets_dir>/<secret name>/<key>``."""
    reload_interval_s: float = 1.0
    """How often the bundle path is polled for a new bundle."""
    drain_timeout_s: float = 25.0
    """On SIGTERM, how long requests in flight may take to finish."""
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
    lease_s: float = 30.0
    """How long a reservation and its concurrency lease are held in the state store without
    renewal; renewed every third of it while the call runs, so a sidecar that dies holds
    them at most this long."""
    tokenizer: str = "estimate"
    """Prompt token counting: ``estimate`` (conservative, built in) or an OpenAI encoding
    (``o200k_base``, ``cl100k_base``) when the optional ``bpe-openai`` package is installed."""


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
