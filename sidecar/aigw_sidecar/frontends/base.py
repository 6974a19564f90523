"""What a front end is: the codec of one caller API (its wire format in and out).

A :class:`Frontend` turns the caller's request body into the canonical form (an OpenAI chat
or embeddings request dict: what every step sees), and renders the canonical answer, stream
and errors back in the caller's format. Anything the caller sent that has no place in the
canonical form but a backend of the same format can use (Anthropic-only parameters, the
``anthropic-beta`` header) goes into ``ctx.state[CARRIAGE]``, never into the body, so a
caller can never forge it through another endpoint's body.

Front ends are stateless and shared; a stream gets a fresh, stateful
:class:`StreamEncoder`.
"""

from __future__ import annotations

from typing import Protocol

from aigw_sidecar.context import Api, Json, Operation, RequestContext
from aigw_sidecar.errors import SidecarError

__all__ = ["Frontend", "StreamEncoder"]


class StreamEncoder(Protocol):
    """Canonical chunk batches in, the caller's SSE bytes out."""

    def feed(self, batch: list[Json]) -> bytes:
        """The bytes of one batch (may be empty)."""
        ...

    def finish(self) -> bytes:
        """The closing bytes of a stream that ended normally."""
        ...


class Frontend(Protocol):
    """One caller API: parse, render, stream encoder, error bodies."""

    api: Api
    operation: Operation

    def decode(self, body: Json, ctx: RequestContext) -> Json:
        """The canonical request of a parsed body; raises ``InvalidRequest`` for a bad one."""
        ...

    def render(self, ctx: RequestContext, response: Json) -> bytes:
        """A complete canonical answer as the caller's response body."""
        ...

    def stream_encoder(self, ctx: RequestContext) -> StreamEncoder:
        """A fresh encoder for one stream."""
        ...

    def error_body(self, error: SidecarError, request_id: str) -> bytes:
        """An error response body in the caller's shape."""
        ...

    def stream_error(self, error: SidecarError, request_id: str) -> bytes:
        """The SSE event that ends a stream that failed after its 200."""
        ...
