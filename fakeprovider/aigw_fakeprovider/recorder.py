"""What the fake received and how each exchange ended, for tests to assert on.

Tests of the sidecar prove things by looking at the upstream side: that credentials were
injected and the app's were not forwarded, that the body was redacted or clamped, that a
retry happened, and that a client disconnect at the sidecar cancelled the upstream call. So
every model request is recorded as an :class:`Exchange` (method, path, query, headers, JSON
body) and updated as it proceeds (status sent, stream events written, whether the client went
away before the end). The record is bounded so the fake can also serve benchmarks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Exchange", "Recorder"]


@dataclass(slots=True)
class Exchange:
    """One model request and how it ended.

    ``disconnected`` is true when the client closed the connection before the answer was
    complete: the handler was cancelled, or a write found the connection gone. ``cut`` is true
    when the fake itself closed the connection on purpose (``cut_after_chunks``);
    ``stream_error`` when it ended a stream with an in-stream error event.
    """

    seq: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.time)
    status: int | None = None
    stream: bool = False
    chunks_sent: int = 0
    completed: bool = False
    disconnected: bool = False
    cut: bool = False
    stream_error: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at,
            "status": self.status,
            "stream": self.stream,
            "chunks_sent": self.chunks_sent,
            "completed": self.completed,
            "disconnected": self.disconnected,
            "cut": self.cut,
            "stream_error": self.stream_error,
        }


class Recorder:
    """A bounded, thread-safe log of exchanges (the newest ``limit`` are kept)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._exchanges: deque[Exchange] = deque(maxlen=limit)
        self._seq = 0

    def start(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
    ) -> Exchange:
        """Records a new request; the handler updates the returned exchange as it goes."""
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            key = name.lower()
            lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
        with self._lock:
            self._seq += 1
            exchange = Exchange(self._seq, method, path, dict(query), lowered, body)
            self._exchanges.append(exchange)
        return exchange

    @property
    def exchanges(self) -> list[Exchange]:
        """A snapshot of the recorded exchanges, oldest first."""
        with self._lock:
            return list(self._exchanges)

    @property
    def disconnected(self) -> list[Exchange]:
        """The exchanges whose client went away before the answer was complete."""
        return [e for e in self.exchanges if e.disconnected]

    @property
    def last(self) -> Exchange:
        with self._lock:
            if not self._exchanges:
                raise LookupError("no request recorded")
            return self._exchanges[-1]

    def clear(self) -> None:
        with self._lock:
            self._exchanges.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._exchanges)

    async def wait_for(
        self, predicate: Callable[[list[Exchange]], bool], within: float = 5.0
    ) -> list[Exchange]:
        """Waits until ``predicate(exchanges)`` holds; raises ``TimeoutError`` after ``within`` s.

        Works from any event loop, including one other than the fake's.
        """
        async with asyncio.timeout(within):
            while True:
                snapshot = self.exchanges
                if predicate(snapshot):
                    return snapshot
                await asyncio.sleep(0.005)

    def wait_for_sync(
        self, predicate: Callable[[list[Exchange]], bool], within: float = 5.0
    ) -> list[Exchange]:
        """Like :meth:`wait_for`, for synchronous tests."""
        deadline = time.monotonic() + within
        while True:
            snapshot = self.exchanges
            if predicate(snapshot):
                return snapshot
            if time.monotonic() >= deadline:
                raise TimeoutError("condition on recorded requests not met")
            time.sleep(0.005)
