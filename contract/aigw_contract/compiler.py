"""Compiling a namespace's AIPolicies and ModelRoutes into one bundle.

Used by the operator (on every change) and by ``aigw compile`` (offline, in CI). Compiling
is deterministic: resources are sorted by name, defaults are resolved here (the tenant
defaults to the namespace, the default use case to the first one), and the bundle is
serialized canonically, so the same resources in any order give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .bundle import (
    BUNDLE_FORMAT_VERSION,
    MAX_BUNDLE_BYTES,
    Bundle,
    BundlePolicy,
    BundleRoute,
    check_references,
    compute_content_hash,
)
from .codec import gc_paused
from .errors import CompileError, Problem
from .resources import AIPolicy, ModelRoute, Resource

__all__ = ["compile_bundle", "policy_to_bundle", "route_to_bundle"]


def policy_to_bundle(policy: AIPolicy, namespace: str) -> BundlePolicy:
    """The data-plane form of one AIPolicy."""
    spec = policy.spec
    return BundlePolicy(
        name=policy.metadata.name,
        mode=spec.mode,
        selector=spec.selector,
        tenant=spec.tenant or namespace,
        additional_tenants=sorted(set(spec.additional_tenants)),
        default_use_case=spec.default_use_case or spec.use_cases[0].name,
        use_cases=spec.use_cases,
        fail_mode=spec.fail_mode,
        residency=spec.residency,
    )


def route_to_bundle(route: ModelRoute) -> BundleRoute:
    """The data-plane form of one ModelRoute."""
    spec = route.spec
    return BundleRoute(
        name=route.metadata.name,
        intent=spec.intent,
        model_aliases=spec.model_aliases,
        backends=spec.backends,
        fallback=spec.fallback,
        retry=spec.retry,
        timeouts=spec.timeouts,
        circuit_breaker=spec.circuit_breaker,
    )


def _check_namespace_and_names(resources: Sequence[Resource], namespace: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        ref = f"{resource.kind}/{resource.metadata.name}"
        if resource.metadata.namespace not in (None, namespace):
            problems.append(
                Problem(
                    f"namespace {resource.metadata.namespace!r} differs from the bundle's"
                    f" namespace {namespace!r}",
                    resource=ref,
                    path="metadata.namespace",
                )
            )
        key = (resource.kind, resource.metadata.name)
        if key in seen:
            problems.append(Problem("defined more than once", resource=ref))
        seen.add(key)
    return problems


def compile_bundle(
    resources: Sequence[Resource],
    *,
    namespace: str,
    generated_at: datetime,
    revision: int = 0,
    format_version: int = BUNDLE_FORMAT_VERSION,
) -> Bundle:
    """Compile resources of one namespace; raise CompileError listing every problem.

    Runs with the cyclic garbage collector paused (see :func:`codec.gc_paused`).

    ``format_version`` 1 (one JSON file) is checked against a ConfigMap's size here; for
    format 2 (compressed, sharded) :func:`aigw_contract.codec.encode_bundle` checks it, since
    only the encoding knows the size.
    """
    with gc_paused():
        return _compile(resources, namespace, generated_at, revision, format_version)


def _compile(
    resources: Sequence[Resource],
    namespace: str,
    generated_at: datetime,
    revision: int,
    format_version: int,
) -> Bundle:
    problems = _check_namespace_and_names(resources, namespace)
    if problems:
        raise CompileError(problems)
    policies = sorted(
        (policy_to_bundle(r, namespace) for r in resources if isinstance(r, AIPolicy)),
        key=lambda p: p.name,
    )
    routes = sorted(
        (route_to_bundle(r) for r in resources if isinstance(r, ModelRoute)),
        key=lambda r: r.name,
    )
    problems = check_references(policies, routes)
    if problems:
        raise CompileError(problems)
    if format_version not in (BUNDLE_FORMAT_VERSION, 2):
        raise CompileError(f"unknown bundle formatVersion {format_version}")
    bundle = Bundle(
        format_version=format_version,
        revision=revision,
        content_hash=compute_content_hash(format_version, namespace, policies, routes, revision),
        generated_at=generated_at,
        namespace=namespace,
        policies=policies,
        routes=routes,
    )
    if format_version != BUNDLE_FORMAT_VERSION:
        return bundle
    size = len(bundle.to_json_bytes())
    if size > MAX_BUNDLE_BYTES:
        raise CompileError(
            f"bundle is {size} bytes; a ConfigMap holds at most {MAX_BUNDLE_BYTES}: "
            "split the namespace's policies or shorten them"
        )
    return bundle
