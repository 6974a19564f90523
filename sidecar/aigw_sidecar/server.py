"""Running a sidecar: both ports, uvloop, signals, graceful drain.

:class:`SidecarServer` starts the API app on ``host:port`` (loopback) and the admin app on
``admin_host:admin_port``; port 0 picks a free port (tests). The API runner is configured with
the header limits, ``handler_cancellation`` (a caller that disconnects cancels its handler
and with it the upstream call), and ``drain_timeout_s`` as aiohttp's shutdown timeout.

:func:`run` is what ``aigw sidecar`` calls: on SIGTERM or SIGINT it marks the sidecar as
draining (``/readyz`` turns 503), stops accepting connections, lets requests in flight
finish for up to ``drain_timeout_s`` (then cancels them), closes upstream connections and
returns 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from .app import StepsFactory, create_apps
from .app_keys import DRAINING, STORE
from .settings import SidecarSettings
from .steps import default_steps

__all__ = ["SidecarServer", "run"]

_log = logging.getLogger(__name__)


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
        self._api_runner = web.AppRunner(
            self.api,
            handler_cancellation=True,
            shutdown_timeout=settings.drain_timeout_s,
            max_line_size=settings.max_header_bytes,
            max_field_size=settings.max_header_bytes,
            max_headers=settings.max_headers,
            access_log=None,
        )
        self._admin_runner = web.AppRunner(self.admin, access_log=None, shutdown_timeout=1.0)
        self.api_port = 0
        self.admin_port = 0

    async def start(self) -> None:
        await self._api_runner.setup()
        await self._admin_runner.setup()
        s = self.settings
        await web.TCPSite(self._api_runner, s.host, s.port).start()
        await web.TCPSite(self._admin_runner, s.admin_host, s.admin_port).start()
        self.api_port = self._api_runner.addresses[0][1]
        self.admin_port = self._admin_runner.addresses[0][1]

    async def stop(self) -> None:
        """Drain: stop accepting, finish requests in flight (bounded), close everything."""
        self.api[DRAINING].active = True
        await self._api_runner.cleanup()
        await self._admin_runner.cleanup()

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


async def _serve(settings: SidecarSettings) -> int:
    server = SidecarServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
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
