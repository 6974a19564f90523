"""The per-request state every pipeline step reads and writes.

One :class:`RequestContext` is made per API request by the handler, before the body is
read, so that even a request refused for its body is seen by the outermost steps (audit,
the request span). The pipeline then decodes the body into the canonical form (an OpenAI
chat or embeddings request dict) and walks the steps; steps communicate only through the
context. ``config`` is the runtime config snapshot taken when the request started: a hot
reload in the middle of a request never changes what it sees.

What an audit record needs is on the context when the request ends (``on_finish``): the
identity and admission (typed keys in :mod:`aigw_sidecar.keys`), ``decisions``,
``attempts`` (one :class:`AttemptRecord` each), ``cache``, ``usage``, ``cost_nano``,
``status`` and ``error_type``. Step-private state goes into ``state`` under a
:class:`~aigw_sidecar.state.Key` of the step's own.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from multidict import CIMultiDictProxy

from aigw_contract import ErrorClass

from .governance.usage import OutputCounter, Usage
from .runtime import RuntimeBackend, RuntimeConfig, RuntimeRoute
from .state import State

__all__ = [
    "Api",
    "AttemptRecord",
    "Decision",
    "Json",
    "Operation",
    "RequestContext",
    "StepName",
]

Json = dict[str, Any]
Api = Literal["openai", "anthropic"]
Operation = Literal["chat", "embeddings", "count_tokens"]


class StepName(Protocol):
    """Anything with a step's ``name`` (a :class:`~aigw_sidecar.pipeline.Step`)."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """One step's decision, for the audit trail (blocking or not)."""

    step: str
    action: str
    """e.g. ``allow``, ``blocked``, ``warned``, ``observed``, ``redact``, ``route``."""
    reason: str = ""
    code: str = ""
    """A stable machine-readable code (``rate_limited``, ``max_tokens_clamped``, ...)."""


@dataclass(slots=True)
class AttemptRecord:
    """One upstream attempt, as the audit record and the attempt span report it."""

    number: int
    """1 for the first attempt of the request, then 2, 3, ... across retries and fallbacks."""
    backend: str
    provider: str
    model: str
    started: float
    """Event-loop time the attempt began."""
    latency_s: float | None = None
    """Time to the provider's response headers (None: it never answered)."""
    outcome: str = "pending"
    """``ok`` once the answer is complete (a stream: at its end), else an error type, or
    ``cancelled`` (the caller went away)."""
    error_class: ErrorClass | None = None
    """The failure's retry class, when it failed upstream."""
    code: str = ""
    """The failure's error code."""
    ended: float | None = None
    """Event-loop time the attempt ended (its answer complete, a stream's last chunk, or
    the failure); None while it runs."""
    first_chunk_s: float | None = None
    """Streams: time from the upstream request to the first chunk received."""


class RequestContext:
    """Everything known about one request, from parsing to the last byte."""

    __slots__ = (
        "answered_by",
        "api",
        "attempts",
        "backend",
        "body",
        "cache",
        "chunks",
        "config",
        "cost_nano",
        "deadline",
        "decisions",
        "error",
        "error_type",
        "first_token_at",
        "headers",
        "include_usage",
        "operation",
        "output",
        "reached",
        "request_id",
        "requested_model",
        "response",
        "response_headers",
        "route",
        "started",
        "state",
        "status",
        "stream",
        "usage",
    )

    def __init__(  # noqa: PLR0915 - one statement per field
        self,
        *,
        request_id: str,
        api: Api,
        operation: Operation,
        headers: CIMultiDictProxy[str],
        config: RuntimeConfig,
        started: float,
        body: Json | None = None,
    ) -> None:
        self.request_id = request_id
        self.api: Api = api
        """Which front end the caller used: decides the shape of responses and errors."""
        self.operation: Operation = operation
        self.headers = headers
        """The caller's request headers (governance metadata rides here)."""
        self.config = config
        self.started = started
        """Event-loop time the request started."""
        self.deadline = math.inf
        """Event-loop time by which the whole call (a stream's last byte included) must be
        done; ``inf`` until a policy or the caller sets a latency limit."""
        self.body: Json = {}
        """The request in canonical (OpenAI) form, once decoded. Steps may rewrite it
        (clamp, redact). Empty in ``on_request`` of steps before ``Phase.DECODE``."""
        self.requested_model = ""
        self.stream = False
        self.include_usage = False
        """Whether the caller asked for the usage chunk at the end of a stream."""
        self.route: RuntimeRoute | None = None
        self.backend: RuntimeBackend | None = None
        """The backend of the attempt that answered (or of the last one tried)."""
        self.attempts: list[AttemptRecord] = []
        self.response: Json | None = None
        """A complete canonical response (from upstream, or from a step that answered)."""
        self.chunks: AsyncIterator[list[Json]] | None = None
        """A canonical chunk stream, in batches (the chunks that arrived together; a batch is
        written to the caller at once)."""
        self.answered_by: str | None = None
        """The name of the step that answered without calling upstream (cache hit,
        idempotent replay), or None."""
        self.first_token_at: float | None = None
        """Streams: event-loop time the first chunk was ready for the caller (TTFT)."""
        self.output: OutputCounter | None = None
        """A stream's output as it came from the provider (set by the upstream call)."""
        self.usage: Usage | None = None
        """What the call consumed, once known (the account step)."""
        self.cost_nano: int | None = None
        """Its cost in nano-USD at the serving backend's prices."""
        self.cache = "bypass"
        """The ``X-AIGW-Cache`` outcome: ``bypass``, ``miss``, ``hit`` (cache steps set it)."""
        self.decisions: list[Decision] = []
        self.response_headers: dict[str, str] = {}
        """Headers added to the response (``X-AIGW-*``)."""
        self.status = 0
        """The HTTP status the caller got (0 until it is known)."""
        self.error_type = ""
        """The error ``type`` the call ended with ("" if it succeeded); for a stream that
        failed after its 200, the type of the error event."""
        self.error: BaseException | None = None
        """The failure that ended the request, if any (seen by ``on_finish``)."""
        self.state = State()
        """Typed per-request state of the steps (:mod:`aigw_sidecar.state`)."""
        self.reached = 0
        """How many steps (in pipeline order) the request walk has reached: only their
        response and finish sides run. Maintained by the pipeline."""
        if body is not None:
            self.set_body(body)

    def set_body(self, body: Json) -> None:
        """Install the decoded canonical body (the pipeline does this once)."""
        self.body = body
        model = body.get("model")
        self.requested_model = model if isinstance(model, str) else ""
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def answer(
        self,
        step: StepName,
        *,
        response: Json | None = None,
        chunks: AsyncIterator[list[Json]] | None = None,
    ) -> None:
        """Answer the request from a step (a cache hit, an idempotent replay) instead of
        calling upstream: the walk stops after this step, and only the steps it reached
        (this one included) see the response side."""
        if (response is None) == (chunks is None):
            raise ValueError("answer with exactly one of response= or chunks=")
        self.response = response
        self.chunks = chunks
        self.answered_by = step.name

    def warn(self, message: str) -> None:
        """Add ``message`` to the ``X-AIGW-Warning`` header (printable ASCII, bounded)."""
        text = message.encode("ascii", "backslashreplace").decode()
        text = "".join(c if c.isprintable() else "?" for c in text)
        previous = self.response_headers.get("X-AIGW-Warning")
        joined = f"{previous}; {text}" if previous else text
        self.response_headers["X-AIGW-Warning"] = joined[:1000]

    @property
    def answered(self) -> bool:
        """Whether a response or a stream is ready (from upstream or from a step)."""
        return self.response is not None or self.chunks is not None
