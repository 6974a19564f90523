"""``POST /v1/chat/completions``: the OpenAI chat front end (the canonical form itself).

Decoding checks the body (:func:`~aigw_sidecar.validate.check_chat`); rendering is one JSON
dump; the stream encoder writes ``data:`` events, drops the usage-only chunk unless the
caller asked for it (``stream_options.include_usage``: the upstream call always asks for
usage), and ends with ``data: [DONE]``.
"""

from __future__ import annotations

import orjson

from aigw_sidecar.context import Api, Json, Operation, RequestContext
from aigw_sidecar.errors import SidecarError, openai_error_body
from aigw_sidecar.sse import DONE, openai_event
from aigw_sidecar.validate import check_chat

__all__ = ["OPENAI_CHAT", "OpenAIChat", "OpenAIStreamEncoder"]


class OpenAIStreamEncoder:
    """Canonical chunks as OpenAI SSE."""

    __slots__ = ("_include_usage",)

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage

    def feed(self, batch: list[Json]) -> bytes:
        include_usage = self._include_usage
        return b"".join(
            openai_event(chunk)
            for chunk in batch
            if include_usage or chunk.get("choices") or not chunk.get("usage")
        )

    def finish(self) -> bytes:
        return DONE


class OpenAIChat:
    """The OpenAI chat completions API."""

    api: Api = "openai"
    operation: Operation = "chat"

    def decode(self, body: Json, ctx: RequestContext) -> Json:
        return check_chat(body)

    def render(self, ctx: RequestContext, response: Json) -> bytes:
        return orjson.dumps(response)

    def stream_encoder(self, ctx: RequestContext) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(ctx.include_usage)

    def error_body(self, error: SidecarError, request_id: str) -> bytes:
        return openai_error_body(error, request_id)

    def stream_error(self, error: SidecarError, request_id: str) -> bytes:
        return b"data: " + openai_error_body(error, request_id) + b"\n\n"


OPENAI_CHAT = OpenAIChat()
