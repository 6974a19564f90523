"""Deterministic answers, so tests can predict every byte and every token count.

The rules (shared by both wire formats, and relied on by tests of usage accounting):

* Prompt tokens: the number of whitespace-separated words in all text of the request (system
  prompt, every message's text parts, tool results) plus one per message.
* The answer text is ``"Echo: " + <text of the last user message>`` (or a fixed sentence when
  that is empty), or exactly the text a fault's ``reply`` asks for.
* The answer is cut into pieces, one word each with its leading whitespace; a stream sends one
  piece per content event, and completion tokens = the number of pieces sent. ``max_tokens``
  (or ``max_completion_tokens``) keeps only that many pieces; the finish reason is then
  ``length`` (OpenAI) / ``max_tokens`` (Anthropic).
* When the request offers tools and the last message is not a tool result, the answer calls
  the first tool (or the one ``tool_choice`` names) with arguments synthesised from its JSON
  schema; the arguments JSON is cut into 8-character pieces, one token each.
* Embeddings are pseudo-random unit vectors seeded by the input text (float32 values).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_REPLY",
    "ToolCall",
    "content_text",
    "count_words",
    "embedding",
    "pieces",
    "reply_pieces",
    "reply_text",
    "short_id",
    "tool_arguments",
    "truncate",
]

DEFAULT_REPLY = "Hello from the fake provider."
_PIECE = re.compile(r"\s*\S+")
_ARG_PIECE_CHARS = 8
_MAX_SCHEMA_DEPTH = 6


def content_text(content: object) -> str:
    """The text of a message's content: a string, or a list of parts/blocks with text in them.

    Covers OpenAI text parts (``{"type": "text", "text": ...}``) and Anthropic blocks (text,
    ``tool_result`` whose content is itself text or blocks, and plain-text ``document``
    blocks).
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts: list[str] = []
        for part in content:
            if isinstance(part, Mapping):
                source = part.get("source")
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif "content" in part:
                    texts.append(content_text(part["content"]))
                elif isinstance(source, Mapping) and source.get("type") == "text":
                    texts.append(str(source.get("data", "")))  # a plain-text document block
            elif isinstance(part, str):
                texts.append(part)
        return " ".join(t for t in texts if t)
    return ""


def count_words(texts: Iterable[str]) -> int:
    return sum(len(text.split()) for text in texts)


def reply_pieces(
    last_user_text: str, override: str | None, exact: Sequence[str] | None
) -> list[str]:
    """The answer's stream pieces: a fault's exact ``reply_pieces``, else :func:`pieces` of
    :func:`reply_text`."""
    if exact is not None:
        return [p for p in exact if p]
    return pieces(reply_text(last_user_text, override))


def reply_text(last_user_text: str, override: str | None) -> str:
    """The answer: the fault's exact ``reply``, else an echo of the last user text."""
    if override is not None:
        return override
    return f"Echo: {last_user_text}" if last_user_text.strip() else DEFAULT_REPLY


def pieces(text: str) -> list[str]:
    """The answer cut into stream pieces: each word with the whitespace before it."""
    return _PIECE.findall(text)


def truncate(parts: list[str], limit: object) -> tuple[list[str], bool]:
    """Keeps at most ``limit`` pieces (when ``limit`` is a non-negative int); says if it cut."""
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(parts):
        return parts[:limit], True
    return parts, False


def short_id(prefix: str, seq: int) -> str:
    """A stable identifier such as ``chatcmpl-0000...2a`` derived from the request number."""
    return f"{prefix}{seq:024x}"


class ToolCall:
    """The deterministic call of one tool: its name, arguments and their stream pieces."""

    __slots__ = ("arguments", "input", "name")

    def __init__(self, name: str, schema: object, hint: str) -> None:
        self.name = name
        self.input = tool_arguments(schema if isinstance(schema, Mapping) else {}, hint)
        self.arguments = json.dumps(self.input, separators=(",", ":"))

    @classmethod
    def planted(cls, name: str, arguments: str | None) -> ToolCall:
        """A call a fault plants (``call_tool``): exactly this name and arguments text."""
        call = cls(name, {}, "")
        call.arguments = arguments if arguments is not None else "{}"
        try:
            parsed = json.loads(call.arguments)
        except ValueError:
            parsed = {}
        call.input = parsed if isinstance(parsed, dict) else {}
        return call

    @property
    def argument_pieces(self) -> list[str]:
        text = self.arguments
        return [text[i : i + _ARG_PIECE_CHARS] for i in range(0, len(text), _ARG_PIECE_CHARS)]


def tool_arguments(schema: Mapping[str, Any], hint: str) -> dict[str, Any]:
    """Arguments satisfying a JSON schema's shape (first enum value, hint for strings...)."""
    value = _sample(schema, hint, 0)
    return value if isinstance(value, dict) else {}


def _sample(schema: Mapping[str, Any], hint: str, depth: int) -> Any:  # noqa: PLR0911
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if depth >= _MAX_SCHEMA_DEPTH:
        return {} if kind == "object" else None
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {
            str(name): _sample(sub if isinstance(sub, Mapping) else {}, hint, depth + 1)
            for name, sub in props.items()
        }
    if kind == "array":
        items = schema.get("items")
        return [_sample(items, hint, depth + 1)] if isinstance(items, Mapping) else []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return hint


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector of float32-exact values, the same for the same text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)  # noqa: S311 - determinism, not security
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))
