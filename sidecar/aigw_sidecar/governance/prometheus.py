"""Governance metrics in the sidecar's Prometheus registry.

Label values are bounded by the policy and by fixed words: ``operation`` (reserve, settle),
``outcome`` (fail_open, fail_closed, fail_closed_not_enforced, deferred), ``counter``
(requests_per_minute, tokens_per_minute, concurrency, ``budget:<name>:tokens|usd``),
``verdict`` (blocked, warned, observed, fallback), ``step`` and ``code`` of a decision,
the ``outcome`` of a lease (leased, refused, failed, returned).
Never a tenant, user or request id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from aigw_sidecar.loopmetrics import Counter

from .decisions import Decision

__all__ = ["PrometheusObserver"]


class PrometheusObserver:
    """An :class:`~aigw_sidecar.governance.Observer` that counts into a registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state_unavailable_total = Counter(
            "aigw_state_unavailable",
            "Shared state (Redis) unreachable, by operation and what the policy made of it.",
            ["operation", "outcome"],
            registry=registry,
        )
        self.limit_events = Counter(
            "aigw_limit_events",
            "Rate-limit and budget events: blocked, warned, observed or degraded (fallback).",
            ["counter", "verdict"],
            registry=registry,
        )
        self.lease_events = Counter(
            "aigw_lease_events",
            "Hot-tenant mode: blocks leased, refused (calls counted per call), failed, returned.",
            ["outcome"],
            registry=registry,
        )
        self.decisions = Counter(
            "aigw_policy_decisions",
            "Failed governance checks, by step, code and verdict (blocked, warned, observed).",
            ["step", "code", "verdict"],
            registry=registry,
        )

    def state_unavailable(self, operation: str, outcome: str) -> None:
        self.state_unavailable_total.labels(operation, outcome).inc()

    def limit_decision(self, counter: str, verdict: str) -> None:
        self.limit_events.labels(counter, verdict).inc()

    def lease_event(self, outcome: str) -> None:
        self.lease_events.labels(outcome).inc()

    def decision(self, decision: Decision) -> None:
        """Count one identify/authorize/constrain decision."""
        self.decisions.labels(decision.step, decision.code, decision.verdict.value).inc()
