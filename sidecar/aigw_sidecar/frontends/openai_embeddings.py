"""``POST /v1/embeddings``: the OpenAI embeddings front end (never streamed)."""

from __future__ import annotations

import orjson

from aigw_sidecar.context import Api, Json, Operation, RequestContext
from aigw_sidecar.errors import SidecarError, openai_error_body
from aigw_sidecar.validate import check_embeddings

from .openai_chat import OpenAIStreamEncoder

__all__ = ["OPENAI_EMBEDDINGS", "OpenAIEmbeddings"]


class OpenAIEmbeddings:
    """The OpenAI embeddings API."""

    api: Api = "openai"
    operation: Operation = "embeddings"

    def decode(self, body: Json, ctx: RequestContext) -> Json:
        body = check_embeddings(body)
        if body.get("stream") is not None:  # embeddings never stream
            body = {k: v for k, v in body.items() if k != "stream"}
        return body

    def render(self, ctx: RequestContext, response: Json) -> bytes:
        return orjson.dumps(response)

    def stream_encoder(self, ctx: RequestContext) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(include_usage=False)

    def error_body(self, error: SidecarError, request_id: str) -> bytes:
        return openai_error_body(error, request_id)

    def stream_error(self, error: SidecarError, request_id: str) -> bytes:
        return b"data: " + openai_error_body(error, request_id) + b"\n\n"


OPENAI_EMBEDDINGS = OpenAIEmbeddings()
