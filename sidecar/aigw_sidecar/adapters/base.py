"""What a provider adapter is: the translation between the canonical form and one wire format.

An adapter is stateless and shared by every backend of its provider; everything that differs
per backend (URL, credential headers, the provider's model name) is precomputed in
:class:`~aigw_sidecar.runtime.RuntimeBackend` at bundle load. Per request an adapter only
turns dicts into bytes and back. For streams it hands out a fresh, stateful decoder that turns
upstream SSE events into canonical (OpenAI chat chunk) dicts.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Adapter", "Json", "StreamDecoder"]

Json = dict[str, Any]


class StreamDecoder(Protocol):
    """Turns one upstream SSE event into zero or more canonical chunks."""

    def __call__(self, event: str, data: bytes) -> list[Json]: ...


class Adapter(Protocol):
    """One provider wire format."""

    supports_embeddings: bool
    """Whether the provider has an embeddings endpoint."""

    def chat_request(self, body: Json, model: str, *, stream: bool) -> bytes:
        """The upstream request body of a canonical chat request."""
        ...

    def chat_response(self, raw: bytes) -> Json:
        """A canonical chat completion from the upstream response body."""
        ...

    def stream_decoder(self, model: str) -> StreamDecoder:
        """A decoder for one upstream stream."""
        ...

    def embeddings_request(self, body: Json, model: str) -> bytes:
        """The upstream request body of an embeddings request."""
        ...

    def embeddings_response(self, raw: bytes) -> Json:
        """A canonical (OpenAI) embeddings response from the upstream response body."""
        ...
