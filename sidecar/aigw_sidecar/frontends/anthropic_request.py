"""Anthropic Messages API in, canonical OpenAI chat out: the ``/v1/messages`` front end.

The mirror of :mod:`.anthropic_translate` (same tables): an Anthropic request becomes a
canonical OpenAI chat request (system blocks -> a system message, ``tool_use`` ->
``tool_calls``, ``tool_result`` -> ``tool`` messages, ``tool_choice`` any -> required, ...),
and a canonical completion becomes an Anthropic message. Prompt-caching marks and
Anthropic-only parameters are kept for an Anthropic backend (:mod:`.anthropic_extras`).
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_sidecar.adapters.anthropic_extras import EXTRAS_KEY, anthropic_extras
from aigw_sidecar.adapters.anthropic_translate import (
    FINISH_TO_STOP,
    openai_usage_to_anthropic,
    text_of,
    tool_arguments,
)
from aigw_sidecar.errors import InvalidRequest

__all__ = ["anthropic_request_to_openai", "openai_response_to_anthropic"]

Json = dict[str, Any]


def _anthropic_blocks_to_parts(blocks: list[Json]) -> list[Json]:
    parts: list[Json] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            part: Json = {"type": "text", "text": block.get("text", "")}
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                url = (
                    f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
                )
            else:
                url = source.get("url", "")
            part = {"type": "image_url", "image_url": {"url": url}}
        else:
            continue
        if "cache_control" in block:
            part["cache_control"] = block["cache_control"]
        parts.append(part)
    return parts


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return text_of(content)
    return ""


def _user_turn(content: Any, out: list[Json]) -> None:
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
    parts = _anthropic_blocks_to_parts(content)
    if parts:
        if all(p["type"] == "text" and "cache_control" not in p for p in parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})


def _assistant_turn(content: Any, out: list[Json]) -> None:
    if isinstance(content, str):
        out.append({"role": "assistant", "content": content})
        return
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
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
    message: Json = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    out.append(message)


def _tool_choice_to_openai(choice: Json) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return "none" if kind == "none" else "auto"


def anthropic_request_to_openai(body: Json) -> Json:  # noqa: PLR0912
    """An (already validated) Anthropic Messages API request in canonical OpenAI form."""
    messages: list[Json] = []
    system = body.get("system")
    marks = _has_cache_marks(body)
    if system:
        content = _anthropic_blocks_to_parts(system) if marks and isinstance(system, list) else None
        messages.append({"role": "system", "content": content or text_of(system)})
    for turn in body["messages"]:
        if turn["role"] == "user":
            _user_turn(turn["content"], messages)
        else:
            _assistant_turn(turn["content"], messages)
    out: Json = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        out["tools"] = [_tool_to_openai(t) for t in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = _tool_choice_to_openai(choice)
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream"):
        out["stream"] = True
    extras = anthropic_extras(body, cache_marks=marks)
    if extras is not None:
        out[EXTRAS_KEY] = extras
    return out


def _has_cache_marks(body: Json) -> bool:
    """Whether any block, system block or tool carries ``cache_control`` (cheap pre-check)."""
    if any("cache_control" in t for t in body.get("tools") or ()):
        return True
    system = body.get("system")
    if isinstance(system, list) and any("cache_control" in b for b in system):
        return True
    return any(
        "cache_control" in b
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
    )


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
