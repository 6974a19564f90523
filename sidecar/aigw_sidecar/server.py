"""Running a sidecar: both ports, uvloop, signals, graceful drain.

:class:`SidecarServer` starts the API app on ``host:port`` (loopback) and the admin app on
``admin_host:admin_port``; port 0 picks a free port (tests). Both listen through
:func:`~aigw_sidecar.listener.listen` (the sidecar's own answers to malformed HTTP, the idle
timeout, the header limits); the API runner has ``handler_cancellation`` (a caller that
disconnects cancels its handler and with it the upstream call).

:meth:`SidecarServer.stop` drains within ``drain_timeout_s`` in all (:mod:`.drain`): not
ready, no new connections, requests in flight finish or are cut, then everything closes.
:func:`run` is what ``aigw sidecar`` calls: it serves until SIGTERM or SIGINT, drains and
returns 0.

The cyclic garbage collector (:func:`settle_gc`, once the apps are built and listening):
everything built at start (modules, the compiled bundle, pydantic and aiohttp machinery:
~60k objects) is moved out of the collector's reach with :func:`gc.freeze`, and the first
generation's threshold is raised from 700 to :data:`GC_THRESHOLD`. Measured in the full
pipeline row of ``make bench`` (every step on, c=16, thread CPU time in the collector's
callbacks): the collector took 4.9% of the sidecar's CPU with the defaults (a young
collection every ~15 calls at ~0.6 ms each, a full one scanning the whole start-up heap at
~45 ms), 0.4% with these settings. Nothing else changes: every cycle is still collected,
later (at most a few thousand young objects, well under a megabyte, wait longer). Then the
C heap start-up freed is trimmed (:func:`_return_freed_heap`).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import random
import signal
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from .app import StepsFactory, create_apps
from .app_keys import DRAINING, IN_FLIGHT, STORE
from .dispatch import ApiRunner
from .drain import cut_seconds
from .listener import ConnectionLimits, bound_port, listen
from .settings import SidecarSettings
from .steps import default_steps

__all__ = ["GC_THRESHOLD", "SidecarServer", "run", "settle_gc"]

_log = logging.getLogger(__name__)
GC_THRESHOLD = (7000, 10, 10)
"""The collector's thresholds in a serving sidecar (CPython's defaults: 700, 10, 10)."""
_ADMIN_IDLE_S = 10.0
"""Idle timeout of admin connections (probes and scrapes open one per call or keep it busy)."""


class SidecarServer:
    """Both applications of one sidecar, started and stopped together."""

    def __init__(
        self,
        settings: SidecarSettings,
        *,
        rng: random.Random | None = None,
        steps: StepsFactory = default_steps,
    ) -> None:
        self.settings = settings
        self.api, self.admin = create_apps(settings, rng=rng, steps=steps)
        self.store = self.api[STORE]
        # The drain is the sidecar's own (stop()); aiohttp's shutdown only closes what is left.
        self._api_runner = ApiRunner(
            self.api, handler_cancellation=True, shutdown_timeout=0.1, access_log=None
        )
        self._admin_runner = web.AppRunner(self.admin, access_log=None, shutdown_timeout=0.1)
        self._listeners: list[asyncio.Server] = []
        self.api_port = 0
        self.admin_port = 0

    async def start(self) -> None:
        await self._api_runner.setup()
        await self._admin_runner.setup()
        s = self.settings
        api = await listen(
            self._api_runner,
            s.host,
            s.port,
            ConnectionLimits(
                idle_timeout_s=s.idle_timeout_s,
                max_line_size=s.max_header_bytes,
                max_field_size=s.max_header_bytes,
                max_headers=s.max_headers,
            ),
        )
        admin = await listen(
            self._admin_runner, s.admin_host, s.admin_port, ConnectionLimits(_ADMIN_IDLE_S)
        )
        self._listeners = [api, admin]
        self.api_port = bound_port(api)
        self.admin_port = bound_port(admin)

    async def stop(self) -> None:
        """Drain within ``drain_timeout_s``: stop accepting, let requests in flight finish,
        cut those that do not (streams end with an error event), close everything."""
        if self.api[DRAINING].active:
            return  # stopped already (or stopping)
        loop = asyncio.get_running_loop()
        budget = self.settings.drain_timeout_s
        deadline = loop.time() + budget
        self.api[DRAINING].active = True
        for listener in self._listeners:
            listener.close()
        manager = self._api_runner.server
        if manager is not None:
            manager.pre_shutdown()  # idle keep-alive connections close now, busy ones after
        in_flight = self.api[IN_FLIGHT]
        cut = cut_seconds(budget)
        if not await in_flight.wait_idle(deadline - cut):
            cancelled = await in_flight.cut(deadline)
            _log.warning("drain: cut %d request(s) still in flight after %ss", cancelled, budget)
        await self._api_runner.cleanup()
        await self._admin_runner.cleanup()
        for listener in self._listeners:
            await listener.wait_closed()

    async def __aenter__(self) -> SidecarServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def settle_gc() -> None:
    """Freeze what start-up built and raise the young threshold (the module docstring);
    called once a sidecar serves, never by the tests' in-process gateways."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    _return_freed_heap()


def _return_freed_heap() -> None:
    """Give the C heap that start-up freed back to the kernel (``malloc_trim``; glibc only).

    Reading the bundle and building the models frees megabytes that glibc keeps mapped for
    reuse: trimming once after start-up took 1.5 MB off an idle sidecar's RSS (61.2 to
    59.7 MB, the minimal bench policy). Other C libraries (musl) have no ``malloc_trim``."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


async def _serve(settings: SidecarSettings) -> int:
    server = SidecarServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    settle_gc()
    _log.info(
        "aigw sidecar listening on %s:%d (admin %s:%d), bundle %s",
        settings.host,
        server.api_port,
        settings.admin_host,
        server.admin_port,
        settings.bundle_path,
    )
    await stop.wait()
    _log.info("shutting down: draining requests in flight (up to %ss)", settings.drain_timeout_s)
    await server.stop()
    _log.info("stopped")
    return 0


def run(settings: SidecarSettings) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_serve(settings))
