"""The per-request state every pipeline step reads and writes.

One :class:`RequestContext` is made per API request by the handler, after the body is parsed
and validated into the canonical form (an OpenAI chat or embeddings request dict). Steps
communicate only through it. ``config`` is the runtime config snapshot taken when the
request started: a hot reload in the middle of a request never changes what it sees.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

from multidict import CIMultiDictProxy

from .runtime import RuntimeBackend, RuntimeConfig, RuntimeRoute

__all__ = ["Api", "Decision", "Json", "Operation", "RequestContext"]

Json = dict[str, Any]
Api = Literal["openai", "anthropic"]
Operation = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One step's decision, for the audit trail (blocking or not)."""

    step: str
    action: str
    """e.g. ``allow``, ``deny``, ``warn``, ``redact``, ``route``."""
    reason: str = ""


class RequestContext:
    """Everything known about one request, from parsing to the last byte."""

    __slots__ = (
        "api",
        "attempts",
        "backend",
        "body",
        "chunks",
        "config",
        "cost_femto",
        "deadline",
        "decisions",
        "error",
        "headers",
        "include_usage",
        "operation",
        "request_id",
        "requested_model",
        "response",
        "response_headers",
        "route",
        "started",
        "stream",
        "stream_chars",
        "usage",
        "usage_estimated",
    )

    def __init__(
        self,
        *,
        request_id: str,
        api: Api,
        operation: Operation,
        body: Json,
        headers: CIMultiDictProxy[str],
        config: RuntimeConfig,
        started: float,
    ) -> None:
        self.request_id = request_id
        self.api: Api = api
        """Which front end the caller used: decides the shape of responses and errors."""
        self.operation: Operation = operation
        self.body = body
        """The request in canonical (OpenAI) form. Steps may rewrite it (clamp, redact)."""
        self.headers = headers
        """The caller's request headers (governance metadata rides here)."""
        self.config = config
        self.started = started
        """Event-loop time the request started."""
        self.requested_model: str = body["model"]
        self.stream: bool = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        """Whether the caller asked for the usage chunk at the end of a stream."""
        self.deadline = 0.0
        """Event-loop time by which the whole request must be done (set when routed)."""
        self.route: RuntimeRoute | None = None
        self.backend: RuntimeBackend | None = None
        self.attempts = 0
        self.response: Json | None = None
        """A complete canonical response. Setting it in ``on_request`` short-circuits."""
        self.chunks: AsyncGenerator[list[Json], None] | None = None
        """A canonical chunk stream, in batches (the chunks that arrived together; a batch is
        written to the caller at once). Setting it in ``on_request`` short-circuits."""
        self.usage: Json | None = None
        """OpenAI-shaped usage, once known."""
        self.usage_estimated = False
        self.stream_chars = 0
        self.cost_femto: int | None = None
        self.decisions: list[Decision] = []
        self.response_headers: dict[str, str] = {}
        """Headers added to the response (``X-AIGW-*``)."""
        self.error: BaseException | None = None
        """The failure that ended the request, if any (seen by ``on_finish``)."""
