"""Server-sent events: reading an upstream stream, writing the caller's.

The reader yields ``(event, data)`` per event (multi-line ``data`` joined by newlines,
comments and ``id``/``retry`` fields ignored). The writers render one event as bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import StreamReader

from .context import Json

__all__ = ["DONE", "anthropic_event", "iter_sse", "openai_event"]

DONE = b"data: [DONE]\n\n"


async def iter_sse(content: StreamReader) -> AsyncIterator[tuple[str, bytes]]:
    """The events of an SSE body."""
    event = ""
    data: list[bytes] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield event, b"\n".join(data)
            event = ""
            data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    if data:
        yield event, b"\n".join(data)


def openai_event(chunk: Json) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def anthropic_event(event: str, data: Json) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
