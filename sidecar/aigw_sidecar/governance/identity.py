"""Who is calling: the pod's identity plus the request's claims, resolved against policies.

The pod identity (namespace, service account, labels) comes from the downward API through
the sidecar's settings and is fixed for the life of the process, so the policy that governs
this pod is resolved once per bundle (:class:`PolicyIndex`), not once per request. Per
request only the claims are checked: a request may claim the policy's tenant or one of its
``additionalTenants``, and one of its use cases (the policy's default when it names none).

Most specific policy: among the policies whose selector matches the pod, the one with the
most requirements (``matchLabels`` entries plus ``matchExpressions``) wins; ties go to the
lexicographically first name, so every replica picks the same policy. The *app* of a pod is
its ``app.kubernetes.io/name`` label, else its ``app`` label, else its service account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aigw_contract import Bundle, BundlePolicy, UseCase
from aigw_contract.policy import LabelSelector

from .decisions import Denied, DenyKind

__all__ = ["Identity", "PodIdentity", "PolicyIndex", "selector_matches", "specificity"]


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """The workload the sidecar sits beside (downward API values, via settings)."""

    namespace: str | None = None
    """None: the bundle's namespace (the bundle mounted into a pod is its namespace's)."""
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def app(self) -> str:
        """The app name limits and budgets with ``scope: app`` count under."""
        return (
            self.labels.get("app.kubernetes.io/name")
            or self.labels.get("app")
            or self.service_account
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is: resolved tenant, app and use case under one policy."""

    namespace: str
    tenant: str
    app: str
    policy: BundlePolicy
    use_case: UseCase
    violations: tuple[str, ...] = ()
    """Claims that were not granted but let through because the policy does not enforce."""


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (an empty selector matches everything)."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = key_value = labels.get(req.key)
        if req.operator == "In" and key_value not in req.values:
            return False
        if req.operator == "NotIn" and present is not None and key_value in req.values:
            return False
        if req.operator == "Exists" and present is None:
            return False
        if req.operator == "DoesNotExist" and present is not None:
            return False
    return True


def specificity(selector: LabelSelector) -> int:
    """How many requirements a selector states: more is more specific."""
    return len(selector.match_labels) + len(selector.match_expressions)


class PolicyIndex:
    """The policy governing one pod under one bundle, with its use cases by name."""

    __slots__ = ("_granted", "_tenants", "_use_cases", "namespace", "pod", "policy")

    def __init__(self, bundle: Bundle, pod: PodIdentity) -> None:
        self.pod = pod
        self.namespace = pod.namespace or bundle.namespace
        matching = [
            p
            for p in bundle.policies
            if bundle.namespace == self.namespace and selector_matches(p.selector, pod.labels)
        ]
        matching.sort(key=lambda p: (-specificity(p.selector), p.name))
        self.policy: BundlePolicy | None = matching[0] if matching else None
        self._use_cases: dict[str, UseCase] = {}
        self._tenants: frozenset[str] = frozenset()
        self._granted: dict[tuple[str, str], Identity] = {}
        """The identity of each granted (tenant, use case) pair, made on first use: it is
        immutable, and the pairs are bounded by the policy."""
        if self.policy is not None:
            self._use_cases = {u.name: u for u in self.policy.use_cases}
            self._tenants = frozenset([self.policy.tenant, *self.policy.additional_tenants])

    def identify(self, tenant: str | None, use_case: str | None, *, enforce: bool) -> Identity:
        """Resolve the request's claims; raise :class:`Denied` for a claim not granted.

        With ``enforce=False`` (observe and warn modes) a claim that is not granted is
        recorded as a violation and the request continues under the policy's defaults.
        """
        policy = self.policy
        if policy is None:
            raise Denied(
                DenyKind.PERMISSION_DENIED,
                f"no AIPolicy in namespace {self.namespace!r} governs this workload",
                code="no_policy",
                step="identify",
            )
        chosen_tenant = tenant or policy.tenant
        name = use_case or policy.default_use_case
        granted = self._granted.get((chosen_tenant, name))
        if granted is not None:
            return granted
        violations: list[str] = []
        if chosen_tenant not in self._tenants:
            if enforce:
                raise Denied(
                    DenyKind.PERMISSION_DENIED,
                    f"tenant {chosen_tenant!r} is not granted by policy {policy.name!r}",
                    code="tenant_not_granted",
                    step="identify",
                )
            violations.append(f"tenant {chosen_tenant!r} not granted")
            chosen_tenant = policy.tenant
        spec = self._use_cases.get(name)
        if spec is None:
            if enforce:
                raise Denied(
                    DenyKind.PERMISSION_DENIED,
                    f"use case {name!r} is not granted by policy {policy.name!r}",
                    code="use_case_not_granted",
                    step="identify",
                )
            violations.append(f"use case {name!r} not granted")
            spec = self._use_cases[policy.default_use_case]
        identity = Identity(
            namespace=self.namespace,
            tenant=chosen_tenant,
            app=self.pod.app,
            policy=policy,
            use_case=spec,
            violations=tuple(violations),
        )
        if not violations:
            self._granted[chosen_tenant, name] = identity
        return identity
