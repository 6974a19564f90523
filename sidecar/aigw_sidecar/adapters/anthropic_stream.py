"""Stream translation: Anthropic SSE events <-> OpenAI chat completion chunks.

Both translators are small state machines fed one event (or chunk) at a time; each call
returns what to emit now, so back-pressure and cancellation stay with the caller.

- :class:`AnthropicToOpenAI` (Anthropic backend, canonical stream out): ``message_start``
  gives the id, model and input tokens and opens the assistant turn; text deltas become
  ``delta.content``; ``tool_use`` blocks become ``delta.tool_calls`` (id and name first, then
  ``arguments`` fragments from ``input_json_delta``); ``message_delta`` gives the finish
  reason and output tokens; ``message_stop`` emits a final usage chunk (``choices: []``), as
  OpenAI does with ``stream_options.include_usage``.
- :class:`OpenAIToAnthropic` (``/v1/messages`` front end, canonical stream in): emits
  ``message_start``, then ``content_block_start/delta/stop`` per text or tool block, and at the
  end ``message_delta`` (stop reason, usage) and ``message_stop``. Usage arrives in OpenAI's
  last chunk, after the finish reason, so ``message_delta`` waits for :meth:`finish`.
"""

from __future__ import annotations

import time
from typing import Any

from aigw_sidecar.errors import UpstreamError

from .anthropic_translate import (
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    anthropic_usage_to_openai,
    openai_usage_to_anthropic,
)

__all__ = ["AnthropicToOpenAI", "OpenAIToAnthropic"]

Json = dict[str, Any]
Event = tuple[str, Json]


class AnthropicToOpenAI:
    """Feeds on Anthropic stream events, yields OpenAI chunks."""

    __slots__ = ("_blocks", "_created", "_id", "_model", "_next_tool", "_usage")

    def __init__(self, model: str) -> None:
        self._id = ""
        self._model = model
        self._created = int(time.time())
        self._usage: Json = {}
        self._blocks: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._next_tool = 0

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def feed(self, event: str, data: Json) -> list[Json]:  # noqa: PLR0911 - one branch per event
        kind = data.get("type", event)
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "input_json_delta":
                tool = self._blocks.get(data.get("index", -1))
                if tool is None:
                    return []
                fragment = {"index": tool, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [fragment]})]
            return []
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            tool = self._next_tool
            self._next_tool += 1
            self._blocks[data.get("index", -1)] = tool
            call = {
                "index": tool,
                "id": block.get("id", ""),
                "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = message.get("id", "")
            self._model = message.get("model") or self._model
            self._usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self._usage.update(
                {k: v for k, v in (data.get("usage") or {}).items() if v is not None}
            )
            stop = (data.get("delta") or {}).get("stop_reason")
            if stop:
                return [self._chunk({}, STOP_TO_FINISH.get(stop, "stop"))]
            return []
        if kind == "message_stop":
            final = self._chunk({})
            final["choices"] = []
            final["usage"] = anthropic_usage_to_openai(self._usage)
            return [final]
        if kind == "error":
            error = data.get("error") or {}
            raise UpstreamError(
                f"the provider failed mid-stream ({error.get('type', 'error')})",
                code="upstream_stream_error",
            )
        return []  # ping, content_block_stop, unknown future events


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
