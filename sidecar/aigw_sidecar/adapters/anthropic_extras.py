"""Anthropic-native content in the canonical form, and what an OpenAI-style backend gets of it.

A ``/v1/messages`` request served by an Anthropic backend goes Anthropic -> canonical
(OpenAI chat) -> Anthropic, and must keep everything the caller sent. So the canonical form
carries, besides OpenAI's own shapes:

- ``cache_control`` on content parts, system parts and tools (prompt-caching marks);
- *native parts*: content parts whose ``type`` OpenAI does not have (``document``,
  ``search_result``, ...), kept verbatim and sent verbatim to an Anthropic backend;
- ``thinking_blocks`` on assistant messages (``thinking``/``redacted_thinking`` blocks with
  their signatures, which extended thinking needs back in the next turn), and
  ``reasoning_content`` (the thinking text, as OpenAI-compatible servers name it);
- Anthropic-only top-level parameters in :class:`~.base.Carriage` (never in the body).

An OpenAI-style backend gets the closest honest equivalent (:func:`to_openai`): marks and
thinking are dropped (they change no answer), a text ``document`` becomes a text part and a
base64 PDF a ``file`` part; anything else it cannot take is named by
:func:`openai_unsupported`, so the upstream call refuses it under enforce (never a silent
200 that answers without the document) and warns otherwise.
"""

from __future__ import annotations

from typing import Any

from .base import Carriage

__all__ = [
    "MESSAGES_FIELDS",
    "OPENAI_PART_TYPES",
    "openai_unsupported",
    "to_openai",
]

Json = dict[str, Any]

MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
    }
)
"""Top-level ``/v1/messages`` fields the front end maps into the canonical form; every other
field rides in ``Carriage.anthropic_params``."""
OPENAI_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_ASSISTANT_EXTRAS = ("thinking_blocks", "reasoning_content")


def _document_part(part: Json) -> Json | None:
    """A native ``document`` part as an OpenAI part, or None when OpenAI cannot take it."""
    source = part.get("source")
    if not isinstance(source, dict):
        return None
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if kind == "content" and isinstance(source.get("content"), list):
        texts = [b.get("text") for b in source["content"] if isinstance(b, dict) and b.get("text")]
        return {"type": "text", "text": "\n".join(t for t in texts if isinstance(t, str))}
    if (
        kind == "base64"
        and source.get("media_type") == "application/pdf"
        and isinstance(source.get("data"), str)
    ):
        title = part.get("title")
        return {
            "type": "file",
            "file": {
                "filename": title if isinstance(title, str) and title else "document.pdf",
                "file_data": "data:application/pdf;base64," + source["data"],
            },
        }
    return None


def _openai_part(part: Any) -> Json | None:
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind in OPENAI_PART_TYPES:
        if "cache_control" in part:
            return {k: v for k, v in part.items() if k != "cache_control"}
        return part
    if kind == "document":
        return _document_part(part)
    return None


def openai_unsupported(body: Json, carriage: Carriage | None) -> list[str]:
    """What of a request with Anthropic carriage an OpenAI-style backend cannot honour."""
    if carriage is None:
        return []
    names = [f"parameter {key}" for key in carriage.anthropic_params]
    if carriage.native:
        for message in body.get("messages") or ():
            content = message.get("content")
            if isinstance(content, list):
                names += [
                    f"content type {part.get('type')}"
                    for part in content
                    if isinstance(part, dict) and _openai_part(part) is None
                ]
    return names


def to_openai(out: Json) -> None:
    """Turn the native content of a (shallow) copy of a canonical body into OpenAI's, in
    place; the body's own messages and parts are never changed."""
    messages: list[Json] = []
    for original in out["messages"]:
        content = original.get("content")
        message = original
        if isinstance(content, list) or any(k in original for k in _ASSISTANT_EXTRAS):
            message = {k: v for k, v in original.items() if k not in _ASSISTANT_EXTRAS}
            if isinstance(content, list):
                parts = [p for p in map(_openai_part, content) if p is not None]
                message["content"] = parts
        messages.append(message)
    out["messages"] = messages
    if out.get("tools"):
        out["tools"] = [{k: v for k, v in t.items() if k != "cache_control"} for t in out["tools"]]
