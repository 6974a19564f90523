"""What a provider adapter is: the translation between the canonical form and one wire format.

An adapter is stateless and shared by every backend of its provider; everything that differs
per backend (URL, credential headers, the provider's model name) is precomputed in
:class:`~aigw_sidecar.runtime.RuntimeBackend` at bundle load. Per request an adapter only
turns dicts into bytes and back. For streams it hands out a fresh, stateful decoder that turns
upstream SSE events into canonical (OpenAI chat chunk) dicts.

What a front end knows beside the canonical body (Anthropic-only parameters, the
``anthropic-beta`` header, whether the body holds Anthropic-native content) travels as a
:class:`Carriage` in ``ctx.state[CARRIAGE]``, never inside the body: so no caller can forge
it through a body field (an ``x_aigw_anthropic`` key in a chat request is just an unknown
field). :meth:`Adapter.unsupported` names what the canonical request asks for that this
provider cannot honour; the upstream call refuses it (enforce) or warns (warn, observe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from aigw_sidecar.state import Key

__all__ = ["CARRIAGE", "Adapter", "Carriage", "Json", "StreamDecoder"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Carriage:
    """What a front end hands the adapters out of band (set by the front end only)."""

    anthropic_params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Top-level Anthropic request fields with no canonical place (``thinking``, ``top_k``,
    ``service_tier``, any newer one): sent as they are to an Anthropic backend."""
    native: bool = False
    """The canonical body holds Anthropic-native content: ``cache_control`` marks, native
    parts (``document``, ...) or assistant ``thinking_blocks``."""
    anthropic_beta: str | None = None
    """The caller's ``anthropic-beta`` header (validated), forwarded to Anthropic backends."""


CARRIAGE = Key("carriage", Carriage)


class StreamDecoder(Protocol):
    """Turns one upstream SSE event into zero or more canonical chunks."""

    def __call__(self, event: str, data: bytes) -> list[Json]: ...


class Adapter(Protocol):
    """One provider wire format."""

    supports_embeddings: bool
    """Whether the provider has an embeddings endpoint."""

    def chat_request(
        self, body: Json, model: str, *, stream: bool, carriage: Carriage | None
    ) -> bytes:
        """The upstream request body of a canonical chat request."""
        ...

    def count_tokens_request(self, body: Json, model: str, carriage: Carriage | None) -> bytes:
        """The body of the provider's token-counting endpoint (Anthropic only)."""
        ...

    def unsupported(self, body: Json, carriage: Carriage | None) -> list[str]:
        """What the request asks for that this provider cannot honour (parameters, content
        part types); translation leaves them out."""
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
