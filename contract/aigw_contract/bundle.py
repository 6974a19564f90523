"""The policy bundle: the versioned contract between the operator and the sidecar.

The operator compiles every AIPolicy and ModelRoute of a namespace into one bundle and
writes it as a ConfigMap; the sidecar reads it from a mounted file. The bundle holds no
Kubernetes types, so the data plane never depends on the control plane's API version.

Compatibility rule: ``formatVersion`` changes only when a reader of the previous version
would misread a new bundle. A reader refuses a format it does not know
(:class:`UnsupportedBundleFormat`) and keeps its last good bundle. ``contentHash`` covers the
format version, namespace, policies and routes, and from format 2 on the revision too (so a
bundle whose revision was edited by hand is refused, instead of showing a never-compiled
version in ``X-AIGW-Policy-Version``); never the generation time. Format 1 keeps its original
definition (revision not covered), so every bundle ever written still reads as it did.
"Nothing changed" is: the new compile, at the revision in force, has the hash in force.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from ._base import Model, Name
from .errors import InvalidBundle, Problem, UnsupportedBundleFormat
from .policy import EnforcementMode, FailMode, LabelSelector, ResidencyRule, UseCase
from .route import Backend, CircuitBreaker, ModelAlias, RetryPolicy, RouteIntent, Timeouts
from .validation import problems_from_validation_error

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "MAX_BUNDLE_BYTES",
    "Bundle",
    "BundlePolicy",
    "BundleRoute",
    "compute_content_hash",
    "parse_bundle",
]

BUNDLE_FORMAT_VERSION = 1
MAX_BUNDLE_BYTES = 1_000_000
"""Largest serialized bundle: a ConfigMap holds 1 MiB including its metadata."""


class BundlePolicy(Model):
    """An AIPolicy as the data plane sees it: defaults resolved, no Kubernetes metadata."""

    name: Name
    """Name of the AIPolicy."""
    mode: EnforcementMode
    """Enforcement mode."""
    selector: LabelSelector
    """Pods the policy governs."""
    tenant: Name
    """Default tenant (the namespace unless the policy names one)."""
    additional_tenants: list[Name]
    """Other tenants a request may claim."""
    default_use_case: Name
    """Use case of requests that name none."""
    use_cases: list[UseCase]
    """Use cases granted."""
    fail_mode: FailMode
    """Behaviour when shared state is unreachable."""
    residency: list[ResidencyRule] = Field(default_factory=list)
    """Where data of each classification may be sent. Written only when there are rules, so
    a bundle without them is byte for byte what readers from before this field read."""

    @model_serializer(mode="wrap")
    def _omit_empty_residency(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("residency") == []:
            del data["residency"]
        return data


class BundleRoute(Model):
    """A ModelRoute as the data plane sees it."""

    name: Name
    """Name of the ModelRoute: what a request's ``model`` field names."""
    intent: RouteIntent
    """The intent the route serves."""
    model_aliases: list[ModelAlias] = Field(default_factory=list)
    """Other names a request's ``model`` may use for this route (unique in the bundle).
    Written only when there are some, so a bundle without aliases is byte for byte what
    readers from before this field read."""
    backends: list[Backend]
    """Weighted backends."""
    fallback: list[Name]
    """Fallback order of backend names."""
    retry: RetryPolicy
    """Retry policy."""
    timeouts: Timeouts
    """Attempt timeouts."""
    circuit_breaker: CircuitBreaker
    """Circuit-breaker thresholds."""

    @model_serializer(mode="wrap")
    def _omit_empty_aliases(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("modelAliases", "model_aliases"):
            if data.get(key) == []:
                del data[key]
        return data


class Bundle(Model):
    """A compiled, versioned set of policies and routes for one namespace."""

    format_version: int = Field(ge=1)
    """Bundle format version; readers refuse versions they do not know."""
    revision: int = Field(ge=0)
    """Monotonically increasing revision within the namespace (0 for offline compiles)."""
    content_hash: str
    """sha256 of the canonical content (format version, namespace, policies, routes)."""
    generated_at: datetime
    """When the bundle was compiled."""
    namespace: Name
    """Namespace whose resources the bundle holds."""
    policies: list[BundlePolicy]
    """Policies, sorted by name."""
    routes: list[BundleRoute]
    """Routes, sorted by name."""

    def to_json_bytes(self) -> bytes:
        """Canonical serialization: sorted keys, no insignificant whitespace."""
        return _canonical(self.model_dump(mode="json", by_alias=True)) + b"\n"

    def with_revision(self, revision: int) -> Bundle:
        """This bundle as revision ``revision``, its content hash recomputed (format 2 hashes
        the revision; never set ``revision`` with ``model_copy``)."""
        content_hash = compute_content_hash(
            self.format_version, self.namespace, self.policies, self.routes, revision
        )
        return self.model_copy(update={"revision": revision, "content_hash": content_hash})

    def route(self, name: str) -> BundleRoute | None:
        """The route called ``name``, if any."""
        return next((r for r in self.routes if r.name == name), None)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash_content(
    format_version: Any, namespace: Any, policies: Any, routes: Any, revision: Any = None
) -> str:
    """sha256 of the canonical content. From format 2 on the revision is part of it (a
    hand-edited revision no longer passes); format 1 keeps its original definition."""
    content = {
        "formatVersion": format_version,
        "namespace": namespace,
        "policies": policies,
        "routes": routes,
    }
    if format_version != BUNDLE_FORMAT_VERSION:
        content["revision"] = revision
    return "sha256:" + hashlib.sha256(_canonical(content)).hexdigest()


def compute_content_hash(
    format_version: int,
    namespace: str,
    policies: list[BundlePolicy],
    routes: list[BundleRoute],
    revision: int = 0,
) -> str:
    """The content hash of a bundle with these parts (``revision`` counts from format 2)."""
    return _hash_content(
        format_version,
        namespace,
        [p.model_dump(mode="json", by_alias=True) for p in policies],
        [r.model_dump(mode="json", by_alias=True) for r in routes],
        revision,
    )


def _alias_problems(routes: list[BundleRoute]) -> list[Problem]:
    route_names = {r.name for r in routes}
    owner: dict[str, str] = {}
    problems: list[Problem] = []
    for route in routes:
        for ai, alias in enumerate(route.model_aliases):
            message = None
            if alias in route_names and alias != route.name:
                message = f"model alias {alias!r} is another route's name"
            elif alias in owner and owner[alias] != route.name:
                message = f"model alias {alias!r} is also an alias of {owner[alias]!r}"
            if message:
                problems.append(
                    Problem(
                        message,
                        resource=f"ModelRoute/{route.name}",
                        path=f"spec.modelAliases[{ai}]",
                    )
                )
            owner.setdefault(alias, route.name)
    return problems


def check_references(policies: list[BundlePolicy], routes: list[BundleRoute]) -> list[Problem]:
    """Problems with names that refer across resources (routes a policy uses must exist, a
    model alias names one route only)."""
    route_names = {r.name for r in routes}
    problems: list[Problem] = _alias_problems(routes)
    for policy in policies:
        for ui, use_case in enumerate(policy.use_cases):
            for ri, route in enumerate(use_case.routes):
                if route not in route_names:
                    problems.append(
                        Problem(
                            f"route {route!r} does not exist in the namespace",
                            resource=f"AIPolicy/{policy.name}",
                            path=f"spec.useCases[{ui}].routes[{ri}]",
                        )
                    )
            for bi, budget in enumerate(use_case.budgets):
                if budget.fallback_route and budget.fallback_route not in route_names:
                    problems.append(
                        Problem(
                            f"fallback route {budget.fallback_route!r} does not exist"
                            " in the namespace",
                            resource=f"AIPolicy/{policy.name}",
                            path=f"spec.useCases[{ui}].budgets[{bi}].fallbackRoute",
                        )
                    )
    return problems


def parse_bundle(data: bytes | str) -> Bundle:
    """Parse and fully validate a serialized bundle.

    Raises :class:`UnsupportedBundleFormat` for an unknown format version and
    :class:`InvalidBundle` for anything else wrong; never returns a half-valid bundle.
    """
    try:
        raw = json.loads(data)
    except UnicodeDecodeError as exc:
        raise InvalidBundle(f"bundle is not UTF-8: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidBundle(f"bundle is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(raw, dict):
        raise InvalidBundle("bundle must be a JSON object")
    version = raw.get("formatVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidBundle("bundle has no integer formatVersion")
    if version != BUNDLE_FORMAT_VERSION:
        raise UnsupportedBundleFormat(
            f"bundle formatVersion {version} is not supported (this reader knows "
            f"{BUNDLE_FORMAT_VERSION})"
        )
    try:
        bundle = Bundle.model_validate(raw)
    except ValidationError as exc:
        raise InvalidBundle(problems_from_validation_error(exc, source="bundle")) from exc
    # The writer hashed the same canonical JSON it wrote, so the raw document (already
    # validated above) can be hashed as read: no second serialization of the whole bundle.
    expected = _hash_content(
        raw["formatVersion"], raw.get("namespace"), raw.get("policies"), raw.get("routes")
    )
    if bundle.content_hash != expected:
        raise InvalidBundle(
            f"bundle contentHash {bundle.content_hash} does not match its content ({expected})"
        )
    problems = check_references(bundle.policies, bundle.routes)
    if problems:
        raise InvalidBundle(problems)
    return bundle
