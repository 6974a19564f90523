"""Steps: inspect the prompt (redaction, prompt injection) and the answer (redaction, the
tool allowlist). The detection logic is :mod:`aigw_sidecar.inspection`; here it meets the
request walk and the enforcement modes.

Two steps, placed so that a cache records only inspected answers and every caller gets
its own placeholders back:

- :class:`Inspect` (``Phase.INSPECT``): prompt-injection checks on user and on retrieved
  (tool) content, then redaction of every model-visible text of the canonical request
  (:func:`~aigw_sidecar.inspection.rewrite_request`); on the way back, with
  ``restoreInAnswer``, the request's placeholders in the answer become the caller's values
  again (it runs on cache hits too: the placeholders are per request).
- :class:`InspectAnswer` (``Phase.ANSWER + 50``, nearest the upstream call but for
  accounting): redaction of the answer and the tool allowlist, on a complete answer and on
  a stream (:mod:`.inspect_stream`: a hold-back window so a value split across chunks is
  never released). A cache or an idempotency step (``Phase.ANSWER``) sees what it left.

Enforcement: under ``enforce`` masks and hashes replace values and ``block`` refuses
(``content_blocked``, naming the categories, never the values); under ``warn`` the text
passes unchanged with ``X-AIGW-Warning``; under ``observe`` it passes and is recorded.
Prompt injection: ``block`` refuses under enforce; ``warn`` warns. A detector that raises
fails closed under enforce (``content_blocked``, code ``inspection_failed``) and open
otherwise, with an ``error`` event and a log line naming the detector (never the text).

Everything found lands in ``ctx.state[INSPECTION]`` (categories and counts) and, at the
end, in ``ctx.decisions`` and ``aigw_inspection_findings_total``.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aigw_contract import EnforcementMode
from aigw_contract.policy import PromptInjectionMode, RedactionMode
from aigw_sidecar.context import Decision, RequestContext
from aigw_sidecar.errors import ContentBlocked
from aigw_sidecar.inspection import (
    Classifier,
    Detector,
    DetectorFailed,
    InjectionScanner,
    InspectionReport,
    RedactionPlan,
    Replacer,
    Source,
    UseCaseInspection,
    apply,
    compile_policy,
    redact,
    rewrite_answer,
    rewrite_request,
    scan,
    select,
)
from aigw_sidecar.inspection.plan import verdict
from aigw_sidecar.inspection.report import Direction
from aigw_sidecar.inspection.walk import Rewrite
from aigw_sidecar.keys import GOVERNANCE_VIEW, IDENTITY, INSPECTION
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeConfig
from aigw_sidecar.settings import SidecarSettings
from aigw_sidecar.state import Key
from aigw_sidecar.streaming import StreamTransform

from .inspect_stream import AnswerStream, RestoreStream, blocked_answer, check_tools, record_tools

__all__ = ["Inspect", "InspectAnswer", "Inspection", "load_classifier"]

PLANS: Key[Mapping[str, UseCaseInspection]] = Key("inspection.plans")
PLAN: Key[UseCaseInspection] = Key("inspection.plan")
REPLACER = Key("inspection.replacer", Replacer)
_log = logging.getLogger("aigw.inspection")
_CODES = {
    "redaction": "sensitive_data",
    "injection": "prompt_injection",
    "tool_call": "tool_not_allowed",
    "error": "inspection_failed",
}


def load_classifier(spec: str) -> Classifier:
    """``module:factory`` -> the classifier ``factory()`` returns (imported only here)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"an injection classifier is module:factory, not {spec!r}")
    factory = getattr(importlib.import_module(module_name), attribute)
    classifier: Classifier = factory()
    return classifier


