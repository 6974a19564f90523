"""The OpenAI wire format: OpenAI itself, Azure OpenAI and OpenAI-compatible servers.

The canonical form *is* OpenAI chat, so requests pass through with two changes: ``model``
becomes the backend's model (for Azure the deployment, which is also in the URL) and a
streaming request asks for ``stream_options.include_usage`` so the stream's last chunk
carries token usage. URLs and credential headers differ per flavor and are precomputed at
bundle load (:mod:`aigw_sidecar.runtime`).
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_sidecar.errors import UnsupportedOperation, UpstreamError

from .anthropic_extras import openai_unsupported, to_openai
from .base import Carriage, Json, StreamDecoder

__all__ = ["OpenAIAdapter"]

_DONE = b"[DONE]"


def _decode_stream_event(event: str, data: bytes) -> list[Json]:
    if data == _DONE:
        return []
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            "the provider sent a malformed stream chunk", code="upstream_bad_stream"
        ) from None
    if not isinstance(chunk, dict):
        raise UpstreamError(
            "the provider sent a malformed stream chunk", code="upstream_bad_stream"
        )
    if "error" in chunk:
        raise UpstreamError("the provider failed mid-stream", code="upstream_stream_error")
    return [chunk]


def _load_object(raw: bytes) -> Json:
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            "the provider sent a malformed response", code="upstream_bad_response"
        ) from None
    if not isinstance(value, dict):
        raise UpstreamError("the provider sent a malformed response", code="upstream_bad_response")
    return value


class OpenAIAdapter:
    """OpenAI chat completions and embeddings."""

    supports_embeddings = True

    def chat_request(
        self, body: Json, model: str, *, stream: bool, carriage: Carriage | None
    ) -> bytes:
        out = dict(body)
        out["model"] = model
        if carriage is not None and carriage.native:
            to_openai(out)
        if stream:
            options = body.get("stream_options")
            out["stream_options"] = (
                {**options, "include_usage": True} if options else {"include_usage": True}
            )
        return orjson.dumps(out)

    def chat_response(self, raw: bytes) -> Json:
        return _load_object(raw)

    def count_tokens_request(self, body: Json, model: str, carriage: Carriage | None) -> bytes:
        raise UnsupportedOperation("OpenAI-style backends have no token-counting endpoint")

    def unsupported(self, body: Json, carriage: Carriage | None) -> list[str]:
        return openai_unsupported(body, carriage)

    def stream_decoder(self, model: str) -> StreamDecoder:
        return _decode_stream_event

    def embeddings_request(self, body: Json, model: str) -> bytes:
        out = dict(body)
        out["model"] = model
        return orjson.dumps(out)

    def embeddings_response(self, raw: bytes) -> Json:
        return _load_object(raw)
