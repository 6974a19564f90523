"""Inspection: redaction of secrets and personal data, prompt-injection checks, and the
tool-call allowlist on the way out. Pure logic (no HTTP): the steps in
:mod:`aigw_sidecar.steps.inspect` apply it to requests and answers. See docs/inspection.md.
"""

from .catalog import BUILTIN, PROFILES, profile_detectors
from .detectors import (
    Detector,
    DetectorFailed,
    DetectorTable,
    Finding,
    Hold,
    PatternDetector,
    scan,
    select,
)
from .injection import Classifier, InjectionFinding, InjectionScanner, Source
from .plan import UseCaseInspection, compile_custom, compile_policy, compile_use_case
from .redactor import PLACEHOLDER, RedactionPlan, Replacer, apply, redact
from .report import InspectionEvent, InspectionReport
from .stream import HoldOverflow, RestoreChannel, TextChannel
from .walk import answer_tool_names, rewrite_answer, rewrite_request

__all__ = [
    "BUILTIN",
    "PLACEHOLDER",
    "PROFILES",
    "Classifier",
    "Detector",
    "DetectorFailed",
    "DetectorTable",
    "Finding",
    "Hold",
    "HoldOverflow",
    "InjectionFinding",
    "InjectionScanner",
    "InspectionEvent",
    "InspectionReport",
    "PatternDetector",
    "RedactionPlan",
    "Replacer",
    "RestoreChannel",
    "Source",
    "TextChannel",
    "UseCaseInspection",
    "answer_tool_names",
    "apply",
    "compile_custom",
    "compile_policy",
    "compile_use_case",
    "profile_detectors",
    "redact",
    "rewrite_answer",
    "rewrite_request",
    "scan",
    "select",
]
