"""The HTTP mechanics shared by both wire formats: one model call, its answer, its faults.

A :class:`Call` is what a flavor's handler works with: the parsed JSON body, the recorded
exchange, the fault in force and the response headers every answer carries. It sends a JSON
answer or a stream of server-sent events, applying the stream faults (latency between events,
a cut after N events), and it notices when the client goes away: aiohttp cancels the handler
(the fake runs with ``handler_cancellation``) or a write fails, and the exchange is marked
``disconnected``; that is what tests assert to prove a disconnect cancels the upstream call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .faults import Fault
from .recorder import Exchange

__all__ = ["CALL_KEY", "Call", "anthropic_sse", "dumps", "openai_sse"]


def dumps(payload: Any) -> bytes:
    """Compact JSON (orjson: the fake is also the benchmark upstream, so it must be cheap)."""
    return orjson.dumps(payload)


def openai_sse(payload: Any) -> bytes:
    """One OpenAI stream event: ``data: {...}`` and a blank line."""
    return b"data: " + dumps(payload) + b"\n\n"


def anthropic_sse(event: str, payload: Any) -> bytes:
    """One Anthropic stream event: ``event: <name>``, ``data: {...}`` and a blank line."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


@dataclass(slots=True)
class Call:
    """One model request being answered."""

    request: web.Request
    exchange: Exchange
    fault: Fault
    body: Any
    headers: dict[str, str]

    @property
    def seq(self) -> int:
        return self.exchange.seq

    def json(
        self, payload: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        """Answers ``payload`` as JSON, or drops the connection if the fault says cut."""
        if self.fault.cut_after_chunks is not None:
            return self.cut()
        self.exchange.status = status
        self.exchange.completed = True
        all_headers = self.headers if headers is None else {**self.headers, **headers}
        return web.Response(
            body=dumps(payload), status=status, headers=all_headers, content_type="application/json"
        )

    async def stream(self, events: Iterable[bytes], error_event: bytes = b"") -> web.StreamResponse:
        """Sends server-sent events one by one, applying the fault's pacing, cut and error.

        ``error_event`` is the flavor's in-stream error, sent for ``error_after_chunks``.
        """
        fault = self.fault
        response = web.StreamResponse(status=200, headers=self.headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        self.exchange.stream = True
        self.exchange.status = 200
        await response.prepare(self.request)
        delay = fault.chunk_latency_ms / 1000
        for index, event in enumerate(events):
            if fault.cut_after_chunks is not None and index >= fault.cut_after_chunks:
                return self.cut(response)
            if fault.error_after_chunks is not None and index >= fault.error_after_chunks:
                await response.write(error_event)
                self.exchange.chunks_sent += 1
                self.exchange.stream_error = True
                break
            if delay and index:
                await asyncio.sleep(delay)
            await response.write(event)
            self.exchange.chunks_sent += 1
        await response.write_eof()
        self.exchange.completed = True
        return response

    def cut(self, response: web.StreamResponse | None = None) -> web.StreamResponse:
        """Closes the connection now: the client sees a truncated (or missing) answer."""
        self.exchange.cut = True
        transport = self.request.transport
        if transport is not None:
            transport.close()
        return response if response is not None else web.Response(status=200)


CALL_KEY = web.RequestKey("aigw_fakeprovider_call", Call)
"""Where the provider middleware leaves the :class:`Call` on the aiohttp request."""
