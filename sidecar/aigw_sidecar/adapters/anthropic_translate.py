"""OpenAI chat <-> Anthropic messages, for whole requests and whole responses.

The sidecar's canonical form is an OpenAI chat request/response (a plain dict, as parsed).
Two places need Anthropic's shape: the Anthropic *backend* adapter (canonical request out,
Anthropic response back) and the Anthropic-compatible *front end* ``/v1/messages``
(Anthropic request in, canonical response out). Both directions live here as pure functions
over dicts, so each is unit-testable and both sides agree on every mapping:

=====================  ===============================================================
OpenAI                 Anthropic
=====================  ===============================================================
system/developer msgs  ``system`` (text blocks)
assistant tool_calls   ``tool_use`` blocks (``arguments`` JSON text <-> ``input`` object)
role ``tool``          ``tool_result`` block in a user turn
image_url (data URL)   ``image`` block with a base64 source (other URLs: a url source)
stop                   stop_sequences
tool_choice            auto / any (required) / none / tool (a named function)
finish_reason          stop_reason: stop<->end_turn|stop_sequence, length<->max_tokens,
                       tool_calls<->tool_use, content_filter<->refusal
usage prompt/complet.  input_tokens (+cache reads/writes) / output_tokens
=====================  ===============================================================

Streams are in :mod:`.anthropic_stream`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aigw_sidecar.errors import InvalidRequest

__all__ = [
    "ANTHROPIC_DEFAULT_MAX_TOKENS",
    "FINISH_TO_STOP",
    "STOP_TO_FINISH",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "anthropic_usage_to_openai",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
]

ANTHROPIC_DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; OpenAI requests often omit it."""

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

Json = dict[str, Any]


# ----------------------------------------------------------------------- OpenAI -> Anthropic


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _image_block(part: Json) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest("image_url.url must be a string", code="invalid_content")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _openai_parts_to_blocks(content: Any) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        else:
            raise InvalidRequest(
                f"content part type {kind!r} cannot be sent to an Anthropic backend",
                code="unsupported_content",
            )
    return blocks


def _tool_arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "tool_calls[].function.arguments must be a JSON object", code="invalid_tool_call"
        ) from None


def _append(messages: list[Json], role: str, blocks: list[Json]) -> None:
    """Anthropic wants alternating turns: merge consecutive turns of one role."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice_to_anthropic(choice: Any, parallel: Any) -> Json | None:
    result: Json | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise InvalidRequest("tool_choice is not understood", code="invalid_tool_choice")
    if result is not None and parallel is False:
        result["disable_parallel_tool_use"] = True
    return result


def openai_request_to_anthropic(body: Json, model: str, *, stream: bool) -> Json:  # noqa: PLR0912
    """A canonical (OpenAI chat) request as an Anthropic Messages API request."""
    system: list[Json] = []
    messages: list[Json] = []
    for message in body["messages"]:
        role = message["role"]
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content)
            if text:
                system.append({"type": "text", "text": text})
        elif role == "user":
            _append(messages, "user", _openai_parts_to_blocks(content))
        elif role == "assistant":
            blocks = _openai_parts_to_blocks(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": _tool_arguments(function.get("arguments")),
                    }
                )
            _append(messages, "assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": _text_of(content),
            }
            _append(messages, "user", [result])
    if (body.get("n") or 1) > 1:
        raise InvalidRequest(
            "Anthropic backends answer one choice: 'n' must be 1", code="invalid_n"
        )
    out: Json = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or ANTHROPIC_DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = system
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in tools
        ]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True
    return out


def anthropic_usage_to_openai(usage: Json) -> Json:
    """Anthropic usage as OpenAI usage (cache reads and writes count as prompt tokens)."""
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (
        (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    )
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def anthropic_response_to_openai(message: Json) -> Json:
    """An Anthropic Messages API response as an OpenAI chat completion."""
    texts: list[str] = []
    calls: list[Json] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": STOP_TO_FINISH.get(message.get("stop_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
        "usage": anthropic_usage_to_openai(message.get("usage") or {}),
    }


# ----------------------------------------------------------------------- Anthropic -> OpenAI


def _anthropic_blocks_to_parts(blocks: list[Json]) -> list[Json]:
    parts: list[Json] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                url = (
                    f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
                )
            else:
                url = source.get("url", "")
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _text_of(content)
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
        if all(p["type"] == "text" for p in parts):
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


def anthropic_request_to_openai(body: Json) -> Json:
    """An (already validated) Anthropic Messages API request in canonical OpenAI form."""
    messages: list[Json] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
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
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in body["tools"]
        ]
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
            arguments = _tool_arguments(function.get("arguments"))
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
    usage = completion.get("usage") or {}
    raw_id = str(completion.get("id") or "")
    return {
        "id": raw_id if raw_id.startswith("msg") else f"msg_{raw_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens") or 0,
            "output_tokens": usage.get("completion_tokens") or 0,
        },
    }
