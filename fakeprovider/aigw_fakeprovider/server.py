"""Running the fake: in the caller's event loop, in a thread of its own, or as a process.

Async tests use :class:`FakeProvider` (``async with FakeProvider("openai") as fake:``), which
listens on a free loopback port and exposes the base URLs the SDKs want, the recorder and the
fault queue. Synchronous tests (the SDKs' blocking clients) use :class:`FakeProviderThread`.
The ``aigw fake-provider`` subcommand and the benchmarks use :func:`serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .app import FakeProviderSettings, Flavor, build_app
from .faults import Fault, FaultQueue
from .recorder import Recorder
from .vectors import Vectors

__all__ = ["FakeProvider", "FakeProviderThread", "serve"]


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class FakeProvider:
    """A fake provider served from the current event loop on a loopback port."""

    def __init__(
        self,
        flavor: Flavor = "openai",
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = (),
        settings: FakeProviderSettings | None = None,
    ) -> None:
        self.settings = settings or FakeProviderSettings(flavor, api_key, models)
        self.recorder = Recorder(self.settings.record_limit)
        self.faults = FaultQueue()
        self.vectors = Vectors()
        """Embedding vectors the test chooses (:mod:`.vectors`)."""
        self.app = build_app(self.settings, self.recorder, self.faults, self.vectors)
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Starts listening (port 0: a free one) and returns :attr:`base_url`."""
        sock = _listen(host, port)
        self._host, self._port = host, sock.getsockname()[1]
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``: the Anthropic SDK's and Azure's ``base_url``/endpoint."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """``http://host:port/v1``: the OpenAI SDK's ``base_url``."""
        return f"{self.base_url}/v1"

    def queue_fault(self, fault: Fault | None = None, count: int = 1, **fields: Any) -> int:
        """Queues a fault (or one built from ``fields``) for the next ``count`` requests."""
        return self.faults.push(fault if fault is not None else Fault(**fields), count)

    def reset(self) -> None:
        self.recorder.clear()
        self.faults.clear()


class FakeProviderThread:
    """A :class:`FakeProvider` on an event loop in a background thread, for blocking clients.

    ``with FakeProviderThread("anthropic") as fake: ...``; ``fake.recorder`` and
    ``fake.queue_fault`` are safe to use from the test's thread.
    """

    def __init__(self, flavor: Flavor = "openai", **kwargs: Any) -> None:
        self.provider = FakeProvider(flavor, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.provider.start(), self._loop)
        return future.result(timeout=10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.provider.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FakeProvider:
        self.start()
        return self.provider

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve(
    settings: FakeProviderSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serves until cancelled; ``ready`` gets the base URL once the port is listening."""
    provider = FakeProvider(settings=settings)
    base_url = await provider.start(host, port)
    if ready is not None:
        ready(base_url)
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await provider.stop()
