"""Prompt and answer content for spans, in the GenAI conventions' message form: pure functions.

Only used when a use case opts in (``telemetry.captureContent``, docs/telemetry.md). The
inputs are what redaction left: the request body as it goes upstream (after the prompt's
masking or hashing) and the answer after its redaction, before a caller's placeholders are
restored. These functions add no text of their own and see nothing else.

The form is the one of ``gen_ai.input.messages`` and ``gen_ai.output.messages``
(semantic-conventions-genai v0.1.0, their JSON schemas): a list of ``{"role", "parts"}``
messages, parts ``{"type": "text", "content"}``, ``{"type": "tool_call", "id", "name",
"arguments"}``, ``{"type": "tool_call_response", "id", "response"}``; output messages also
carry ``finish_reason``. Other parts (images, audio, files, documents) keep their ``type``
alone: their bytes are never copied (a data URL is large and not something redaction reads
as text). The values are JSON strings on the span (the conventions allow a string where a
structured attribute is not supported; the sidecar's encoder writes scalar and array
attributes only).

**Bounds.** At most :data:`MAX_TEXT` characters of text per attribute, and at most
:data:`MAX_MESSAGES` messages: the latest are kept, in the order they were sent (earlier
turns dropped first, then the oldest kept text cut at its end), and ``truncated`` says
whether anything was left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_MESSAGES",
    "MAX_TEXT",
    "Bounded",
    "StreamedAnswer",
    "input_messages",
    "output_messages",
]

MAX_TEXT = 16 * 1024
"""Characters of text (contents, tool arguments, tool results) per attribute, at most."""
MAX_MESSAGES = 64
"""Messages per attribute, at most (the latest)."""

Json = dict[str, Any]
_ROLES = {"developer": "system", "function": "tool"}


@dataclass(slots=True)
class Bounded:
    """An attribute value (JSON text) and whether something was left out of it."""

    value: str
    truncated: bool


@dataclass(slots=True)
class _Budget:
    left: int = MAX_TEXT
    truncated: bool = False

    def take(self, text: str) -> str:
        if len(text) <= self.left:
            self.left -= len(text)
            return text
        self.truncated = True
        kept, self.left = text[: self.left], 0
        return kept


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _content_parts(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[Json] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
            else:  # an image, audio, file, document...: its kind only, never its bytes
                parts.append({"type": str(kind)[:32] if kind else "unknown"})
    return parts


def _tool_calls(calls: Any) -> list[Json]:
    parts: list[Json] = []
    if not isinstance(calls, list):
        return parts
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        part: Json = {"type": "tool_call", "name": str(function.get("name") or "")[:64]}
        if isinstance(call.get("id"), str):
            part["id"] = call["id"][:128]
        if function.get("arguments") is not None:
            part["arguments"] = _text(function["arguments"])
        parts.append(part)
    return parts


def _message_parts(message: Json) -> list[Json]:
    role = message.get("role")
    if role in ("tool", "function"):
        content = message.get("content")
        if isinstance(content, list):  # parts: their text only (an image's bytes never)
            content = "".join(p["content"] for p in _content_parts(content) if "content" in p)
        part: Json = {"type": "tool_call_response", "response": _text(content)}
        if isinstance(message.get("tool_call_id"), str):
            part["id"] = message["tool_call_id"][:128]
        return [part]
    parts = _content_parts(message.get("content"))
    parts.extend(_tool_calls(message.get("tool_calls")))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        parts.extend(_tool_calls([{"function": legacy}]))
    return parts


def _bound(messages: list[Json], dropped: bool = False) -> Bounded:
    """Keep the latest messages and text within the bounds, in their order."""
    budget = _Budget(truncated=dropped or len(messages) > MAX_MESSAGES)
    kept: list[Json] = []
    for message in reversed(messages[-MAX_MESSAGES:]):
        if budget.left == 0:
            budget.truncated = True
            break
        parts = []
        for original in message["parts"]:
            part = dict(original)
            for name in ("content", "arguments", "response"):
                if name in part:
                    part[name] = budget.take(part[name])
            parts.append(part)
        kept.append({**message, "parts": parts})
    kept.reverse()
    return Bounded(json.dumps(kept, ensure_ascii=False, separators=(",", ":")), budget.truncated)


def input_messages(body: Json) -> Bounded | None:
    """``gen_ai.input.messages`` of a canonical (OpenAI-shaped) chat request; None: none."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    found = []
    for message in messages[-MAX_MESSAGES:]:  # the latest: earlier ones are never kept
        if isinstance(message, dict):
            role = str(message.get("role") or "user")[:32]
            found.append({"role": _ROLES.get(role, role), "parts": _message_parts(message)})
    return _bound(found, len(messages) > MAX_MESSAGES) if found else None


def output_messages(choices: Iterable[Any]) -> Bounded | None:
    """``gen_ai.output.messages`` of a complete answer's ``choices``; None: none."""
    found = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        parts = _message_parts(message) if isinstance(message, dict) else []
        found.append(
            {
                "role": "assistant",
                "parts": parts,
                "finish_reason": str(choice.get("finish_reason") or "error")[:32],
            }
        )
    return _bound(found) if found else None


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=list)
    calls: dict[int, Json] = field(default_factory=dict)
    finish_reason: str | None = None


@dataclass(slots=True)
class StreamedAnswer:
    """A streamed answer's choices, gathered chunk by chunk (text bounded as it arrives)."""

    choices: dict[int, _Choice] = field(default_factory=dict)
    size: int = 0

    def add(self, chunk: Json) -> None:
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool):
                index = 0
            slot = self.choices.get(index)
            if slot is None:
                if len(self.choices) >= MAX_MESSAGES:
                    continue
                slot = self.choices[index] = _Choice()
            if choice.get("finish_reason"):
                slot.finish_reason = str(choice["finish_reason"])[:32]
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(slot, delta)

    def _delta(self, slot: _Choice, delta: Json) -> None:
        text = delta.get("content")
        if isinstance(text, str) and text and self.size <= MAX_TEXT:
            slot.text.append(text)
            self.size += len(text)
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict) or not isinstance(call.get("index", 0), int):
                continue
            held = slot.calls.setdefault(call.get("index", 0), {"id": None, "name": "", "a": []})
            if isinstance(call.get("id"), str):
                held["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    held["name"] += function["name"]
                arguments = function.get("arguments")
                if isinstance(arguments, str) and self.size <= MAX_TEXT:
                    held["a"].append(arguments)
                    self.size += len(arguments)

    def messages(self) -> Bounded | None:
        """``gen_ai.output.messages`` of what was streamed so far."""
        choices = []
        for index in sorted(self.choices):
            slot = self.choices[index]
            calls = [
                {
                    "id": held["id"],
                    "function": {"name": held["name"], "arguments": "".join(held["a"])},
                }
                for _, held in sorted(slot.calls.items())
            ]
            message: Json = {"content": "".join(slot.text), "tool_calls": calls}
            choices.append({"message": message, "finish_reason": slot.finish_reason})
        found = output_messages(choices)
        if found is not None and self.size > MAX_TEXT:
            found.truncated = True
        return found
