"""The Anthropic Messages wire format, as the real SDK reads it.

``POST /v1/messages`` answers JSON, or with ``"stream": true`` the event sequence
``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``,
or ``input_json_delta`` for a ``tool_use`` block), ``content_block_stop``, ``message_delta``
(``stop_reason``, ``usage.output_tokens``), ``message_stop``. ``GET /v1/models`` lists models.
With ``thinking: {"type": "enabled"}`` the answer starts with a ``thinking`` block
(``"Considering: " + <last user text>``, signature ``sig-<request number>``; streamed as
``thinking_delta`` events and one ``signature_delta``), and a ``thinking`` block in the
history without its signature is a 400, as extended thinking requires.
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}`` by the same rule as usage.
The ``anthropic-version`` header is required, as by the real API. Errors are
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``; 529 is
``overloaded_error``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiohttp import web

from .answers import ToolCall, content_text, count_words, pieces, reply_pieces, short_id
from .answers import truncate as truncate_pieces
from .wire import CALL_KEY, Call, anthropic_sse

__all__ = ["RATE_LIMIT_HEADERS", "error_response", "presented_key", "routes"]

RATE_LIMIT_HEADERS = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:00Z",
    "anthropic-ratelimit-tokens-limit": "400000",
    "anthropic-ratelimit-tokens-remaining": "399000",
    "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:00Z",
}
_STREAM_ERROR = anthropic_sse(
    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_response(
    status: int, message: str, headers: Mapping[str, str], **_: str | None
) -> web.Response:
    """An error in Anthropic's shape, with the type the real API uses for that status."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": headers.get("request-id"),
    }
    return web.json_response(body, status=status, headers=dict(headers))


def presented_key(request: web.Request) -> str | None:
    """The API key the client sent: ``x-api-key`` or ``Authorization: Bearer``."""
    api_key = request.headers.get("x-api-key")
    if api_key is not None:
        return api_key
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth[:7].lower() == "bearer " else None


def _invalid(call: Call, message: str) -> web.Response:
    call.exchange.status = 400
    return error_response(400, message, call.headers)


def _chosen_tool(body: Mapping[str, Any], messages: list[Any], hint: str) -> ToolCall | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and "name" in t]
    if not tools or _is_tool_result(messages[-1]):
        return None
    choice = body.get("tool_choice")
    wanted = None
    if isinstance(choice, Mapping):
        if choice.get("type") == "none":
            return None
        if choice.get("type") == "tool":
            wanted = choice.get("name")
    for tool in tools:
        if wanted is None or tool["name"] == wanted:
            return ToolCall(str(tool["name"]), tool.get("input_schema"), hint)
    return None


def _is_tool_result(message: object) -> bool:
    if not isinstance(message, Mapping) or not isinstance(message.get("content"), list):
        return False
    return any(
        isinstance(b, Mapping) and b.get("type") == "tool_result" for b in message["content"]
    )


def _input_tokens(body: Mapping[str, Any], messages: list[Any]) -> int:
    texts = [content_text(body.get("system", ""))]
    texts += [content_text(m.get("content")) for m in messages if isinstance(m, Mapping)]
    return count_words(texts) + len(messages)


def _unsigned_thinking(messages: list[Any]) -> int | None:
    """The index of the first message with a ``thinking`` block that lacks its signature."""
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else ():
            if (
                isinstance(block, Mapping)
                and block.get("type") == "thinking"
                and not (isinstance(block.get("signature"), str) and block["signature"])
            ):
                return index
    return None


