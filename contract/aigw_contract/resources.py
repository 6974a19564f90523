"""The Kubernetes envelope of the two custom resources: apiVersion, kind, metadata, status.

Only the fields aigw reads are modelled; other metadata (uid, managedFields, ...) that
``kubectl get -o yaml`` prints is accepted and ignored, so the same files round-trip.
Status follows the API conventions: conditions with type/status/reason/message/
observedGeneration/lastTransitionTime, plus the bundle revision the resource is part of.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from ._base import Model
from .policy import AIPolicySpec
from .route import ModelRouteSpec

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "AIPolicy",
    "AIPolicyStatus",
    "Condition",
    "ModelRoute",
    "ModelRouteStatus",
    "ObjectMeta",
    "Resource",
    "RolloutStatus",
]

GROUP = "aigw.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

ResourceName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
]


class ObjectMeta(Model):
    """The subset of Kubernetes object metadata aigw uses."""

    model_config = ConfigDict(extra="ignore")

    name: ResourceName
    """Name of the resource (a DNS-1123 label: it is also what requests name)."""
    namespace: ResourceName | None = None
    """Namespace; offline compilation takes it from --namespace when absent."""
    generation: int | None = None
    """Generation, set by the apiserver."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""


class Condition(Model):
    """A status condition, as in the Kubernetes API conventions."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)]
    """Condition type: Ready or Valid."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    """One CamelCase word saying why."""
    message: Annotated[str, StringConstraints(max_length=32768)] = ""
    """Human-readable details."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the condition was computed for."""
    last_transition_time: datetime
    """When the status last changed."""


class RolloutStatus(Model):
    """Which injected pods of the namespace serve the bundle in force (the operator polls
    every sidecar; see docs/operator.md, "Rollout status")."""

    model_config = ConfigDict(extra="ignore")

    revision: int | None = None
    """The revision in force (published, or restored by a rollback)."""
    synced: str = ""
    """``updated/total``, e.g. ``38/40``: the SYNCED column."""
    total: int = 0
    """Injected pods of the namespace."""
    updated: int = 0
    """Pods serving the revision in force."""
    stale: int = 0
    """Pods serving another revision without having refused this one (still syncing)."""
    refused: int = 0
    """Pods that refused the revision in force and keep serving their last good one."""
    unknown: int = 0
    """Pods that did not answer for a while (stopped, unreachable, not started)."""
    observed_at: datetime | None = None
    """When the operator last saw this state change."""


class AIPolicyStatus(Model):
    """Observed state of an AIPolicy, written by the operator."""

    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    """Ready and Valid conditions."""
    observed_generation: int | None = None
    """The .metadata.generation last processed."""
    bundle_revision: int | None = None
    """Revision of the namespace bundle that includes this resource."""
    tenant: str | None = None
    """The resolved default tenant."""
    rollout: RolloutStatus | None = None
    """Which pods of the namespace serve the bundle in force."""


class ModelRouteStatus(Model):
    """Observed state of a ModelRoute, written by the operator."""

    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    """Ready and Valid conditions."""
    observed_generation: int | None = None
    """The .metadata.generation last processed."""
    bundle_revision: int | None = None
    """Revision of the namespace bundle that includes this resource."""
    rollout: RolloutStatus | None = None
    """Which pods of the namespace serve the bundle in force."""


class AIPolicy(Model):
    """Who may call which model routes, for which use cases, within which limits and budgets."""

    api_version: Literal["aigw.dev/v1alpha1"]
    """aigw.dev/v1alpha1"""
    kind: Literal["AIPolicy"]
    """AIPolicy"""
    metadata: ObjectMeta
    """Standard object metadata."""
    spec: AIPolicySpec
    """Desired state."""
    status: AIPolicyStatus | None = None
    """Observed state."""


class ModelRoute(Model):
    """A named intent served by weighted provider backends with retries and fallbacks."""

    api_version: Literal["aigw.dev/v1alpha1"]
    """aigw.dev/v1alpha1"""
    kind: Literal["ModelRoute"]
    """ModelRoute"""
    metadata: ObjectMeta
    """Standard object metadata."""
    spec: ModelRouteSpec
    """Desired state."""
    status: ModelRouteStatus | None = None
    """Observed state."""


Resource = AIPolicy | ModelRoute
