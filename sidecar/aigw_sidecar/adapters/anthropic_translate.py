"""OpenAI chat <-> Anthropic messages, for whole requests and whole responses.

The sidecar's canonical form is an OpenAI chat request/response (a plain dict, as parsed).
This module is the *backend* direction (canonical request out, Anthropic response back) and
the mapping tables both directions share; ``aigw_sidecar.frontends.anthropic_request`` is
the *front end* direction of ``/v1/messages`` (Anthropic request in, canonical response
out). All are pure functions over dicts, so each is unit-testable and both sides agree on
every mapping:

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
file (PDF data URL)    ``document`` block with a base64 PDF source
native parts           sent verbatim (``document``, ``search_result``, ...)
thinking_blocks        ``thinking``/``redacted_thinking`` blocks, first in the turn
reasoning_content      the text of the answer's ``thinking`` blocks
=====================  ===============================================================

Streams are in :mod:`.anthropic_stream`; prompt-caching marks, native content and
Anthropic-only parameters survive the round trip (:mod:`.anthropic_extras`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aigw_sidecar.errors import InvalidRequest

from .anthropic_extras import MESSAGES_FIELDS, OPENAI_PART_TYPES
from .base import Carriage

__all__ = [
    "ANTHROPIC_DEFAULT_MAX_TOKENS",
    "ANTHROPIC_UNSUPPORTED",
    "FINISH_TO_STOP",
    "STOP_TO_FINISH",
    "anthropic_response_to_openai",
    "anthropic_unsupported",
    "anthropic_usage_to_openai",
    "openai_request_to_anthropic",
    "openai_usage_to_anthropic",
    "text_of",
    "tool_arguments",
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

ANTHROPIC_UNSUPPORTED = (
    "response_format",
    "seed",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "prediction",
    "audio",
    "modalities",
    "reasoning_effort",
    "web_search_options",
)
"""OpenAI chat parameters an Anthropic backend cannot honour (when set to something other
than their neutral value)."""
_NEUTRAL: dict[str, Any] = {
    "logprobs": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": {},
    "modalities": ["text"],
}


def anthropic_unsupported(body: Json) -> list[str]:
    """What a canonical request asks for that an Anthropic backend cannot honour."""
    names = [
        f"parameter {key}"
        for key in ANTHROPIC_UNSUPPORTED
        if key in body and body[key] is not None and body[key] != _NEUTRAL.get(key)
    ]
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and _unsendable(part):
                    names.append(f"content type {part.get('type')}")
    return names


def _unsendable(part: Json) -> bool:
    kind = part.get("type")
    if kind in {"input_audio", "refusal"}:
        return True
    if kind == "file":
        return _file_document(part) is None
    return False


def _file_document(part: Json) -> Json | None:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    prefix = "data:application/pdf;base64,"
    if not isinstance(data, str) or not data.startswith(prefix):
        return None
    block: Json = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": data[len(prefix) :]},
    }
    if isinstance(file, dict) and isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def text_of(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
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
            block: Json = {"type": "text", "text": part.get("text", "")}
        elif kind == "image_url":
            block = _image_block(part)
        elif kind not in OPENAI_PART_TYPES:
            blocks.append(part)  # native (document, search_result, ...): verbatim
            continue
        else:
            found = _file_document(part) if kind == "file" else None
            if found is None:
                continue  # named by anthropic_unsupported: refused or warned about before
            block = found
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def tool_arguments(raw: Any) -> Any:
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


def openai_request_to_anthropic(  # noqa: PLR0912 - one table
    body: Json, model: str, *, stream: bool, carriage: Carriage | None = None
) -> Json:
    """A canonical (OpenAI chat) request as an Anthropic Messages API request."""
    system: list[Json] = []
    messages: list[Json] = []
    for message in body["messages"]:
        role = message["role"]
        content = message.get("content")
        if role in ("system", "developer"):
            if isinstance(content, list):
                system.extend(b for b in _openai_parts_to_blocks(content) if b["type"] == "text")
            elif content:
                system.append({"type": "text", "text": content})
        elif role == "user":
            _append(messages, "user", _openai_parts_to_blocks(content))
        elif role == "assistant":
            thinking = message.get("thinking_blocks")
            blocks = (
                [b for b in thinking if isinstance(b, dict)] if isinstance(thinking, list) else []
            )
            blocks += _openai_parts_to_blocks(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": tool_arguments(function.get("arguments")),
                    }
                )
            _append(messages, "assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": text_of(content),
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
        out["tools"] = [_tool_to_anthropic(t) for t in tools]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True
    if carriage is not None:
        for key, value in carriage.anthropic_params.items():
            if key not in MESSAGES_FIELDS:  # never the model, max_tokens, messages, ...
                out[key] = value
    return out


def _tool_to_anthropic(tool: Json) -> Json:
    function = tool["function"]
    out: Json = {
        "name": function["name"],
        "description": function.get("description", ""),
        "input_schema": function.get("parameters") or {"type": "object"},
    }
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def anthropic_usage_to_openai(usage: Json) -> Json:
    """Anthropic usage as OpenAI usage (cache reads and writes count as prompt tokens)."""
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (
        (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    )
    completion = usage.get("output_tokens") or 0
    details: Json = {"cached_tokens": cached}
    created = usage.get("cache_creation_input_tokens") or 0
    if created:
        details["cache_creation_tokens"] = created  # not OpenAI's; lets /v1/messages restore it
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }


def openai_usage_to_anthropic(usage: Json) -> Json:
    """OpenAI usage as Anthropic usage (``input_tokens`` excludes cache reads and writes)."""
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    created = details.get("cache_creation_tokens") or 0
    out: Json = {
        "input_tokens": max(0, (usage.get("prompt_tokens") or 0) - cached - created),
        "output_tokens": usage.get("completion_tokens") or 0,
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    if created:
        out["cache_creation_input_tokens"] = created
    return out


def anthropic_response_to_openai(message: Json) -> Json:
    """An Anthropic Messages API response as an OpenAI chat completion."""
    texts: list[str] = []
    calls: list[Json] = []
    thinking: list[Json] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
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
    if thinking:
        reply["reasoning_content"] = "".join(
            b["thinking"] for b in thinking if isinstance(b.get("thinking"), str)
        )
        reply["thinking_blocks"] = thinking
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
