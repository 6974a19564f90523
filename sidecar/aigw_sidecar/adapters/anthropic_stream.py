"""Stream translation of an Anthropic backend: Anthropic SSE events -> canonical chunks.

:class:`AnthropicToOpenAI` is a small state machine fed one event at a time; each call
returns what to emit now, so back-pressure and cancellation stay with the caller.
``message_start`` gives the id, model and input tokens and opens the assistant turn; text
deltas become ``delta.content``; ``tool_use`` blocks become ``delta.tool_calls`` (id and
name first, then ``arguments`` fragments from ``input_json_delta``); ``thinking`` blocks
become ``delta.reasoning_content`` (their text) and ``delta.thinking_blocks`` (a signature,
or a whole ``redacted_thinking`` block), so a ``/v1/messages`` caller gets them back;
``message_delta`` gives
the finish reason and output tokens; ``message_stop`` emits a final usage chunk
(``choices: []``), as OpenAI does with ``stream_options.include_usage``.
"""

from __future__ import annotations

import time
from typing import Any

from aigw_sidecar.errors import UpstreamError, UpstreamUnavailable

from .anthropic_translate import STOP_TO_FINISH, anthropic_usage_to_openai

__all__ = ["AnthropicToOpenAI"]

Json = dict[str, Any]


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

    def feed(self, event: str, data: Json) -> list[Json]:  # noqa: PLR0911, PLR0912 - per event
        kind = data.get("type", event)
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if dtype == "signature_delta":
                block = {"type": "thinking", "thinking": "", "signature": delta.get("signature")}
                return [self._chunk({"thinking_blocks": [block]})]
            if dtype == "input_json_delta":
                tool = self._blocks.get(data.get("index", -1))
                if tool is None:
                    return []
                fragment = {"index": tool, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [fragment]})]
            return []
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "redacted_thinking":
                return [self._chunk({"thinking_blocks": [block]})]
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
            kind = str(error.get("type", "error"))[:40]
            # overloaded_error is a 529 sent in the stream: unavailable (retryable by default)
            failure = UpstreamUnavailable if kind == "overloaded_error" else UpstreamError
            raise failure(f"the provider failed mid-stream ({kind})", code="upstream_stream_error")
        return []  # ping, content_block_stop, unknown future events
