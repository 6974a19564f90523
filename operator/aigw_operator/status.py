"""The status the operator writes on every AIPolicy and ModelRoute: a pure function.

Two conditions (API conventions): ``Valid`` says whether the resource itself is acceptable
(reason and message name the problem), ``Ready`` whether it is part of the bundle in force.
``observedGeneration`` is the generation evaluated, ``bundleRevision`` the revision that
includes the resource (unchanged while a newer bundle is blocked). ``lastTransitionTime``
moves only when a condition's status changes, so an unchanged status is an unchanged dict
and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .evaluate import Evaluation, Verdict, resource_key, summary

__all__ = ["Outcome", "desired_status", "newly_invalid"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to the namespace's bundle in this reconcile."""

    evaluation: Evaluation
    revision: int | None
    """The revision in force after this reconcile (None: the namespace has none)."""
    published: bool
    """Whether the bundle in force now holds the current content of every resource."""
    rolled_back: str | None = None
    """Set while ``aigw rollout undo`` keeps an older revision in force: why, and until when."""


def _condition(
    ctype: str,
    *,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if previous is not None and previous.get("status") == status:
        when = str(previous.get("lastTransitionTime", when))
    condition: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def _ready(verdict: Verdict, outcome: Outcome) -> tuple[bool, str, str]:
    evaluation = outcome.evaluation
    if not verdict.valid:
        return False, "Invalid", "not in the bundle: the resource is invalid (see Valid)"
    if outcome.rolled_back is not None:
        return False, "RolledBack", outcome.rolled_back
    if outcome.published and outcome.revision is not None:
        return True, "InBundle", f"in force as part of bundle revision {outcome.revision}"
    in_force = (
        f"revision {outcome.revision} stays in force"
        if outcome.revision is not None
        else "no bundle is in force yet"
    )
    if evaluation.blocked_reason == "BundleTooLarge":
        return False, "BundleTooLarge", f"{evaluation.blocked_message}; {in_force}"
    return False, "BundleBlocked", f"bundle not updated: {evaluation.blocked_message}; {in_force}"


def desired_status(body: Mapping[str, Any], outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The full status the resource should have after this reconcile."""
    old: Mapping[str, Any] = body.get("status") or {}
    previous = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
    generation = body.get("metadata", {}).get("generation")
    verdict = outcome.evaluation.verdicts.get(resource_key(body), Verdict())
    valid = _condition(
        "Valid",
        ok=verdict.valid,
        reason=verdict.reason or "Valid",
        message=summary(verdict),
        generation=generation,
        previous=previous.get("Valid"),
        now=now,
    )
    ok, reason, message = _ready(verdict, outcome)
    ready = _condition(
        "Ready",
        ok=ok,
        reason=reason,
        message=message,
        generation=generation,
        previous=previous.get("Ready"),
        now=now,
    )
    status: dict[str, Any] = {
        "conditions": [ready, valid],
        "observedGeneration": generation,
        "bundleRevision": outcome.revision if ok else old.get("bundleRevision"),
    }
    if body.get("kind") == "AIPolicy" and verdict.valid:
        spec = body.get("spec") or {}
        status["tenant"] = spec.get("tenant") or body.get("metadata", {}).get("namespace")
    elif "tenant" in old:
        status["tenant"] = old["tenant"]
    return status


def newly_invalid(body: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The condition worth a Warning Event: Valid or Ready turned False, or its reason or
    message changed; None when nothing new went wrong (Events are not repeated)."""
    old = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
    for condition in status["conditions"][::-1]:  # Valid first: it is the more specific
        if condition["status"] != "False" or condition["reason"] in (
            "Invalid",
            "BundleBlocked",
            "RolledBack",
        ):
            continue
        before = old.get(condition["type"]) or {}
        if (before.get("status"), before.get("reason"), before.get("message")) != (
            "False",
            condition["reason"],
            condition["message"],
        ):
            return dict(condition)
    return None
