"""Validating a namespace's resources as the apiserver returned them, and compiling them.

The CRD schema rejects most mistakes at admission; what remains (rules only the models
check, and problems *between* objects, such as a policy naming a route that does not exist)
is found here. Any invalid resource blocks the namespace's new bundle: the previous one stays
in force, because silently dropping a policy could loosen governance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from aigw_contract import AIPolicy, Bundle, CompileError, ModelRoute, Problem, compile_bundle
from aigw_contract.codec import (
    LATEST_FORMAT,
    PART_BYTES,
    EncodedBundle,
    encode_bundle,
    gc_paused,
)
from aigw_contract.enforcement import unenforced
from aigw_contract.resources import Resource
from aigw_contract.validation import problems_from_validation_error

__all__ = ["Evaluation", "Verdict", "evaluate", "resource_key", "summary"]

_MODELS: dict[str, type[AIPolicy] | type[ModelRoute]] = {
    "AIPolicy": AIPolicy,
    "ModelRoute": ModelRoute,
}
REASON_INVALID_SPEC = "InvalidSpec"
REASON_INVALID_REFERENCE = "InvalidReference"
REASON_TOO_LARGE = "BundleTooLarge"


def resource_key(body: Mapping[str, Any]) -> str:
    """``Kind/name``: how problems and statuses name a resource."""
    return f"{body.get('kind')}/{body.get('metadata', {}).get('name')}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one resource is valid, and if not, why."""

    reason: str | None = None
    """None when valid; else a CamelCase reason for the Valid condition."""
    problems: tuple[Problem, ...] = ()
    not_enforced: tuple[str, ...] = ()
    """Settings of a valid resource that are accepted but not enforced yet (``path=value``)."""
    inactive_defaults: tuple[str, ...] = ()
    """Defaults of a valid resource that would do something but are not enforced yet."""

    @property
    def valid(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of compiling one namespace."""

    bundle: Bundle | None
    """The compiled bundle (revision 0), or None when something blocks it."""
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    """By ``Kind/name``, for every resource."""
    blocked_reason: str | None = None
    """Why no bundle: REASON_TOO_LARGE, or the reason of the first invalid resource."""
    blocked_message: str = ""
    encoded: EncodedBundle | None = None
    """The bundle's files (revision 0): proof that it fits the ConfigMaps a pod mounts."""


def _validate(body: Mapping[str, Any]) -> Resource | list[Problem]:
    kind = str(body.get("kind"))
    model = _MODELS.get(kind)
    if model is None:
        return [Problem(f"unknown kind {kind!r}", resource=resource_key(body))]
    # The apiserver adds fields the model does not know (managedFields, uid, ...) only under
    # metadata and status, which the models ignore; spec is checked strictly.
    wire = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    try:
        return model.model_validate(wire)
    except ValidationError as exc:
        return problems_from_validation_error(exc, resource=resource_key(body))


def _summary(problems: Sequence[Problem], limit: int = 5) -> str:
    lines = [f"{p.path}: {p.message}" if p.path else p.message for p in problems[:limit]]
    more = len(problems) - limit
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def evaluate(
    bodies: Sequence[Mapping[str, Any]],
    *,
    namespace: str,
    generated_at: datetime,
    format_version: int = LATEST_FORMAT,
    part_bytes: int = PART_BYTES,
) -> Evaluation:
    """Validate every resource and compile the valid ones; never raises for bad input."""
    verdicts: dict[str, Verdict] = {}
    resources: list[Resource] = []
    with gc_paused():  # 1,000 policies: two thirds of the time would be GC scans
        parsed_all = [(body, _validate(body)) for body in bodies]
    for body, parsed in parsed_all:
        if isinstance(parsed, list):
            verdicts[resource_key(body)] = Verdict(REASON_INVALID_SPEC, tuple(parsed))
        else:
            found = unenforced(parsed.kind, parsed.spec)
            verdicts[resource_key(body)] = Verdict(
                not_enforced=found.short, inactive_defaults=found.defaults
            )
            resources.append(parsed)
    invalid = sorted(key for key, v in verdicts.items() if not v.valid)
    if invalid:
        return _blocked(verdicts, invalid)
    try:
        bundle = compile_bundle(
            resources,
            namespace=namespace,
            generated_at=generated_at,
            format_version=format_version,
        )
        encoded = encode_bundle(bundle, part_bytes=part_bytes)
    except CompileError as exc:
        by_resource: dict[str, list[Problem]] = {}
        general: list[Problem] = []
        for problem in exc.problems:
            (by_resource.setdefault(problem.resource, []) if problem.resource else general).append(
                problem
            )
        for key, problems in by_resource.items():
            verdicts[key] = Verdict(REASON_INVALID_REFERENCE, tuple(problems))
        if by_resource:
            return _blocked(verdicts, sorted(by_resource))
        return Evaluation(None, verdicts, REASON_TOO_LARGE, _summary(general))
    return Evaluation(bundle, verdicts, encoded=encoded)


def _blocked(verdicts: dict[str, Verdict], invalid: list[str]) -> Evaluation:
    first = verdicts[invalid[0]]
    message = f"{', '.join(invalid)} invalid: {_summary(first.problems, 2)}"
    return Evaluation(None, verdicts, first.reason, message)


def summary(verdict: Verdict) -> str:
    """The Valid condition's message for a verdict."""
    return _summary(verdict.problems) if verdict.problems else ""
