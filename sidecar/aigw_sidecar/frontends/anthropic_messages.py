"""``POST /v1/messages``: the Anthropic Messages front end.

Decoding checks the body (:func:`~aigw_sidecar.validate.check_messages`) and translates it
into canonical OpenAI chat (:mod:`.anthropic_request`); rendering translates a canonical
completion back into an Anthropic message; the stream encoder is
:class:`~.anthropic_stream.OpenAIToAnthropic`; errors have Anthropic's shape (so the
Anthropic SDK raises the matching exception) with aigw's own type in ``aigw_type``.
"""

from __future__ import annotations

import orjson

from aigw_sidecar.context import Api, Json, Operation, RequestContext
from aigw_sidecar.errors import SidecarError, anthropic_error_body
from aigw_sidecar.sse import anthropic_event
from aigw_sidecar.validate import check_messages

from .anthropic_request import anthropic_request_to_openai, openai_response_to_anthropic
from .anthropic_stream import OpenAIToAnthropic

__all__ = ["ANTHROPIC_MESSAGES", "AnthropicMessages", "AnthropicStreamEncoder"]


class AnthropicStreamEncoder:
    """Canonical chunks as Anthropic SSE events."""

    __slots__ = ("_translator",)

    def __init__(self, model: str) -> None:
        self._translator = OpenAIToAnthropic(model)

    def feed(self, batch: list[Json]) -> bytes:
        feed = self._translator.feed
        return b"".join(
            anthropic_event(event, payload) for chunk in batch for event, payload in feed(chunk)
        )

    def finish(self) -> bytes:
        return b"".join(anthropic_event(e, payload) for e, payload in self._translator.finish())


class AnthropicMessages:
    """The Anthropic Messages API."""

    api: Api = "anthropic"
    operation: Operation = "chat"

    def decode(self, body: Json, ctx: RequestContext) -> Json:
        return anthropic_request_to_openai(check_messages(body))

    def render(self, ctx: RequestContext, response: Json) -> bytes:
        return orjson.dumps(openai_response_to_anthropic(response, ctx.requested_model))

    def stream_encoder(self, ctx: RequestContext) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(ctx.requested_model)

    def error_body(self, error: SidecarError, request_id: str) -> bytes:
        return anthropic_error_body(error, request_id)

    def stream_error(self, error: SidecarError, request_id: str) -> bytes:
        return b"event: error\ndata: " + anthropic_error_body(error, request_id) + b"\n\n"


ANTHROPIC_MESSAGES = AnthropicMessages()