class Inspection:
    """One sidecar's inspection: settings, the injection scanner, metrics, the two steps."""

    def __init__(
        self,
        settings: SidecarSettings,
        metrics: Metrics | None = None,
        *,
        classifier: Classifier | None = None,
        extra_detectors: tuple[Detector, ...] = (),
    ) -> None:
        if classifier is None and settings.injection_classifier:
            classifier = load_classifier(settings.injection_classifier)
        self.scanner = InjectionScanner(classifier)
        self.metrics = metrics
        self.key = settings.redaction_key or os.urandom(32)
        self.key_configured = settings.redaction_key is not None
        self.extra_detectors = extra_detectors
        """Detectors added to every use case's plan (plug-ins and tests)."""
        self.inspect = Inspect(self)
        self.answer = InspectAnswer(self)

    @property
    def steps(self) -> tuple[Step, Step]:
        return self.inspect, self.answer

    def plan(self, ctx: RequestContext) -> UseCaseInspection | None:
        return ctx.state.get(PLAN)

    def active(self, config: RuntimeConfig) -> bool:
        """Whether any use case's plan inspects anything (injection checks, redaction
        detectors, a tool allowlist); else neither step can find or change anything."""
        plans = config.prepared.get(PLANS)
        if plans is None:
            return True
        return any(
            p.injection is not PromptInjectionMode.OFF or p.redaction.active or p.tools is not None
            for p in plans.values()
        )

    def warn(self, ctx: RequestContext, text: str) -> None:
        header = ctx.response_headers.get("X-AIGW-Warning")
        text = "".join(c if c.isprintable() and c.isascii() else "?" for c in text)
        ctx.response_headers["X-AIGW-Warning"] = f"{header}; {text}"[:1000] if header else text

    def failed(
        self,
        ctx: RequestContext,
        direction: Direction,
        error: DetectorFailed,
        mode: EnforcementMode,
    ) -> None:
        """A detector raised: fail closed under enforce, open (recorded) otherwise."""
        report = ctx.state.setdefault(INSPECTION, InspectionReport())
        closed = mode is EnforcementMode.ENFORCE
        action = "failed_closed" if closed else "failed_open"
        report.add(direction, "error", "detector_error", error.name, action, direction)
        cause = type(error.__cause__).__name__ if error.__cause__ else "error"
        _log.error("inspection detector %s raised %s: %s", error.name, cause, action)
        if closed:
            raise ContentBlocked(
                "the request could not be inspected; the policy fails closed",
                code="inspection_failed",
            ) from None

    def finish(self, ctx: RequestContext) -> None:
        report = ctx.state.get(INSPECTION)
        if report is None or not report.events:
            return
        for event in report.events:
            reason = f"{event.kind} {event.category} ({event.detector}) in {event.source}"
            if event.count > 1:
                reason += f" x{event.count}"
            ctx.decisions.append(
                Decision(f"inspect.{event.direction}", event.action, reason, _CODES[event.kind])
            )
            if self.metrics is not None:
                self.metrics.inspection.labels(
                    event.direction, event.kind, event.category, event.action
                ).inc(event.count)


class Inspect(Step):
    """The prompt: injection checks, then redaction; on the way back, restore."""

    name = "inspect"
    phase = Phase.INSPECT

    def __init__(self, inspection: Inspection) -> None:
        self._i = inspection

    def prepare(self, config: RuntimeConfig) -> None:
        view = config.prepared.get(GOVERNANCE_VIEW)
        policy = view.index.policy if view is not None else None
        plans = dict(compile_policy(policy))
        if self._i.extra_detectors:
            plans = {
                name: _with_extra(plan, self._i.extra_detectors) for name, plan in plans.items()
            }
        config.prepared[PLANS] = plans
        if any(p.redaction.mode is RedactionMode.HASH for p in plans.values()):
            if self._i.key_configured:
                _log.info("redaction mode hash in use; its key is configured")
            else:  # hash tokens of this pod will not match any other pod's
                _log.warning(
                    "redaction mode hash in use without --redaction-key-file: its key is drawn "
                    "for this process only, so hashes match within this pod only"
                )

    def active(self, config: RuntimeConfig) -> bool:
        return self._i.active(config)

    async def on_request(self, ctx: RequestContext) -> None:
        identity = ctx.state.get(IDENTITY)
        plans = ctx.config.prepared.get(PLANS)
        if identity is None or plans is None or ctx.operation == "count_tokens":
            return
        plan = plans.get(identity.use_case.name)
        if plan is None:
            return
        ctx.state[PLAN] = plan
        report = ctx.state.setdefault(INSPECTION, InspectionReport())
        if plan.injection is not PromptInjectionMode.OFF and ctx.operation == "chat":
            self._injection(ctx, plan, report)
        if plan.redaction.active:
            mode = plan.redaction.mode
            # Only hashes use the tenant's key: mask and block skip its HMAC.
            hashing = mode is RedactionMode.HASH
            tenant_key = Replacer.tenant_key(self._i.key, identity.tenant) if hashing else b""
            replacer = Replacer(mode, tenant_key)
            ctx.state[REPLACER] = replacer
            try:
                self._redact(ctx, plan, report, replacer)
            except DetectorFailed as failure:
                self._i.failed(ctx, "request", failure, plan.mode)

    def _injection(
        self, ctx: RequestContext, plan: UseCaseInspection, report: InspectionReport
    ) -> None:
        scanner = self._i.scanner
        for message in ctx.body.get("messages") or ():
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "tool", "function"):
                continue
            source: Source = "user" if role == "user" else "retrieved"
            for text in _texts(message.get("content")):
                try:
                    finding = scanner.scan(text, source)
                except Exception as exc:  # noqa: BLE001 - a classifier plug-in may raise
                    failure = DetectorFailed("prompt_injection")
                    failure.__cause__ = exc
                    self._i.failed(ctx, "request", failure, plan.mode)
                    return
                if finding is None:
                    continue
                enforce_block = plan.injection is PromptInjectionMode.BLOCK
                action = verdict(plan.mode) if enforce_block else "warned"
                if plan.mode is EnforcementMode.OBSERVE:
                    action = "observed"
                report.add("request", "injection", finding.category, finding.rule, action, source)
                where = "retrieved content" if source == "retrieved" else "user content"
                if action == "blocked":
                    raise ContentBlocked(
                        f"the request looks like a prompt injection ({finding.category} in "
                        f"{where})",
                        code="prompt_injection",
                    )
                if action == "warned":
                    self._i.warn(ctx, f"prompt injection suspected: {finding.category} in {where}")
                return

    def _redact(
        self,
        ctx: RequestContext,
        plan: UseCaseInspection,
        report: InspectionReport,
        replacer: Replacer,
    ) -> None:
        detectors = plan.redaction.table
        change, action = plan.redaction_changes_text, plan.redaction_action

        def rewrite(text: str, source: str) -> str | None:
            new, findings = redact(text, detectors, replacer)
            for finding in findings:
                report.add("request", "redaction", finding.category, finding.detector, action,
                           source)  # fmt: skip
            return new if findings and change else None

        if ctx.operation == "embeddings":
            _rewrite_inputs(ctx.body, rewrite)
        else:
            rewrite_request(ctx.body, rewrite)
        categories = report.categories("request", "redaction")
        if not categories:
            return
        if action == "blocked":
            raise ContentBlocked(
                f"the request contains sensitive data: {', '.join(categories)}",
                code="sensitive_data",
            )
        if action == "warned":
            self._i.warn(ctx, f"sensitive data in the prompt: {', '.join(categories)}")

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        plan = ctx.state.get(PLAN)
        replacer = ctx.state.get(REPLACER)
        if plan is None or replacer is None or not plan.redaction.restore:
            return None
        if not replacer.restorable:
            return None
        return RestoreStream(replacer, ctx.state[INSPECTION])

    async def on_response(self, ctx: RequestContext) -> None:
        plan = ctx.state.get(PLAN)
        replacer = ctx.state.get(REPLACER)
        response = ctx.response
        if plan is None or replacer is None or response is None or ctx.stream:
            return
        if plan.redaction.restore and replacer.restorable:
            report = ctx.state[INSPECTION]

            def restore(text: str, source: str) -> str | None:
                new = replacer.restore(text)
                if new == text:
                    return None
                report.add("response", "redaction", "PLACEHOLDER", "restore", "restored", source)
                return new

            ctx.response = rewrite_answer(response, restore)

    async def on_finish(self, ctx: RequestContext) -> None:
        self._i.finish(ctx)


