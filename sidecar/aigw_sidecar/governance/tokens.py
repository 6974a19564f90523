"""Token counting that works offline: a documented conservative estimate, exact on request.

Why an estimate by default. ``tiktoken`` downloads its BPE files at run time, which a pod
without internet (and this project's rule: nothing downloaded at run time) cannot do. The
one package on the registry that ships OpenAI's vocabularies inside its wheel,
``bpe-openai``, is a 41 MB wheel that raises a process's RSS by about 140 MB when it loads
``o200k_base`` and costs ~75 ns per character of prompt; the sidecar's RSS target is 60 MB and
its added-latency target 0.5 ms. So the default is an estimate, and :class:`BpeCounter`
(exact, for OpenAI encodings) is used only when that package is installed and the operator
asks for it (``exact_tokenizer`` setting).

The estimate, chosen to over-count rather than under-count:

* text: ``ceil(utf8_bytes / 3)``. BPE vocabularies of current models average about 4 bytes
  per token for English prose and 3 for code and non-Latin scripts (a CJK character is 3
  bytes and about one token), so bytes/3 over-counts typical text by ~25%;
* per message: 4 tokens of framing (role, separators), plus 3 to prime the reply;
* images: 1,105 tokens each (a high-detail 1024x1024 image in OpenAI's accounting is 765);
* tool definitions and tool-call arguments: their JSON text, counted as text.

Estimates are only used before the call (reservations, cost checks) and for streamed output
when the provider reports no usage; whenever the provider reports usage, that number is
what budgets are reconciled to.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

__all__ = [
    "BYTES_PER_TOKEN",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "BpeCounter",
    "EstimateCounter",
    "TokenCounter",
    "count_prompt",
]

BYTES_PER_TOKEN = 3
"""The estimate's divisor: UTF-8 bytes per token, rounded down (so tokens round up)."""
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
IMAGE_TOKENS = 1_105
_IMAGE_TYPES = frozenset({"image_url", "image", "input_image"})
_SKIP_KEYS = frozenset({"role", "type", "cache_control", "id", "tool_call_id"})


class TokenCounter(Protocol):
    """Counts tokens of a piece of text."""

    exact: bool

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...


class EstimateCounter:
    """The conservative estimate: ceil(UTF-8 bytes / 3)."""

    __slots__ = ()
    exact = False

    def count(self, text: str) -> int:
        size = len(text) if text.isascii() else len(text.encode())
        return -(-size // BYTES_PER_TOKEN)


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


class BpeCounter:
    """Exact counts with an OpenAI encoding shipped inside the ``bpe-openai`` wheel."""

    __slots__ = ("_encoding",)
    exact = True

    def __init__(self, encoding: str = "o200k_base") -> None:
        module = importlib.import_module("bpe_openai")  # ImportError when not installed
        self._encoding = cast(_Encoding, module.get_encoding(encoding))

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))


def count_prompt(body: Mapping[str, Any], counter: TokenCounter) -> int:
    """Prompt tokens of an OpenAI chat/embeddings or Anthropic messages request body."""
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            total += MESSAGE_OVERHEAD + _count_value(message, counter)
        total += REPLY_PRIMING
    system = body.get("system")
    if system is not None:
        total += MESSAGE_OVERHEAD + _count_value(system, counter)
    embedding_input = body.get("input")
    if embedding_input is not None:
        total += _count_value(embedding_input, counter)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        total += counter.count(prompt)
    for key in ("tools", "functions", "response_format"):
        value = body.get(key)
        if value:
            total += counter.count(json.dumps(value, separators=(",", ":")))
    return total


def _count_value(value: Any, counter: TokenCounter) -> int:
    """Tokens of the text in a JSON value, walked with an explicit stack (no recursion, so
    no nesting a caller sends can exhaust the interpreter's stack)."""
    total = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            total += counter.count(node)
        elif isinstance(node, dict) or isinstance(node, Mapping):  # noqa: SIM101 - dict: no ABC check
            kind = node.get("type")
            if isinstance(kind, str) and kind in _IMAGE_TYPES:
                total += IMAGE_TOKENS
            else:
                stack += [v for k, v in node.items() if k not in _SKIP_KEYS]
        elif isinstance(node, list):
            if node and all(isinstance(v, int) for v in node):
                total += len(node)  # embeddings input given as token ids
            else:
                stack.extend(cast(Iterable[Any], node))
    return total
