"""Usage: the one model of what a call consumed, read from the provider or estimated.

Every number about a call's tokens (the ``aigw_tokens_total`` metric, the cost in
``X-AIGW-Cost-USD``, the budget settlement) comes from one :class:`Usage`, computed once
per call by the sidecar's account step, with one estimator: the governor's
:class:`~.tokens.TokenCounter` (the conservative ``ceil(bytes / 3)`` unless an exact encoding
is configured). So the header, the metrics and the budgets never disagree.

- The provider's usage wins when it reports one (OpenAI ``usage``, Anthropic usage mapped to
  it by the adapter). Cached prompt tokens (``prompt_tokens_details.cached_tokens``) and
  prompt tokens written to the provider's cache (``cache_creation_tokens``, from Anthropic's
  ``cache_creation_input_tokens``) are part of ``prompt_tokens`` and priced on their own
  (:meth:`~.money.Prices.cost_of`).
- Otherwise it is estimated: the prompt as admission estimated it, the output counted from
  the answer (a complete response's message text and tool-call arguments; a stream's deltas,
  counted by :class:`OutputCounter` as they arrive from the provider, before any transform).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .tokens import BYTES_PER_TOKEN, TokenCounter

__all__ = ["OutputCounter", "Usage", "message_tokens", "response_output_tokens", "usage_of"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    """Of ``prompt_tokens``: read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Of ``prompt_tokens``: written to the provider's prompt cache."""
    estimated: bool = False
    """True when the provider reported no usage and it was counted here."""

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(raw: Any) -> Usage | None:
    """The :class:`Usage` of an OpenAI-shaped ``usage`` object; None if it is not one."""
    if not isinstance(raw, dict) and not isinstance(raw, Mapping):  # dict: no ABC check
        return None
    prompt = _int(raw.get("prompt_tokens"))
    completion = _int(raw.get("completion_tokens"))
    details = raw.get("prompt_tokens_details")
    cached = written = 0
    if details is not None and isinstance(details, Mapping):
        cached = _int(details.get("cached_tokens"))
        written = _int(details.get("cache_creation_tokens"))
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    return Usage(prompt, completion, cached, written)


def message_tokens(message: Mapping[str, Any], counter: TokenCounter) -> int:
    """Output tokens of a message or a stream delta: its text and tool-call arguments."""
    tokens = 0
    text = message.get("content")
    if isinstance(text, str) and text:
        tokens += counter.count(text)
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        tokens += counter.count(reasoning)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            args = function.get("arguments") if isinstance(function, Mapping) else None
            if isinstance(args, str) and args:
                tokens += counter.count(args)
    return tokens


def response_output_tokens(response: Mapping[str, Any], counter: TokenCounter) -> int:
    """Output tokens of a complete chat completion, counted from its choices."""
    choices = response.get("choices")
    if not isinstance(choices, list):
        return 0
    return sum(
        message_tokens(c["message"], counter)
        for c in choices
        if isinstance(c, Mapping) and isinstance(c.get("message"), Mapping)
    )


class OutputCounter:
    """Counts a stream's output tokens chunk by chunk and keeps the provider's usage.

    The one per-chunk counter: the upstream call feeds it every canonical chunk as it
    arrives from the provider (before stream transforms change or hold anything back), and
    the account step turns it into the call's :class:`Usage`.
    """

    __slots__ = ("_bytes", "_counter", "_tokens", "reported")

    def __init__(self, counter: TokenCounter) -> None:
        self._counter: TokenCounter | None = counter if counter.exact else None
        self._bytes = 0
        self._tokens = 0
        self.reported: Usage | None = None
        """The provider's usage, once a chunk carried it."""

    @property
    def output_tokens(self) -> int:
        """Output counted so far (the estimate counts the stream's bytes as one text, so
        small deltas are not each rounded up)."""
        return self._tokens + -(-self._bytes // BYTES_PER_TOKEN)

    def _text(self, text: str) -> None:
        if self._counter is not None:
            self._tokens += self._counter.count(text)
        else:
            self._bytes += len(text) if text.isascii() else len(text.encode())

    def feed(self, chunks: Iterable[Mapping[str, Any]]) -> None:
        for chunk in chunks:
            choices = chunk.get("choices")
            if choices:
                for choice in choices:
                    delta = choice.get("delta")
                    if delta:
                        self._delta(delta)
            usage = chunk.get("usage")
            if usage:
                self.reported = usage_of(usage)

    def _delta(self, delta: Mapping[str, Any]) -> None:
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._text(text)
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self._text(reasoning)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, Mapping) else None
                args = function.get("arguments") if isinstance(function, Mapping) else None
                if isinstance(args, str) and args:
                    self._text(args)
