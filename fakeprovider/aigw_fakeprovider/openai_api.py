"""The OpenAI wire format (and Azure OpenAI's deployment paths), as the real SDK reads it.

Endpoints: ``POST /v1/chat/completions`` (JSON, and SSE ``data: {...}`` chunks ending with
``data: [DONE]``; ``stream_options.include_usage`` adds a final chunk with ``usage`` and no
choices; tool calls when the request offers tools), ``POST /v1/embeddings`` (``float`` and
``base64`` encodings), ``GET /v1/models``; the Azure forms
``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` and ``.../embeddings``
with the ``api-key`` header. Errors are ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiohttp import web

from .answers import (
    ToolCall,
    content_text,
    count_words,
    embedding,
    reply_pieces,
    short_id,
)
from .answers import truncate as truncate_pieces
from .vectors import VECTORS_KEY
from .wire import CALL_KEY, Call, openai_sse

__all__ = ["RATE_LIMIT_HEADERS", "error_response", "presented_key", "routes"]

RATE_LIMIT_HEADERS = {
    "openai-version": "2020-10-01",
    "openai-processing-ms": "1",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "1999000",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "30ms",
}
_DONE = b"data: [DONE]\n\n"
_STREAM_ERROR = openai_sse(
    {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
)
_MAX_DIMENSIONS = 8192
_DEFAULT_DIMENSIONS = 1536
_USAGE_DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def error_response(
    status: int,
    message: str,
    headers: Mapping[str, str],
    *,
    param: str | None = None,
    code: str | None = None,
) -> web.Response:
    """An error in OpenAI's shape, with the type the real API uses for that status."""
    if status == 429:
        kind, code = "requests", code or "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    if status == 401:
        code = code or "invalid_api_key"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=dict(headers))


def presented_key(request: web.Request) -> str | None:
    """The API key the client sent: ``Authorization: Bearer`` or Azure's ``api-key``."""
    api_key = request.headers.get("api-key")
    if api_key is not None:
        return api_key
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth[:7].lower() == "bearer " else None


def _usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        **_USAGE_DETAILS,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": min(cached, prompt), "audio_tokens": 0}
    return usage


def _chosen_tool(body: Mapping[str, Any], hint: str) -> ToolCall | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("function")]
    messages = body["messages"]
    if not tools or (isinstance(messages[-1], Mapping) and messages[-1].get("role") == "tool"):
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    wanted = choice.get("function", {}).get("name") if isinstance(choice, Mapping) else None
    for tool in tools:
        function = tool["function"]
        if wanted is None or function.get("name") == wanted:
            return ToolCall(str(function.get("name")), function.get("parameters"), hint)
    return None


def _last_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") in ("user", "tool"):
            return content_text(message.get("content"))
    return ""


def _invalid(call: Call, message: str, param: str) -> web.Response:
    call.exchange.status = 400
    return error_response(400, message, call.headers, param=param)


def _check_azure(call: Call) -> web.Response | None:
    """Azure paths need ``api-version``; without it Azure answers 404."""
    request = call.request
    if "deployment" not in request.match_info or "api-version" in request.query:
        return None
    call.exchange.status = 404
    return error_response(404, "Resource not found", call.headers, code="404")


