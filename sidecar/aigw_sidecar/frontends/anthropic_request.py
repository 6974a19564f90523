"""Anthropic Messages API in, canonical OpenAI chat out: the ``/v1/messages`` front end.

The mirror of ``aigw_sidecar.adapters.anthropic_translate`` (same tables): an Anthropic
request becomes a canonical OpenAI chat request (system blocks -> a system message,
``tool_use`` -> ``tool_calls``, ``tool_result`` -> ``tool`` messages, ``tool_choice`` any ->
required, ...), and a canonical completion becomes an Anthropic message.

Nothing the caller sent is dropped on the way to an Anthropic backend: prompt-caching marks
stay on their parts and tools; blocks OpenAI has no part for (``document``,
``search_result``, images from the Files API, ...) stay verbatim as native parts; an
assistant turn's ``thinking``/``redacted_thinking`` blocks ride as ``thinking_blocks``; and
every top-level field the canonical form has no place for (``thinking``, ``top_k``,
``service_tier``, newer ones) goes into the :class:`~aigw_sidecar.adapters.base.Carriage`,
out of band (see :mod:`aigw_sidecar.adapters.anthropic_extras`). Back the other way,
``thinking_blocks`` of the answer come first in its content.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import orjson

from aigw_sidecar.adapters.anthropic_extras import MESSAGES_FIELDS
from aigw_sidecar.adapters.anthropic_translate import (
    FINISH_TO_STOP,
    openai_usage_to_anthropic,
    text_of,
    tool_arguments,
)
from aigw_sidecar.adapters.base import Carriage
from aigw_sidecar.errors import InvalidRequest

__all__ = ["anthropic_request_to_openai", "openai_response_to_anthropic"]

Json = dict[str, Any]
_THINKING = frozenset({"thinking", "redacted_thinking"})
_CLAIMS = ("tenant", "use_case")
"""Governance claims a caller may state in ``metadata`` (read, then stripped, by admit)."""


class _Native:
    """Whether the translation kept Anthropic-native content in the canonical body."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


def _image_part(block: Json) -> Json | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        media = source.get("media_type", "image/png")
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{media};base64,{source.get('data', '')}"},
        }
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url", "")}}
    return None


def _blocks_to_parts(blocks: list[Json], native: _Native) -> list[Json]:
    parts: list[Json] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("tool_result", "tool_use") or kind in _THINKING:
            continue  # their own canonical places
        part: Json | None
        if kind == "text":
            part = {"type": "text", "text": block.get("text", "")}
        elif kind == "image":
            part = _image_part(block)
        else:
            part = None
        if part is None:  # native: kept verbatim for an Anthropic backend
            native.seen = True
            parts.append(block)
            continue
        if "cache_control" in block:
            native.seen = True
            part["cache_control"] = block["cache_control"]
        parts.append(part)
    return parts


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return text_of(content)
    return ""


def _user_turn(content: Any, out: list[Json], native: _Native) -> None:
    if isinstance(content, str):
        out.append({"role": "user", "content": content})
        return
    for block in content:
        if block.get("type") == "tool_result":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": _tool_result_text(block.get("content")),
                }
            )
    parts = _blocks_to_parts(content, native)
    if parts:
        if all(p["type"] == "text" and "cache_control" not in p for p in parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})


def _assistant_turn(content: Any, out: list[Json], native: _Native) -> None:
    if isinstance(content, str):
        out.append({"role": "assistant", "content": content})
        return
    parts = _blocks_to_parts(content, native)
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {
                "name": b.get("name", ""),
                "arguments": orjson.dumps(b.get("input") or {}).decode(),
            },
        }
        for b in content
        if b.get("type") == "tool_use"
    ]
    message: Json
    if all(p["type"] == "text" and "cache_control" not in p for p in parts):
        message = {"role": "assistant", "content": "".join(p["text"] for p in parts) or None}
    else:
        message = {"role": "assistant", "content": parts}
    if calls:
        message["tool_calls"] = calls
    thinking = [b for b in content if b.get("type") in _THINKING]
    if thinking:
        native.seen = True
        message["thinking_blocks"] = thinking
    out.append(message)


def _tool_choice_to_openai(choice: Json) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return "none" if kind == "none" else "auto"


def _system(system: Any, native: _Native) -> Json:
    if isinstance(system, list) and any(
        isinstance(b, dict) and ("cache_control" in b or b.get("type") != "text") for b in system
    ):
        native.seen = True
        return {"role": "system", "content": _blocks_to_parts(system, native)}
    return {"role": "system", "content": text_of(system)}


def anthropic_request_to_openai(  # noqa: PLR0912 - one table
    body: Json, *, beta: str | None = None
) -> tuple[Json, Carriage | None]:
    """An (already validated) Anthropic Messages API request in canonical OpenAI form, and
    what rides beside it (``beta``: the caller's validated ``anthropic-beta`` header)."""
    native = _Native()
    messages: list[Json] = []
    system = body.get("system")
    if system:
        messages.append(_system(system, native))
    for turn in body["messages"]:
        if turn["role"] == "user":
            _user_turn(turn["content"], messages, native)
        else:
            _assistant_turn(turn["content"], messages, native)
    out: Json = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        tools = [_tool_to_openai(t) for t in body["tools"]]
        native.seen = native.seen or any("cache_control" in t for t in tools)
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = _tool_choice_to_openai(choice)
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        if isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
        claims = {k: metadata[k] for k in _CLAIMS if k in metadata}
        if claims:
            out["metadata"] = claims
    if body.get("stream"):
        out["stream"] = True
    params = {k: v for k, v in body.items() if k not in MESSAGES_FIELDS}
    if not params and not native.seen and beta is None:
        return out, None
    return out, Carriage(MappingProxyType(params), native.seen, beta)


def _tool_to_openai(tool: Json) -> Json:
    out: Json = {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {"type": "object"},
        },
    }
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def openai_response_to_anthropic(completion: Json, model: str) -> Json:
    """A canonical chat completion as an Anthropic Messages API response."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[Json] = []
    thinking = message.get("thinking_blocks")
    if isinstance(thinking, list):
        content.extend(b for b in thinking if isinstance(b, dict) and b.get("type") in _THINKING)
    text = message.get("content")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = tool_arguments(function.get("arguments"))
        except InvalidRequest:
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": arguments,
            }
        )
    raw_id = str(completion.get("id") or "")
    return {
        "id": raw_id if raw_id.startswith("msg") else f"msg_{raw_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": openai_usage_to_anthropic(completion.get("usage") or {}),
    }
