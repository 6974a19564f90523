"""Server-sent events: reading an upstream stream, writing the caller's.

The reader yields batches of ``(event, data)``: every complete event one socket read
delivered (multi-line ``data`` joined by newlines, comments and ``id``/``retry`` ignored).
The writers render one event as bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import StreamReader

__all__ = ["DONE", "anthropic_event", "iter_sse_batches", "openai_event"]

Json = dict[str, Any]

DONE = b"data: [DONE]\n\n"


def _parse_event(block: bytes) -> tuple[str, bytes] | None:
    event = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    return (event, b"\n".join(data)) if data else None


async def iter_sse_batches(
    content: StreamReader, max_event_bytes: int = 1 << 20
) -> AsyncIterator[list[tuple[str, bytes]]]:
    """The events of an SSE body, in batches: every complete event that one read of the
    socket delivered. Writing a batch at once costs one write instead of one per event."""
    buffer = b""
    async for data in content.iter_any():
        buffer += data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *blocks, buffer = buffer.split(b"\n\n")
        if len(buffer) > max_event_bytes:
            raise ValueError("an SSE event is larger than the limit")
        batch = [event for block in blocks if (event := _parse_event(block)) is not None]
        if batch:
            yield batch
    tail = _parse_event(buffer.rstrip(b"\n")) if buffer.strip() else None
    if tail is not None:
        yield [tail]


def openai_event(chunk: Json) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def anthropic_event(event: str, data: Json) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
