"""The operator's Prometheus metrics, in a registry of their own (no process-wide state).

Labels are bounded: namespaces (which the admin controls) and small fixed sets of outcomes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """Every metric the operator exports, served at /metrics on the health port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "aigw_operator_reconciles_total",
            "Namespace reconciles, by result (published, unchanged, blocked, error).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "aigw_operator_reconcile_duration_seconds",
            "Time to list, compile and write one namespace's bundle and statuses.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.bundle_revision = Gauge(
            "aigw_operator_bundle_revision",
            "Revision of the bundle in force, by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.bundle_bytes = Gauge(
            "aigw_operator_bundle_size_bytes",
            "Size of the serialized bundle in force, by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.invalid_resources = Gauge(
            "aigw_operator_invalid_resources",
            "AIPolicy and ModelRoute resources with Valid=False, by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.admissions = Counter(
            "aigw_operator_admissions_total",
            "Pod admissions by the injection webhook, by decision reason.",
            ["reason"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "aigw_operator_leader",
            "1 while this replica leads (compiles bundles, polls rollouts), else 0.",
            registry=self.registry,
        )
        self.rollout_pods = Gauge(
            "aigw_operator_rollout_pods",
            "Injected pods by namespace and state (Updated, Stale, Refused, Unknown).",
            ["namespace", "state"],
            registry=self.registry,
        )
        self.bundle_refusals = Counter(
            "aigw_operator_bundle_refusals_total",
            "Bundles a pod refused (counted once per pod and bundle), by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.rollout_polls = Counter(
            "aigw_operator_rollout_polls_total",
            "Polls of a sidecar's /aigw/rollout, by result (ok, error).",
            ["result"],
            registry=self.registry,
        )
        self.admission_seconds = Histogram(
            "aigw_operator_admission_duration_seconds",
            "Time to answer one AdmissionReview.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
