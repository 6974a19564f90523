"""Injectable faults: what can go wrong with a provider, and how a test asks for it.

A test (or the benchmark) needs the fake to misbehave on purpose: answer 429 with
``Retry-After``, stall before the first byte or between stream chunks, cut a stream mid-way,
leave usage out, or answer a fixed text (for output-redaction tests). A fault reaches the fake
two ways, because a proxy in between may not forward arbitrary headers:

* request headers, read per request (``X-Fake-Status``, ``X-Fake-Retry-After``,
  ``X-Fake-Latency-Ms``, ``X-Fake-Chunk-Latency-Ms``, ``X-Fake-Cut-After-Chunks``,
  ``X-Fake-Error-After-Chunks``, ``X-Fake-Omit-Usage``, ``X-Fake-Reply``,
  ``X-Fake-Cached-Tokens``, ``X-Fake-Cache-Write-Tokens``);
* the control API, ``POST /_fake/faults``, which queues faults for the next model requests.

When both apply, the queued fault is taken first and the headers override it field by field.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Fault", "FaultQueue"]

_INT_FIELDS = (
    "status",
    "latency_ms",
    "chunk_latency_ms",
    "cut_after_chunks",
    "error_after_chunks",
    "cached_tokens",
    "cache_write_tokens",
)
_OPTIONAL_INT_FIELDS = ("status", "cut_after_chunks", "error_after_chunks")
_STR_FIELDS = ("retry_after", "retry_after_ms", "ratelimit_reset", "reply", "error_message")
_BOOL_FIELDS = ("omit_usage", "legacy_function_call")
_PIECES_FIELDS = ("reply_pieces",)
_CALL_FIELDS = ("call_tool", "tool_arguments")
_HEADER_TO_FIELD = {
    "x-fake-status": "status",
    "x-fake-retry-after": "retry_after",
    "x-fake-retry-after-ms": "retry_after_ms",
    "x-fake-ratelimit-reset": "ratelimit_reset",
    "x-fake-latency-ms": "latency_ms",
    "x-fake-chunk-latency-ms": "chunk_latency_ms",
    "x-fake-cut-after-chunks": "cut_after_chunks",
    "x-fake-error-after-chunks": "error_after_chunks",
    "x-fake-omit-usage": "omit_usage",
    "x-fake-reply": "reply",
    "x-fake-error-message": "error_message",
    "x-fake-reply-pieces": "reply_pieces",
    "x-fake-call-tool": "call_tool",
    "x-fake-tool-arguments": "tool_arguments",
    "x-fake-legacy-function-call": "legacy_function_call",
    "x-fake-cached-tokens": "cached_tokens",
    "x-fake-cache-write-tokens": "cache_write_tokens",
}
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class Fault:
    """How the next answer should misbehave. The default instance means "behave".

    ``status``: answer this HTTP status with the provider's error body instead of a result.
    ``retry_after``: value of the ``Retry-After`` header on that error (seconds, as text).
    ``retry_after_ms``: value of a ``retry-after-ms`` header on that error (OpenAI's SDKs
    read it); with it, no default ``Retry-After`` is added.
    ``ratelimit_reset``: OpenAI flavor, on that error: ``x-ratelimit-remaining-requests: 0``
    and ``x-ratelimit-reset-requests`` set to this duration (``1s``, ``250ms``), the only
    back-off hint when neither ``retry_after`` nor ``retry_after_ms`` is set.
    ``latency_ms``: wait this long before the first byte (status line) is sent.
    ``chunk_latency_ms``: wait this long between stream events.
    ``cut_after_chunks``: close the connection after this many stream events, without the
    final events; on a non-streaming request, close it without any answer.
    ``error_after_chunks``: after this many stream events, send the provider's in-stream
    error event (OpenAI ``data: {"error": ...}``, Anthropic ``event: error`` with
    ``overloaded_error``) and end the stream there, as providers do when overloaded mid-way.
    ``omit_usage``: leave token usage out of the answer (and of the final stream events).
    ``reply``: answer exactly this text instead of the echo.
    ``error_message``: the message of the error body (with ``status``).
    ``reply_pieces``: answer exactly the concatenation of these texts, and stream each as one
    content event (so a test chooses every chunk boundary); overrides ``reply``.
    ``call_tool``: answer with a call of this tool, whether or not the request offered it
    (a model calling a tool it should not), with ``tool_arguments`` (JSON text, default
    ``{}``) streamed in 8-character pieces.
    ``legacy_function_call``: OpenAI flavor: the call in the legacy ``function_call`` form
    (``finish_reason: function_call``) instead of ``tool_calls``.
    ``cached_tokens``: report this many of the prompt tokens as read from the prompt cache
    (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``).
    ``cache_write_tokens``: report this many as written to it (Anthropic
    ``cache_creation_input_tokens``; OpenAI has no such field).
    """

    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    ratelimit_reset: str | None = None
    latency_ms: int = 0
    chunk_latency_ms: int = 0
    cut_after_chunks: int | None = None
    error_after_chunks: int | None = None
    omit_usage: bool = False
    reply: str | None = None
    error_message: str | None = None
    reply_pieces: tuple[str, ...] | None = None
    call_tool: str | None = None
    tool_arguments: str | None = None
    legacy_function_call: bool = False
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Builds a fault from the control API's JSON; raises ``ValueError`` on bad input."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**{name: _coerce(name, value) for name, value in data.items()})

    def with_headers(self, headers: Mapping[str, str]) -> Fault:
        """This fault with the ``X-Fake-*`` request headers applied over it.

        ``headers`` must look names up case-insensitively (aiohttp's request headers do).
        """
        overrides: dict[str, Any] = {}
        for header, name in _HEADER_TO_FIELD.items():
            value = headers.get(header)
            if value is not None:
                overrides[name] = _coerce(name, value)
        return dataclasses.replace(self, **overrides) if overrides else self

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.reply_pieces is not None:
            data["reply_pieces"] = list(self.reply_pieces)
        return data


def _coerce(name: str, value: object) -> Any:  # noqa: PLR0911 - one return per kind
    if name in _INT_FIELDS:
        if value is None and name in _OPTIONAL_INT_FIELDS:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"fault field {name!r} must be an integer")
        number = int(value)
        if number < 0:
            raise ValueError(f"fault field {name!r} must not be negative")
        return number
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in _TRUE
    if name in _STR_FIELDS or name in _CALL_FIELDS:
        return None if value is None else str(value)
    if name in _PIECES_FIELDS:
        if value is None:
            return None
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"fault field {name!r} must be a list of strings")
        return tuple(value)
    raise ValueError(f"unknown fault field {name!r}")


class FaultQueue:
    """Faults queued by the control API, each consumed by one model request.

    Thread-safe: tests may queue from another thread than the one serving the fake.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()

    def push(self, fault: Fault, count: int = 1) -> int:
        """Queues ``fault`` for the next ``count`` requests; returns how many are queued."""
        with self._lock:
            self._queue.extend([fault] * count)
            return len(self._queue)

    def pop(self) -> Fault:
        """The fault for this request: the next queued one, or "behave"."""
        with self._lock:
            return self._queue.popleft() if self._queue else _BEHAVE

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)


_BEHAVE = Fault()
