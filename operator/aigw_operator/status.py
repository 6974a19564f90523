"""The status the operator writes on every AIPolicy and ModelRoute: a pure function.

Three conditions (API conventions): ``Valid`` says whether the resource itself is acceptable
(reason and message name the problem), ``Ready`` whether it is part of the bundle in force,
``Warning`` whether it asks for something that is accepted but not enforced yet
(``aigw_contract.enforcement``): ``True`` with reason ``NotEnforced`` and the settings in the
message; ``False`` with reason ``InactiveDefaults`` and the defaults that are not enforced yet,
or ``AllEnforced``; ``Unknown`` while the resource is invalid.
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

from aigw_contract.enforcement import REFERENCE, inactive_defaults_text

from .evaluate import Evaluation, Verdict, resource_key, summary

__all__ = ["Outcome", "desired_status", "newly_invalid", "newly_warned"]
_SHOWN = 5
"""Settings named in the Warning condition's message; the rest are counted."""


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
    ok: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    status = "Unknown" if ok is None else "True" if ok else "False"
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


def _warning(verdict: Verdict) -> tuple[bool | None, str, str]:
    if not verdict.valid:
        return None, "Invalid", "not evaluated: the resource is invalid (see Valid)"
    if verdict.not_enforced:
        named = ", ".join(verdict.not_enforced[:_SHOWN])
        more = len(verdict.not_enforced) - _SHOWN
        return (
            True,
            "NotEnforced",
            f"accepted but not enforced yet, without effect: {named}"
            + (f" (and {more} more)" if more > 0 else "")
            + f"; see {REFERENCE}",
        )
    if verdict.inactive_defaults:
        return False, "InactiveDefaults", inactive_defaults_text(verdict.inactive_defaults)
    return False, "AllEnforced", "every setting of this resource is enforced"


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
    warned, reason, message = _warning(verdict)
    warning = _condition(
        "Warning",
        ok=warned,
        reason=reason,
        message=message,
        generation=generation,
        previous=previous.get("Warning"),
        now=now,
    )
    status: dict[str, Any] = {
        "conditions": [ready, valid, warning],
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
    checked = [c for c in status["conditions"] if c["type"] in ("Ready", "Valid")]
    for condition in checked[::-1]:  # Valid first: it is the more specific
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


def newly_warned(body: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Warning condition when it turned True or its message changed (worth a Warning
    Event); None otherwise (Events are not repeated)."""
    warning = next(c for c in status["conditions"] if c["type"] == "Warning")
    if warning["status"] != "True":
        return None
    old = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
    before = old.get("Warning") or {}
    if (before.get("status"), before.get("message")) == ("True", warning["message"]):
        return None
    return dict(warning)
