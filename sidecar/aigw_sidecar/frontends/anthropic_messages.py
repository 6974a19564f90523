"""``POST /v1/messages``: the Anthropic Messages front end.

Decoding checks the body (:func:`~aigw_sidecar.validate.check_messages`) and translates it
into canonical OpenAI chat (:mod:`.anthropic_request`); rendering translates a canonical
completion back into an Anthropic message; the stream encoder is
:class:`~.anthropic_stream.OpenAIToAnthropic`; errors have Anthropic's shape (so the
Anthropic SDK raises the matching exception) with aigw's own type in ``aigw_type``.
"""

from __future__ import annotations

import re

import orjson

from aigw_sidecar.adapters.base import CARRIAGE
from aigw_sidecar.context import Api, Json, Operation, RequestContext
from aigw_sidecar.errors import InvalidRequest, SidecarError, anthropic_error_body
from aigw_sidecar.sse import anthropic_event
from aigw_sidecar.validate import check_messages

from .anthropic_request import anthropic_request_to_openai, openai_response_to_anthropic
from .anthropic_stream import OpenAIToAnthropic

__all__ = [
    "ANTHROPIC_COUNT_TOKENS",
    "ANTHROPIC_MESSAGES",
    "AnthropicCountTokens",
    "AnthropicMessages",
    "AnthropicStreamEncoder",
    "anthropic_beta",
]


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


_BETA = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_MAX_BETAS = 16


def anthropic_beta(ctx: RequestContext) -> str | None:
    """The caller's ``anthropic-beta`` header: beta feature names, comma-separated (repeated
    headers joined), checked so that nothing but feature names can reach a provider."""
    values = ctx.headers.getall("anthropic-beta", ())
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",")]
    if len(names) > _MAX_BETAS or not all(_BETA.fullmatch(name) for name in names):
        raise InvalidRequest(
            "anthropic-beta must be comma-separated beta feature names", code="invalid_header"
        )
    return ",".join(names)


class AnthropicMessages:
    """The Anthropic Messages API."""

    api: Api = "anthropic"
    operation: Operation = "chat"

    def decode(self, body: Json, ctx: RequestContext) -> Json:
        canonical, carriage = anthropic_request_to_openai(
            check_messages(body), beta=anthropic_beta(ctx)
        )
        if carriage is not None:
            ctx.state[CARRIAGE] = carriage
        return canonical

    def render(self, ctx: RequestContext, response: Json) -> bytes:
        return orjson.dumps(openai_response_to_anthropic(response, ctx.requested_model))

    def stream_encoder(self, ctx: RequestContext) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(ctx.requested_model)

    def error_body(self, error: SidecarError, request_id: str) -> bytes:
        return anthropic_error_body(error, request_id)

    def stream_error(self, error: SidecarError, request_id: str) -> bytes:
        return b"event: error\ndata: " + anthropic_error_body(error, request_id) + b"\n\n"


class AnthropicCountTokens(AnthropicMessages):
    """``POST /v1/messages/count_tokens``: the same request without ``max_tokens``; the
    answer is ``{"input_tokens": N}`` (the provider's count for an Anthropic backend, the
    gateway's estimate otherwise). Governed like a call (identity, authorization), but it
    reserves nothing and costs nothing."""

    operation: Operation = "count_tokens"

    def decode(self, body: Json, ctx: RequestContext) -> Json:
        if "max_tokens" not in body:
            body = {**body, "max_tokens": 1}
        body.pop("stream", None)
        return super().decode(body, ctx)

    def render(self, ctx: RequestContext, response: Json) -> bytes:
        return orjson.dumps({"input_tokens": response.get("input_tokens", 0)})


ANTHROPIC_MESSAGES = AnthropicMessages()
ANTHROPIC_COUNT_TOKENS = AnthropicCountTokens()