def _checked(call: Call, request: web.Request, *, needs_max_tokens: bool) -> web.Response | None:
    body = call.body
    if "anthropic-version" not in request.headers:
        return _invalid(call, "anthropic-version: header is required")
    if not isinstance(body, Mapping) or not isinstance(body.get("model"), str):
        return _invalid(call, "model: Field required")
    max_tokens = body.get("max_tokens")
    if needs_max_tokens and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        return _invalid(call, "max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid(call, "messages: Field required")
    unsigned = _unsigned_thinking(messages)
    if unsigned is not None:
        return _invalid(call, f"messages.{unsigned}.content.thinking.signature: Field required")
    return None


async def count_tokens_handler(request: web.Request) -> web.StreamResponse:
    call: Call = request[CALL_KEY]
    refused = _checked(call, request, needs_max_tokens=False)
    if refused is not None:
        return refused
    return call.json({"input_tokens": _input_tokens(call.body, call.body["messages"])})


async def messages_handler(request: web.Request) -> web.StreamResponse:
    call: Call = request[CALL_KEY]
    refused = _checked(call, request, needs_max_tokens=True)
    if refused is not None:
        return refused
    body = call.body
    max_tokens = body["max_tokens"]
    messages = body["messages"]
    input_tokens = _input_tokens(body, messages)
    last = next(
        (
            content_text(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, Mapping) and m.get("role") == "user"
        ),
        "",
    )
    fault = call.fault
    if fault.call_tool is not None:
        tool: ToolCall | None = ToolCall.planted(fault.call_tool, fault.tool_arguments)
    else:
        tool = _chosen_tool(body, messages, last)
    if tool is not None:
        parts, stop_reason = tool.argument_pieces, "tool_use"
    else:
        exact = reply_pieces(last, fault.reply, fault.reply_pieces)
        parts, truncated = truncate_pieces(exact, max_tokens)
        stop_reason = "max_tokens" if truncated else "end_turn"
    message_id = short_id("msg_", call.seq)
    tool_id = short_id("toolu_", call.seq)
    thinking = body.get("thinking")
    thought = (
        Thought(pieces(f"Considering: {last}"), f"sig-{call.seq}")
        if isinstance(thinking, Mapping) and thinking.get("type") == "enabled"
        else None
    )
    read = min(call.fault.cached_tokens, input_tokens)
    written = min(call.fault.cache_write_tokens, input_tokens - read)
    usage = {
        "input_tokens": input_tokens - read - written,
        "output_tokens": len(parts) + (len(thought.parts) if thought else 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "service_tier": "standard",
    }
    head = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"]}
    if body.get("stream") is True:
        events = _events(
            head, parts, tool, tool_id, stop_reason, usage, call.fault.omit_usage, thought
        )
        return await call.stream(events, _STREAM_ERROR)
    block: dict[str, Any]
    if tool is None:
        block = {"type": "text", "text": "".join(parts)}
    else:
        block = {"type": "tool_use", "id": tool_id, "name": tool.name, "input": tool.input}
    content = [block]
    if thought is not None:
        content.insert(0, thought.block())
    payload: dict[str, Any] = {
        **head,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
    if not call.fault.omit_usage:
        payload["usage"] = usage
    return call.json(payload)


class Thought:
    """The answer's ``thinking`` block: its text pieces and signature."""

    __slots__ = ("parts", "signature")

    def __init__(self, parts: list[str], signature: str) -> None:
        self.parts = parts
        self.signature = signature

    def block(self) -> dict[str, Any]:
        return {"type": "thinking", "thinking": "".join(self.parts), "signature": self.signature}


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return anthropic_sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def _thinking_events(thought: Thought) -> Iterator[bytes]:
    start = {"type": "thinking", "thinking": ""}
    yield anthropic_sse(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}
    )
    for part in thought.parts:
        yield _delta(0, {"type": "thinking_delta", "thinking": part})
    yield _delta(0, {"type": "signature_delta", "signature": thought.signature})
    yield anthropic_sse("content_block_stop", {"type": "content_block_stop", "index": 0})


def _events(  # noqa: PLR0917 - private, called once
    head: dict[str, Any],
    parts: list[str],
    tool: ToolCall | None,
    tool_id: str,
    stop_reason: str,
    usage: dict[str, Any],
    omit_usage: bool,
    thought: Thought | None = None,
) -> Iterator[bytes]:
    start_usage = {**usage, "output_tokens": 1}
    message = {**head, "content": [], "stop_reason": None, "stop_sequence": None}
    yield anthropic_sse(
        "message_start", {"type": "message_start", "message": {**message, "usage": start_usage}}
    )
    index = 0
    if thought is not None:
        yield from _thinking_events(thought)
        index = 1
    if tool is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
    else:
        block = {"type": "tool_use", "id": tool_id, "name": tool.name, "input": {}}
    yield anthropic_sse(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )
    yield anthropic_sse("ping", {"type": "ping"})
    for part in parts:
        if tool is None:
            delta = {"type": "text_delta", "text": part}
        else:
            delta = {"type": "input_json_delta", "partial_json": part}
        yield _delta(index, delta)
    yield anthropic_sse("content_block_stop", {"type": "content_block_stop", "index": index})
    final: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
    }
    if not omit_usage:
        final["usage"] = {"output_tokens": usage["output_tokens"]}
    yield anthropic_sse("message_delta", final)
    yield anthropic_sse("message_stop", {"type": "message_stop"})


def models_handler(
    models: tuple[str, ...],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in models
    ]
    payload = {
        "data": data,
        "has_more": False,
        "first_id": models[0] if models else None,
        "last_id": models[-1] if models else None,
    }

    async def list_models(request: web.Request) -> web.StreamResponse:
        call: Call = request[CALL_KEY]
        return call.json(payload)

    return list_models


def routes(models: tuple[str, ...]) -> list[web.RouteDef]:
    return [
        web.post("/v1/messages", messages_handler),
        web.post("/v1/messages/count_tokens", count_tokens_handler),
        web.get("/v1/models", models_handler(models)),
    ]
