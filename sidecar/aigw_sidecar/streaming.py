"""Stream transforms: per-request hooks that see a stream's chunks on the way out.

A step that wants to change or watch a stream returns a :class:`StreamTransform` from
``Step.stream_transform(ctx)`` (called once per streamed request, only for steps the request
walk reached; return None to stay out of this request). Chunks arrive in batches (what one
upstream read delivered); a transform takes a batch and returns what to emit now, so it may

- **pass** a batch through unchanged (return it),
- **hold back** chunks (return fewer, keep the rest) and release them later,
- **split** or **merge** chunks (return more or fewer, built with :func:`with_text`),
- **emit** chunks of its own,

and at the end of the stream :meth:`StreamTransform.flush` returns whatever it still holds.
``flush`` is only called when the stream completed; after a failure or a disconnect the
held chunks are dropped (a redaction step must never release unchecked text), and the
step's ``on_finish`` does any cleanup.

Order: transforms run innermost first, the reverse of the step order (the step nearest the
upstream call sees the provider's chunks first; the outermost step sees what the caller
will get). A chunk returned by a transform goes through the transforms outside it. A flush's
chunks go through the outer transforms' ``feed`` before their own ``flush``.

Chunks are **copy-on-write**: a chunk may be held by the provider decoder, by a recording
transform (the cache) and by the caller's encoder at once, so a transform never mutates a
chunk it did not create. It builds a changed copy with :func:`with_text` (or its own copy)
and returns that instead.

Cost: when no step overrides ``stream_transform`` the pipeline hands the batches straight
through; a step that returns None for a request adds one method call per stream, not per
chunk.
"""

from __future__ import annotations

from typing import Any

from .context import Json

__all__ = ["StreamTransform", "chunk_text", "is_final", "with_text"]


class StreamTransform:
    """One request's transform of its stream. Override :meth:`feed` and :meth:`flush`."""

    __slots__ = ()

    async def feed(self, batch: list[Json]) -> list[Json]:
        """A batch of chunks in; the chunks to emit now out (may be empty)."""
        return batch

    async def flush(self) -> list[Json]:
        """The end of the stream: the chunks still held back."""
        return []


def chunk_text(chunk: Json, index: int = 0) -> str:
    """The ``delta.content`` text of a chunk's choice ``index`` ("" when it has none)."""
    choices = chunk.get("choices")
    if not choices or index >= len(choices):
        return ""
    delta = choices[index].get("delta") or {}
    text: Any = delta.get("content")
    return text if isinstance(text, str) else ""


def with_text(chunk: Json, text: str, index: int = 0) -> Json:
    """A copy of ``chunk`` whose choice ``index`` carries ``text`` as ``delta.content``;
    only the path to the delta is copied, ``chunk`` itself is left unchanged."""
    choices = list(chunk.get("choices") or ())
    while len(choices) <= index:
        choices.append({"index": len(choices), "delta": {}, "finish_reason": None})
    choice = dict(choices[index])
    delta = dict(choice.get("delta") or {})
    delta["content"] = text
    choice["delta"] = delta
    choices[index] = choice
    out = dict(chunk)
    out["choices"] = choices
    return out


def is_final(chunk: Json) -> bool:
    """Whether a chunk ends the answer (a ``finish_reason``, or the usage-only chunk). A
    transform that holds text back releases it before such a chunk."""
    choices = chunk.get("choices")
    if not choices:
        return "usage" in chunk
    return any(c.get("finish_reason") for c in choices)