class InspectAnswer(Step):
    """The answer: redaction and the tool allowlist (complete answers and streams)."""

    name = "inspect-answer"
    phase = Phase.ANSWER + 50

    def __init__(self, inspection: Inspection) -> None:
        self._i = inspection

    def active(self, config: RuntimeConfig) -> bool:
        return self._i.active(config)

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        plan = ctx.state.get(PLAN)
        if plan is None or (not plan.redaction.active and plan.tools is None):
            return None
        replacer = ctx.state.get(REPLACER)
        return AnswerStream(plan, replacer, ctx.state[INSPECTION], self._i.key, ctx)

    async def on_response(self, ctx: RequestContext) -> None:
        plan = ctx.state.get(PLAN)
        response = ctx.response
        if plan is None or response is None or ctx.stream:
            return
        report = ctx.state[INSPECTION]
        refused = check_tools(plan, response)
        if refused:
            record_tools(self._i, ctx, plan, report, refused, "tool_calls")
        if not plan.redaction.active:
            return
        replacer = ctx.state.get(REPLACER) or Replacer(plan.redaction.mode, self._i.key)
        detectors = plan.redaction.table
        change, action = plan.redaction_changes_text, plan.redaction_action
        replace = replacer.answer_replacement

        def rewrite(text: str, source: str) -> str | None:
            findings = select(scan(detectors, text))
            for finding in findings:
                report.add("response", "redaction", finding.category, finding.detector, action,
                           source)  # fmt: skip
            return apply(text, findings, replace) if findings and change else None

        try:
            answer = rewrite_answer(response, rewrite)
        except DetectorFailed as failure:
            self._i.failed(ctx, "response", failure, plan.mode)
            return
        categories = report.categories("response", "redaction")
        if categories and action == "blocked":
            raise blocked_answer(categories)
        if categories and action == "warned":
            self._i.warn(ctx, f"sensitive data in the answer: {', '.join(categories)}")
        if change and categories:
            ctx.response = answer


def _texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


def _rewrite_inputs(body: dict[str, Any], rewrite: Rewrite) -> None:
    """An embeddings request's ``input`` (a string or a list of strings)."""
    value = body.get("input")
    if isinstance(value, str):
        new = rewrite(value, "user")
        if new is not None:
            body["input"] = new
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str) and (new := rewrite(item, "user")) is not None:
                value[index] = new


def _with_extra(plan: UseCaseInspection, extra: tuple[Detector, ...]) -> UseCaseInspection:
    redaction = RedactionPlan(
        (*plan.redaction.detectors, *extra), plan.redaction.mode, restore=plan.redaction.restore
    )
    return replace(plan, redaction=redaction)
