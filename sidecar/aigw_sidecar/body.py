"""Reading a request body: bounded in size and time, and every failure a typed 4xx.

One function, :func:`read_json_body`, so each front end reads bodies the same way:

* larger than ``max_body_bytes`` (by ``Content-Length`` or once read, compressed bodies
  counted decompressed): 413 ``body_too_large``;
* not complete within ``body_timeout_s`` of the handler starting: 408 ``body_timeout`` (a
  body that has already arrived whole, the common case, is read without arming a timer);
* unreadable (a ``Content-Encoding`` that does not match the bytes, broken chunked framing):
  400 ``invalid_body``. The broken payload is then marked finished and the connection
  closed after the answer, so aiohttp neither lingers on it nor logs a traceback;
* then parsed as a JSON object (:func:`~aigw_sidecar.validate.parse_json_object`: UTF-8,
  JSON, the depth limit).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .app_keys import HEAP, LARGE_BODY, SETTINGS
from .context import Json
from .errors import BodyTimeout, BodyTooLarge, BodyUnreadable
from .memory import LARGE_BODY_BYTES
from .validate import parse_json_object

__all__ = ["read_json_body"]


async def _read(request: web.BaseRequest, app: web.Application, limit: int) -> bytes:
    """The body, read here rather than with ``request.read()``: aiohttp would keep a copy on
    the request, which an idle keep-alive connection keeps reachable until its next request
    (a maximum-size body per idle connection)."""
    chunks: list[bytes] = []
    size = 0
    content = request.content
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        if size >= LARGE_BODY_BYTES and not request.get(LARGE_BODY, False):
            request[LARGE_BODY] = True  # the middleware trims the heap after it ends
            app[HEAP].enter()
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json_body(request: web.BaseRequest, app: web.Application) -> Json:
    """The request's body as a JSON object, or a typed 4xx."""
    settings = app[SETTINGS]
    limit = settings.max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"the request body is larger than {limit} bytes")
    try:
        if request.content.is_eof():  # all of it has arrived: nothing to wait for, no timer
            raw = await _read(request, app, limit)
        else:
            async with asyncio.timeout(settings.body_timeout_s):
                raw = await _read(request, app, limit)
    except TimeoutError:
        raise BodyTimeout(
            f"the request body did not arrive within {settings.body_timeout_s:g} s"
        ) from None
    except web.RequestPayloadError:
        request.content.feed_eof()  # nothing more to read: aiohttp must not linger on it
        raise BodyUnreadable(
            "the request body could not be read: its Content-Encoding or chunked framing"
            " does not match its bytes"
        ) from None
    return parse_json_object(raw)
