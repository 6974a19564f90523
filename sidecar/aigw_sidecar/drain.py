"""Graceful drain: which requests are in flight, waiting for them, and cutting the rest.

aiohttp's own shutdown waits its timeout once for a handler to finish and once more after
cancelling it, so a drain of N seconds took up to 2N (past the pod's grace period). The
sidecar drains itself instead, in one budget of ``drain_timeout_s`` (see
:meth:`aigw_sidecar.server.SidecarServer.stop`):

1. ``/readyz`` turns 503, the listening sockets close, idle keep-alive connections close;
2. requests in flight get until ``drain_timeout_s - cut_s`` to finish;
3. what is still running is cancelled: a request whose answer has not started gets a 503
   ``upstream_unavailable``/``shutting_down`` with ``Retry-After`` (``middleware.serve``), a
   stream ends with that error as an event in the caller's format, and ``cut_s`` is what
   that may take;
4. aiohttp's shutdown then finds nothing left to wait for.

``middleware.serve`` registers every API request's task in :class:`InFlight`.
"""

from __future__ import annotations

import asyncio

from .errors import UpstreamUnavailable

__all__ = ["SHUTTING_DOWN", "InFlight", "cut_seconds", "shutting_down"]

SHUTTING_DOWN = "shutting_down"
"""The ``code`` of the error a request cut by the drain ends with."""


def shutting_down() -> UpstreamUnavailable:
    """The error of a request cut by the drain (a 503, or a stream's last event)."""
    return UpstreamUnavailable(
        "the gateway is shutting down; retry the request", code=SHUTTING_DOWN, retry_after=1
    )


def cut_seconds(drain_timeout_s: float) -> float:
    """The part of the drain budget kept for cutting what did not finish (at most 1 s)."""
    return min(1.0, drain_timeout_s / 4)


class InFlight:
    """The tasks of the API requests being handled."""

    __slots__ = ("_cut", "_idle", "_tasks")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._cut: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)
        self._idle.clear()

    def leave(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        self._cut.discard(task)
        if not self._tasks:
            self._idle.set()

    def was_cut(self, task: asyncio.Task[object] | None) -> bool:
        """Whether ``task`` was cancelled by the drain (not by its caller going away)."""
        return task in self._cut

    async def wait_idle(self, deadline: float) -> bool:
        """Wait until nothing is in flight, at most until loop time ``deadline``; True if so."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._idle.wait()
        except TimeoutError:
            pass
        return not self._tasks

    async def cut(self, deadline: float) -> int:
        """Cancel every request still in flight and let them end until loop time
        ``deadline`` (a stream writes its closing error event then); how many were cut."""
        tasks = list(self._tasks)
        self._cut.update(tasks)
        for task in tasks:
            task.cancel(SHUTTING_DOWN)
        if tasks:
            left = deadline - asyncio.get_running_loop().time()
            await asyncio.wait(tasks, timeout=max(0.0, left))
        return len(tasks)
