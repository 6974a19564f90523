"""A use case's inspection settings, compiled once per bundle.

:class:`UseCaseInspection` is everything the inspection steps need per request, looked up
by use case name: the redaction plan (profile detectors + the policy's custom patterns),
the prompt-injection mode, the tool allowlist and the policy's enforcement mode. Custom
patterns are compiled here (the contract already refused unsafe ones); a pattern that does
not compile refuses the bundle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aigw_contract import BundlePolicy, EnforcementMode, UseCase
from aigw_contract.patterns import check_pattern, max_width
from aigw_contract.policy import CustomPattern, PromptInjectionMode, RedactionMode

from .catalog import profile_detectors
from .detectors import Detector, Hold, PatternDetector
from .redactor import RedactionPlan

__all__ = [
    "UseCaseInspection",
    "compile_custom",
    "compile_policy",
    "compile_use_case",
    "verdict",
]

_VERDICTS = {
    EnforcementMode.ENFORCE: "blocked",
    EnforcementMode.WARN: "warned",
    EnforcementMode.OBSERVE: "observed",
}
_CHANGES = {RedactionMode.MASK: "masked", RedactionMode.HASH: "hashed"}


def verdict(mode: EnforcementMode) -> str:
    """What a finding that would block becomes under ``mode``."""
    return _VERDICTS[mode]


@dataclass(frozen=True, slots=True)
class UseCaseInspection:
    """One use case's inspection, compiled."""

    mode: EnforcementMode
    redaction: RedactionPlan
    injection: PromptInjectionMode
    tools: frozenset[str] | None
    """Tool names the answer may call; None: any."""
    tool_prefixes: frozenset[str]
    """Every prefix of an allowed name (a streamed name may arrive in pieces)."""

    @property
    def redaction_action(self) -> str:
        """What redaction does with a finding: masked/hashed (enforce), else the verdict."""
        if self.mode is EnforcementMode.ENFORCE:
            return _CHANGES.get(self.redaction.mode, "blocked")
        return verdict(self.mode)

    @property
    def redaction_changes_text(self) -> bool:
        """Whether redaction rewrites text (mask or hash under enforce)."""
        return self.redaction_action in ("masked", "hashed")


def compile_custom(pattern: CustomPattern) -> PatternDetector:
    """A policy's custom pattern as a detector (held back by its longest match)."""
    problem = check_pattern(pattern.pattern)
    if problem is not None:
        raise ValueError(f"custom pattern {pattern.name}: {problem}")
    return PatternDetector(
        pattern.name,
        pattern.placeholder_category,
        0.9,
        re.compile(pattern.pattern),
        Hold(max_length=max_width(pattern.pattern)),
    )


def compile_use_case(use_case: UseCase, mode: EnforcementMode) -> UseCaseInspection:
    settings = use_case.redaction
    detectors: Sequence[Detector] = (
        *profile_detectors(settings.profile),
        *(compile_custom(p) for p in settings.custom_patterns),
    )
    redaction = RedactionPlan(
        tuple(detectors),
        settings.mode,
        restore=settings.restore_in_answer and settings.mode is RedactionMode.MASK,
    )
    tools = frozenset(use_case.tools) if use_case.tools is not None else None
    prefixes = frozenset(t[:i] for t in tools or () for i in range(len(t) + 1))
    return UseCaseInspection(mode, redaction, use_case.prompt_injection.mode, tools, prefixes)


def compile_policy(policy: BundlePolicy | None) -> Mapping[str, UseCaseInspection]:
    """Every use case of the policy governing this pod, by name (empty: no policy)."""
    if policy is None:
        return {}
    return {u.name: compile_use_case(u, policy.mode) for u in policy.use_cases}
