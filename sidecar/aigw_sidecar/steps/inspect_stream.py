"""The answer's inspection as a stream transform: hold-back redaction and tool checks.

:class:`AnswerStream` sees the provider's canonical chunks first (its step sits nearest the
upstream call). Every streamed text, a choice's ``content`` and each tool call's
``arguments`` (new ``tool_calls`` and legacy ``function_call``), gets a
:class:`~aigw_sidecar.inspection.TextChannel`: a chunk's text goes in, what can be released
now comes out in a copy of the chunk (copy-on-write: the provider's chunk is never
changed); a chunk whose text is all held back is dropped, unless it carries something else
(a role, a tool call's id and name). A choice's ``finish_reason`` flushes its channels into
that chunk, so nothing is released after the answer ends and nothing is lost. Under warn
and observe the chunks pass unchanged and the channels only count.

Tool calls: each call's name is collected as it streams; as soon as it can no longer
become an allowed name (it is no prefix of one) the call is refused (enforce: the stream
ends with ``content_blocked``, code ``tool_not_allowed``) or recorded (warn/observe); at
the finish it must be exactly an allowed name. Nothing of a refused call's name beyond an
allowed prefix reaches the caller.

:class:`RestoreStream` (the prompt step's, outermost) turns the request's placeholders back
into the caller's values, holding back only a ``[`` that may begin one.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from aigw_contract import EnforcementMode
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.errors import ContentBlocked
from aigw_sidecar.inspection import (
    DetectorFailed,
    Finding,
    HoldOverflow,
    InspectionReport,
    Replacer,
    RestoreChannel,
    TextChannel,
    UseCaseInspection,
    answer_tool_names,
)
from aigw_sidecar.inspection.plan import verdict
from aigw_sidecar.streaming import StreamTransform

if TYPE_CHECKING:
    from .inspect import Inspection

__all__ = ["AnswerStream", "RestoreStream", "blocked_answer", "check_tools", "record_tools"]

_log = logging.getLogger("aigw.inspection")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_.:-]{1,64}$")
_CONTENT = -1
_FUNCTION = -2


def blocked_answer(categories: list[str]) -> ContentBlocked:
    return ContentBlocked(
        f"the answer contained sensitive data: {', '.join(categories)}",
        code="sensitive_data_in_answer",
    )


def _shown(name: str) -> str:
    return name if _TOOL_NAME.match(name) else "(a name outside the tool-name grammar)"


def check_tools(plan: UseCaseInspection, response: Json) -> list[str]:
    """The tools a complete answer calls that the use case does not allow."""
    if plan.tools is None:
        return []
    return [n for n in answer_tool_names(response) if n not in plan.tools]


def record_tools(  # noqa: PLR0917 - called from one place
    inspection: Inspection,
    ctx: RequestContext,
    plan: UseCaseInspection,
    report: InspectionReport,
    refused: list[str],
    source: str,
) -> None:
    """Refused tool calls: block (enforce) or record and warn."""
    action = verdict(plan.mode)
    for _ in refused:
        report.add("response", "tool_call", "tool_not_allowed", "tools_allowlist", action, source)
    names = ", ".join(sorted({_shown(n) for n in refused}))
    if action == "blocked":
        raise ContentBlocked(
            f"the answer calls a tool the use case does not allow: {names}",
            code="tool_not_allowed",
        )
    if action == "warned":
        inspection.warn(ctx, f"the answer calls a tool that is not allowed: {names}")


class AnswerStream(StreamTransform):
    """One streamed answer's redaction and tool checks (see the module docstring)."""

    __slots__ = (
        "_action",
        "_change",
        "_channels",
        "_ctx",
        "_names",
        "_plan",
        "_refused",
        "_replace",
        "_report",
    )

    def __init__(
        self,
        plan: UseCaseInspection,
        replacer: Replacer | None,
        report: InspectionReport,
        key: bytes,
        ctx: RequestContext,
    ) -> None:
        self._plan = plan
        self._report = report
        self._ctx = ctx
        redaction = plan.redaction
        replacer = replacer or Replacer(redaction.mode, key)
        self._replace = replacer.answer_replacement
        # Under enforce the caller gets only released (checked) text; in block mode the first
        # finding to be released raises instead. Under warn/observe the chunks pass as they are.
        self._change = plan.mode is EnforcementMode.ENFORCE and redaction.active
        self._action = plan.redaction_action
        self._channels: dict[tuple[int, int], tuple[TextChannel, str]] = {}
        self._names: dict[tuple[int, int], str] = {}
        self._refused: set[tuple[int, int]] = set()

    # -- redaction ---------------------------------------------------------------------------

    def _channel(self, key: tuple[int, int], source: str) -> TextChannel:
        entry = self._channels.get(key)
        if entry is None:
            redaction = self._plan.redaction

            def found(finding: Finding) -> None:
                self._found(finding, source)

            entry = (
                TextChannel(redaction.table, redaction.holds, self._replace, found),
                source,
            )
            self._channels[key] = entry
        return entry[0]

    def _found(self, finding: Finding, source: str) -> None:
        self._report.add(
            "response", "redaction", finding.category, finding.detector, self._action, source
        )
        if self._action == "blocked":
            raise blocked_answer([finding.category])

    def _pass(self, key: tuple[int, int], source: str, text: str, *, final: bool) -> str:
        """``text`` through its channel: what to emit now."""
        channel = self._channel(key, source)
        try:
            released = channel.feed(text)
            if final:
                released += channel.flush()
        except DetectorFailed as failure:
            self._fail(failure)
            return text
        except HoldOverflow:
            self._fail(DetectorFailed("hold_back_window"))
            return text
        return released if self._change else text

    def _fail(self, failure: DetectorFailed) -> None:
        action = "failed_closed" if self._plan.mode is EnforcementMode.ENFORCE else "failed_open"
        self._report.add("response", "error", "detector_error", failure.name, action, "content")
        _log.error("inspection detector %s failed on a stream: %s", failure.name, action)
        if action == "failed_closed":
            raise ContentBlocked(
                "the answer could not be inspected; the policy fails closed",
                code="inspection_failed",
            )

    # -- tool calls --------------------------------------------------------------------------

    def _tool_name(self, key: tuple[int, int], piece: object, source: str) -> None:
        tools = self._plan.tools
        if tools is None or not isinstance(piece, str) or not piece or key in self._refused:
            return
        name = self._names.get(key, "") + piece
        self._names[key] = name
        if name not in self._plan.tool_prefixes:
            self._refuse(key, name, source)

    def _refuse(self, key: tuple[int, int], name: str, source: str) -> None:
        self._refused.add(key)
        action = verdict(self._plan.mode)
        self._report.add("response", "tool_call", "tool_not_allowed", "tools_allowlist", action,
                         source)  # fmt: skip
        if action == "blocked":
            raise ContentBlocked(
                f"the answer calls a tool the use case does not allow: {_shown(name)}",
                code="tool_not_allowed",
            )

    def _finish_tools(self, choice: int) -> None:
        tools = self._plan.tools
        if tools is None:
            return
        for key, name in list(self._names.items()):
            if key[0] == choice and key not in self._refused and name not in tools:
                self._refuse(key, name, "tool_calls")

    # -- chunks ------------------------------------------------------------------------------

    async def feed(self, batch: list[Json]) -> list[Json]:
        out: list[Json] = []
        for chunk in batch:
            new = self._chunk(chunk)
            if new is not None:
                out.append(new)
        return out

    def _chunk(self, chunk: Json) -> Json | None:
        choices = chunk.get("choices")
        if not choices:
            return chunk
        redacting = self._plan.redaction.active
        new_choices: list[Json] = []
        changed = False
        for choice in choices:
            index = choice.get("index", 0)
            final = bool(choice.get("finish_reason"))
            delta = choice.get("delta") or {}
            new_delta: dict[str, Any] = dict(delta)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                self._tool_name((index, call.get("index", 0)), function.get("name"), "tool_calls")
            legacy = delta.get("function_call")
            if isinstance(legacy, dict):
                self._tool_name((index, _FUNCTION), legacy.get("name"), "function_call")
            if final:
                self._finish_tools(index)
            if redacting:
                changed |= self._redact_delta(index, delta, new_delta, final)
            if not final and not _has_payload(new_delta):
                changed = True
                continue  # all held back: the caller gets it in a later chunk
            new_choices.append({**choice, "delta": new_delta} if changed else choice)
        if not changed:
            return chunk
        if not new_choices:
            return None
        return {**chunk, "choices": new_choices}

    def _redact_delta(  # noqa: PLR0912 - one branch per kind of streamed text
        self, index: int, delta: Json, new_delta: dict[str, Any], final: bool
    ) -> bool:
        changed = False
        text = delta.get("content")
        if isinstance(text, str) and (text or final):
            released = self._pass((index, _CONTENT), "content", text, final=final)
            if released != text:
                new_delta["content"] = released
                changed = True
        elif final and (index, _CONTENT) in self._channels:
            rest = self._pass((index, _CONTENT), "content", "", final=True)
            if rest:
                new_delta["content"] = rest
                changed = True
        calls = delta.get("tool_calls")
        new_calls: list[Json] = []
        for call in calls or ():
            function = call.get("function") or {}
            key = (index, call.get("index", 0))
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                released = self._pass(key, "tool_arguments", arguments, final=final)
                if released != arguments:
                    changed = True
                    if not released and not (call.get("id") or function.get("name")):
                        continue
                    new_calls.append({**call, "function": {**function, "arguments": released}})
                    continue
            new_calls.append(call)
        if final:
            seen = {(index, c.get("index", 0)) for c in calls or ()}
            for key in [k for k in self._channels if k[0] == index and k[1] >= 0]:
                if key in seen:
                    continue
                rest = self._pass(key, "tool_arguments", "", final=True)
                if rest:
                    new_calls.append({"index": key[1], "function": {"arguments": rest}})
                    changed = True
        if calls is not None or new_calls:
            if changed:
                new_delta["tool_calls"] = new_calls
            if not new_calls:
                new_delta.pop("tool_calls", None)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict) or (final and (index, _FUNCTION) in self._channels):
            legacy = legacy if isinstance(legacy, dict) else {}
            arguments = legacy.get("arguments")
            piece = arguments if isinstance(arguments, str) else ""
            if piece or final:
                released = self._pass((index, _FUNCTION), "tool_arguments", piece, final=final)
                if released != piece:
                    changed = True
                    new_delta["function_call"] = {**legacy, "arguments": released}
        return changed

    async def flush(self) -> list[Json]:
        # A stream that ended without a finish reason: what is held goes out, redacted.
        out: list[Json] = []
        for (index, kind), (channel, source) in list(self._channels.items()):
            if not channel.held:
                continue
            rest = self._pass((index, kind), source, "", final=True)
            if not rest:
                continue
            if kind == _CONTENT:
                delta: Json = {"content": rest}
            elif kind == _FUNCTION:
                delta = {"function_call": {"arguments": rest}}
            else:
                delta = {"tool_calls": [{"index": kind, "function": {"arguments": rest}}]}
            out.append({"choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        return out


def _has_payload(delta: Json) -> bool:
    """Whether a delta still carries something for the caller once its text is held."""
    for key, value in delta.items():
        if key in ("content", "tool_calls"):
            if value:
                return True
        elif value is not None:
            return True
    return False


class RestoreStream(StreamTransform):
    """Placeholders of the request back into the caller's values, per choice's content."""

    __slots__ = ("_channels", "_replacer", "_report")

    def __init__(self, replacer: Replacer, report: InspectionReport) -> None:
        self._replacer = replacer
        self._report = report
        self._channels: dict[int, RestoreChannel] = {}

    def _restore(self, text: str) -> str:
        new = self._replacer.restore(text)
        if new != text:
            self._report.add("response", "redaction", "PLACEHOLDER", "restore", "restored",
                             "content")  # fmt: skip
        return new

    async def feed(self, batch: list[Json]) -> list[Json]:
        out: list[Json] = []
        for chunk in batch:
            choices = chunk.get("choices")
            if not choices:
                out.append(chunk)
                continue
            new_choices = []
            changed = False
            for choice in choices:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                index = choice.get("index", 0)
                final = bool(choice.get("finish_reason"))
                if not isinstance(text, str) or (not text and not final):
                    if final and index in self._channels:
                        rest = self._channels[index].flush()
                        if rest:
                            new_choices.append({**choice, "delta": {**delta, "content": rest}})
                            changed = True
                            continue
                    new_choices.append(choice)
                    continue
                channel = self._channels.setdefault(index, RestoreChannel(self._restore))
                released = channel.feed(text)
                if final:
                    released += channel.flush()
                if released != text:
                    changed = True
                    if not released and not final and len(delta) == 1:
                        continue
                    new_choices.append({**choice, "delta": {**delta, "content": released}})
                    continue
                new_choices.append(choice)
            if not changed:
                out.append(chunk)
            elif new_choices:
                out.append({**chunk, "choices": new_choices})
        return out

    async def flush(self) -> list[Json]:
        out: list[Json] = []
        for index, channel in self._channels.items():
            rest = channel.flush()
            if rest:
                out.append({"choices": [{"index": index, "delta": {"content": rest},
                                         "finish_reason": None}]})  # fmt: skip
        return out
