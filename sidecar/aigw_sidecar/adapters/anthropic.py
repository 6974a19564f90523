"""The Anthropic Messages API as a backend: canonical OpenAI chat in, Anthropic on the wire.

The mapping itself is in :mod:`.anthropic_translate` and :mod:`.anthropic_stream`; this module
only binds it to the adapter interface. Anthropic has no embeddings endpoint.
"""

from __future__ import annotations

import orjson

from aigw_sidecar.errors import UnsupportedOperation, UpstreamError

from .anthropic_stream import AnthropicToOpenAI
from .anthropic_translate import (
    anthropic_response_to_openai,
    anthropic_unsupported,
    openai_request_to_anthropic,
)
from .base import Carriage, Json, StreamDecoder

__all__ = ["AnthropicAdapter"]


def _load_object(raw: bytes, what: str) -> Json:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError(f"the provider sent a malformed {what}", code="upstream_bad_response")
    return value


class _Decoder:
    __slots__ = ("_translator",)

    def __init__(self, model: str) -> None:
        self._translator = AnthropicToOpenAI(model)

    def __call__(self, event: str, data: bytes) -> list[Json]:
        return self._translator.feed(event, _load_object(data, "stream event"))


class AnthropicAdapter:
    """Anthropic messages, translated to and from OpenAI chat."""

    supports_embeddings = False

    def chat_request(
        self, body: Json, model: str, *, stream: bool, carriage: Carriage | None
    ) -> bytes:
        return orjson.dumps(
            openai_request_to_anthropic(body, model, stream=stream, carriage=carriage)
        )

    def count_tokens_request(self, body: Json, model: str, carriage: Carriage | None) -> bytes:
        """A ``/v1/messages/count_tokens`` body: the request without its output settings."""
        request = openai_request_to_anthropic(body, model, stream=False, carriage=carriage)
        for key in ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences",
                    "metadata", "service_tier"):  # fmt: skip
            request.pop(key, None)
        return orjson.dumps(request)

    def unsupported(self, body: Json, carriage: Carriage | None) -> list[str]:
        return anthropic_unsupported(body)

    def chat_response(self, raw: bytes) -> Json:
        return anthropic_response_to_openai(_load_object(raw, "response"))

    def stream_decoder(self, model: str) -> StreamDecoder:
        return _Decoder(model)

    def embeddings_request(self, body: Json, model: str) -> bytes:
        raise UnsupportedOperation("Anthropic backends do not serve embeddings")

    def embeddings_response(self, raw: bytes) -> Json:
        raise UnsupportedOperation("Anthropic backends do not serve embeddings")
