"""The ``/v1/messages`` front end's stream encoder: canonical (OpenAI) chunks in, Anthropic
SSE events out.

A small state machine fed one canonical chunk at a time: it emits ``message_start``, then
``content_block_start/delta/stop`` per thinking, text or tool block (``reasoning_content``
deltas are thinking text, a ``thinking_blocks`` entry with a ``signature`` its
``signature_delta``, a ``redacted_thinking`` one a block of its own), and at the end
``message_delta`` (stop reason, usage) and ``message_stop``. Usage arrives in OpenAI's last
chunk, after the finish reason, so ``message_delta`` waits for
:meth:`OpenAIToAnthropic.finish`.
"""

from __future__ import annotations

from typing import Any

from aigw_sidecar.adapters.anthropic_translate import FINISH_TO_STOP, openai_usage_to_anthropic

__all__ = ["OpenAIToAnthropic"]

Json = dict[str, Any]
Event = tuple[str, Json]


class OpenAIToAnthropic:
    """Feeds on OpenAI chunks, yields Anthropic ``(event, data)`` pairs."""

    __slots__ = ("_block", "_block_kind", "_finish", "_model", "_started", "_tools", "_usage")

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._block = -1  # index of the open content block, -1: none
        self._block_kind = ""
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index
        self._finish: str | None = None
        self._usage: Json = {}

    def _start(self, chunk: Json, out: list[Event]) -> None:
        self._started = True
        raw_id = str(chunk.get("id") or "")
        message: Json = {
            "id": raw_id if raw_id.startswith("msg") else f"msg_{raw_id}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        out.append(("message_start", {"type": "message_start", "message": message}))

    def _close_block(self, out: list[Event]) -> None:
        if self._block >= 0 and self._block_kind:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._block}))
            self._block_kind = ""

    def _open_block(self, kind: str, block: Json, out: list[Event]) -> None:
        self._close_block(out)
        self._block += 1
        self._block_kind = kind
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._block, "content_block": block},
            )
        )

    def feed(self, chunk: Json) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._start(chunk, out)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if "reasoning_content" in delta or "thinking_blocks" in delta:
                self._thinking(delta, out)
            text = delta.get("content")
            if text:
                if self._block_kind != "text":
                    self._open_block("text", {"type": "text", "text": ""}, out)
                data = {"type": "text_delta", "text": text}
                out.append(self._delta(data))
            for call in delta.get("tool_calls") or ():
                index = call.get("index", 0)
                function = call.get("function") or {}
                if index not in self._tools:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{index}",
                        "name": function.get("name", ""),
                        "input": {},
                    }
                    self._open_block("tool_use", block, out)
                    self._tools[index] = self._block
                arguments = function.get("arguments")
                if arguments and self._tools[index] == self._block:
                    out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _thinking(self, delta: Json, out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            if self._block_kind != "thinking":
                self._open_block("thinking", {"type": "thinking", "thinking": ""}, out)
            out.append(self._delta({"type": "thinking_delta", "thinking": reasoning}))
        blocks = delta.get("thinking_blocks")
        for block in blocks if isinstance(blocks, list) else ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "redacted_thinking":
                self._open_block("redacted_thinking", block, out)
                self._close_block(out)
            elif isinstance(block.get("signature"), str):
                if self._block_kind != "thinking":
                    self._open_block("thinking", {"type": "thinking", "thinking": ""}, out)
                out.append(
                    self._delta({"type": "signature_delta", "signature": block["signature"]})
                )

    def _delta(self, delta: Json) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._block, "delta": delta},
        )

    def finish(self) -> list[Event]:
        """The closing events, once the canonical stream has ended."""
        out: list[Event] = []
        if not self._started:
            self._start({}, out)
        self._close_block(out)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": FINISH_TO_STOP.get(self._finish or "stop", "end_turn"),
                "stop_sequence": None,
            },
            "usage": openai_usage_to_anthropic(self._usage),
        }
        out.append(("message_delta", delta))
        out.append(("message_stop", {"type": "message_stop"}))
        return out
