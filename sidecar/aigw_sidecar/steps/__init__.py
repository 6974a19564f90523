"""The pipeline's steps, one module each. See :mod:`aigw_sidecar.pipeline` for the interface
and :func:`default_steps` for what a sidecar runs.

A plug-in factory (``SidecarServer(settings, steps=factory)``) gets the sidecar's
:class:`Services` and returns its steps and attempt middlewares in any order: steps sort by
``phase``, middlewares by ``stage``. Governance (admit, limit), residency and inspection are
always added by the app, so they are never left out by accident; so are the audit steps
when the sidecar has an audit log (:func:`audit_steps`) and the telemetry steps
(:func:`telemetry_steps`: GenAI metrics always, traces when tracing is configured).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aigw_sidecar.attempts import AttemptMiddleware, CircuitBreaker, RetryFallback
from aigw_sidecar.audit import AuditLog, hasher_of
from aigw_sidecar.governance import TokenCounter
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Step
from aigw_sidecar.settings import SidecarSettings
from aigw_sidecar.telemetry import GenAiMetrics

from .account import Account
from .audit import Audit, AuditAnswer, AuditFacts
from .cache import CacheAnswer, CacheLookup, cache_steps
from .caching import Caching
from .genai_metrics import GenAiMetricsStep
from .govern import Admit, Governance, Limit
from .idempotency import Idempotency
from .inspect import Inspect, InspectAnswer, Inspection
from .residency import Residency
from .route import ResolveRoute, request_claims, route_to

if TYPE_CHECKING:
    from aigw_sidecar.telemetry.export import Tracing

__all__ = [
    "Account",
    "Admit",
    "Audit",
    "AuditAnswer",
    "AuditFacts",
    "CacheAnswer",
    "CacheLookup",
    "Caching",
    "GenAiMetricsStep",
    "Governance",
    "Idempotency",
    "Inspect",
    "InspectAnswer",
    "Inspection",
    "Limit",
    "Plugin",
    "Residency",
    "ResolveRoute",
    "Services",
    "audit_steps",
    "cache_steps",
    "default_steps",
    "request_claims",
    "route_to",
    "telemetry_steps",
]

Plugin = Step | AttemptMiddleware


@dataclass(frozen=True, slots=True)
class Services:
    """What a sidecar hands its plug-in factory."""

    settings: SidecarSettings
    metrics: Metrics
    rng: random.Random
    """The sidecar's seedable RNG (backend picks, jitter)."""
    counter: TokenCounter
    """The one token estimator (the governor's)."""
    audit: AuditLog | None = None
    """The audit log (None: no audit sink configured)."""
    genai: GenAiMetrics | None = None
    """The GenAI and tenant metrics (None: a plug-in test without them)."""
    tracing: Tracing | None = None
    """The tracer (None: tracing is not configured)."""
    state_client: Any = None
    """The shared-state Redis client the governance store opened (None: memory state); the
    response cache keeps its entries there too (``docs/cache.md``)."""


def audit_steps(services: Services) -> list[Plugin]:
    """The audit steps when the sidecar has an audit log (none otherwise)."""
    log = services.audit
    if log is None:
        return []
    hasher = hasher_of(services.settings)
    return [Audit(log, log.pod, hasher, services.counter), AuditFacts(), AuditAnswer()]


def telemetry_steps(services: Services) -> list[Plugin]:
    """The GenAI metrics step, and with tracing the trace step and the attempt span."""
    found: list[Plugin] = []
    if services.genai is not None:
        found.append(GenAiMetricsStep(services.genai))
    tracing = services.tracing
    if tracing is not None:
        from .trace import AttemptSpan, Trace  # noqa: PLC0415 - imports OpenTelemetry
        from .trace_content import TraceContent  # noqa: PLC0415 - only with tracing

        dup = services.settings.telemetry.semconv == "dup"
        found.append(Trace(tracing.tracer, baggage=tracing.config.baggage, dup=dup))
        found.append(AttemptSpan(tracing.tracer))
        found.append(TraceContent())
    return found


def default_steps(services: Services) -> Sequence[Plugin]:
    """The standard steps and attempt middlewares (governance is added by the app)."""
    return [
        ResolveRoute(),
        Account(services.metrics, services.counter),
        RetryFallback(services.rng, services.metrics),
        CircuitBreaker(services.metrics),
    ]