async def chat_completions(request: web.Request) -> web.StreamResponse:  # noqa: PLR0912
    call: Call = request[CALL_KEY]
    body = call.body
    if (refused := _check_azure(call)) is not None:
        return refused
    if isinstance(body, Mapping) and "deployment" in request.match_info:
        body = {**body, "model": request.match_info["deployment"]}
    if not isinstance(body, Mapping) or not isinstance(body.get("model"), str):
        return _invalid(call, "you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid(call, "'messages' must be a non-empty array", "messages")
    texts = [content_text(m.get("content")) for m in messages if isinstance(m, Mapping)]
    prompt_tokens = count_words(texts) + len(messages)
    last = _last_text(messages)
    fault = call.fault
    if fault.call_tool is not None:
        tool: ToolCall | None = ToolCall.planted(fault.call_tool, fault.tool_arguments)
    else:
        tool = _chosen_tool(body, last)
    legacy = tool is not None and fault.legacy_function_call
    if tool is not None:
        parts, finish = tool.argument_pieces, "function_call" if legacy else "tool_calls"
    else:
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        exact = reply_pieces(last, fault.reply, fault.reply_pieces)
        parts, truncated = truncate_pieces(exact, limit)
        finish = "length" if truncated else "stop"
    head = {
        "id": short_id("chatcmpl-", call.seq),
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_aigw_fake",
        "service_tier": "default",
    }
    usage = (
        None
        if call.fault.omit_usage
        else _usage(prompt_tokens, len(parts), call.fault.cached_tokens)
    )
    tool_id = short_id("call_", call.seq)
    if body.get("stream") is True:
        options = body.get("stream_options")
        with_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        events = _chunks(
            head, parts, tool, tool_id, finish, usage if with_usage else None, legacy=legacy
        )
        return await call.stream(events, _STREAM_ERROR)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if tool is not None and legacy:
        message["function_call"] = {"name": tool.name, "arguments": tool.arguments}
    elif tool is not None:
        message["tool_calls"] = [
            {
                "id": tool_id,
                "type": "function",
                "function": {"name": tool.name, "arguments": tool.arguments},
            }
        ]
    else:
        message["content"] = "".join(parts)
    message["annotations"] = []
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    payload = {"object": "chat.completion", **head, "choices": [choice]}
    if usage is not None:
        payload["usage"] = usage
    return call.json(payload)


def _chunks(  # noqa: PLR0917 - private, called once
    head: dict[str, Any],
    parts: list[str],
    tool: ToolCall | None,
    tool_id: str,
    finish: str,
    usage: dict[str, Any] | None,
    *,
    legacy: bool = False,
) -> Iterator[bytes]:
    base = {"object": "chat.completion.chunk", **head}
    if usage is not None:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return openai_sse({**base, "choices": [choice]})

    if tool is None:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for part in parts:
            yield chunk({"content": part})
    elif legacy:
        start = {"name": tool.name, "arguments": ""}
        yield chunk({"role": "assistant", "content": None, "function_call": start})
        for part in parts:
            yield chunk({"function_call": {"arguments": part}})
    else:
        function = {"name": tool.name, "arguments": ""}
        first = {"index": 0, "id": tool_id, "type": "function", "function": function}
        yield chunk({"role": "assistant", "content": None, "tool_calls": [first]})
        for part in parts:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    yield chunk({}, finish)
    if usage is not None:
        yield openai_sse({**base, "choices": [], "usage": usage})
    yield _DONE


async def embeddings(request: web.Request) -> web.StreamResponse:
    call: Call = request[CALL_KEY]
    body = call.body
    if (refused := _check_azure(call)) is not None:
        return refused
    if isinstance(body, Mapping) and "deployment" in request.match_info:
        body = {**body, "model": request.match_info["deployment"]}
    if not isinstance(body, Mapping) or not isinstance(body.get("model"), str):
        return _invalid(call, "you must provide a model parameter", "model")
    texts = _embedding_inputs(body.get("input"))
    if not texts:
        return _invalid(call, "'input' must be a non-empty string or array", "input")
    dimensions = body.get("dimensions", _DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= _MAX_DIMENSIONS:
        return _invalid(call, "'dimensions' must be a positive integer", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _invalid(call, "'encoding_format' must be 'float' or 'base64'", "encoding_format")
    data = []
    chosen = request.app[VECTORS_KEY]
    for index, text in enumerate(texts):
        vector = chosen.get(text) or embedding(text, dimensions)
        dimensions = len(vector)
        value: object = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(max(1, count_words([t])) for t in texts)
    payload: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if not call.fault.omit_usage:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return call.json(payload)


def _embedding_inputs(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list) or not value:
        return []
    if all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    texts: list[str] = []
    for item in value:
        if isinstance(item, str) and item:
            texts.append(item)
        elif isinstance(item, list) and item and all(isinstance(v, int) for v in item):
            texts.append(" ".join(map(str, item)))
        else:
            return []
    return texts


def models_handler(
    models: tuple[str, ...],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    payload = {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "aigw-fake"}
            for m in models
        ],
    }

    async def list_models(request: web.Request) -> web.StreamResponse:
        call: Call = request[CALL_KEY]
        return call.json(payload)

    return list_models


def routes(models: tuple[str, ...]) -> list[web.RouteDef]:
    deployments = "/openai/deployments/{deployment}"
    return [
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", models_handler(models)),
        web.post(f"{deployments}/chat/completions", chat_completions),
        web.post(f"{deployments}/embeddings", embeddings),
    ]
