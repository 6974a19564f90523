"""The API port's dispatch: aiohttp's low-level server in front of five fixed endpoints.

The API serves five paths, so it needs none of ``web.Application``'s per-request machinery
(the router's resolution and match info, the middleware chain and its current-app wrapper,
the ``on_response_prepare`` signal). Measured on a bare passthrough (same handler, wrk
c=16, CPU per call from ``/proc``, three rounds alternating): the low-level server cost
about 10% less per call than the same proxy behind ``web.Application`` (issue 20).

The API's ``web.Application`` stays what it was for everything but dispatch: the typed keys
the endpoints read (passed to them explicitly), the ``cleanup_ctx`` lifecycle that
:class:`ApiRunner` starts and cleans up as :class:`aiohttp.web.AppRunner` does, and what the
tests reach through ``SidecarServer.api``. The admin port keeps ``web.Application``.

What routing did and still happens here, the same way: the path is matched exactly on
``rel_url.path_safe`` (an encoded ``%2F`` is not a ``/``), a GET endpoint also answers
HEAD, an unknown path is a typed 404 ``endpoint_not_found`` and a known path with another
method a typed 405 ``method_not_allowed``; ``Expect: 100-continue`` gets its interim
``100 Continue`` before the handler reads the body, and any other expectation is a typed
417. Every answer is served through :func:`~aigw_sidecar.middleware.serve` (request id,
metrics, audit of calls the pipeline never saw, errors as typed answers) and carries
``Server: aigw``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.web_protocol import RequestHandler

from . import handlers
from .app_keys import SETTINGS
from .errors import ExpectationFailed
from .middleware import ApiHandler, endpoint_not_found, method_not_allowed, serve

__all__ = ["ENDPOINTS", "ApiRunner", "api_handler"]

ENDPOINTS: Mapping[str, Mapping[str, ApiHandler]] = {
    "/v1/chat/completions": {"POST": handlers.chat_completions},
    "/v1/embeddings": {"POST": handlers.embeddings},
    "/v1/models": {"GET": handlers.list_models, "HEAD": handlers.list_models},
    "/v1/messages": {"POST": handlers.messages},
    "/v1/messages/count_tokens": {"POST": handlers.count_tokens},
}
"""Every endpoint of the API port, by exact path and method."""


async def _not_found(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
    raise endpoint_not_found()


async def _not_allowed(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
    raise method_not_allowed()


def _expecting(handler: ApiHandler) -> ApiHandler:
    """``handler`` behind the answer to an ``Expect`` header (as aiohttp's router gives)."""

    async def expecting(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
        expect = request.headers.get("Expect", "")
        if request.version == HttpVersion11:
            if expect.lower() != "100-continue":
                raise ExpectationFailed("the only expectation the gateway meets is 100-continue")
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer itself has not begun
            await request.writer.drain()
        return await handler(request, app)

    return expecting


def api_handler(
    app: web.Application, endpoints: Mapping[str, Mapping[str, ApiHandler]] = ENDPOINTS
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The low-level server's handler of the API application ``app``."""
    table = {path: dict(methods) for path, methods in endpoints.items()}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        methods = table.get(request.rel_url.path_safe)
        handler = _not_found if methods is None else methods.get(request.method, _not_allowed)
        if request.headers.get("Expect"):
            handler = _expecting(handler)
        return await serve(request, app, handler)

    return handle


class ApiRunner(web.AppRunner):
    """Runs the API application as :class:`aiohttp.web.AppRunner` does (startup, its
    ``cleanup_ctx``, cleanup), but serves it with :func:`api_handler` through aiohttp's
    low-level :class:`aiohttp.web.Server` (``_make_server`` is the runner's documented
    hook: :class:`aiohttp.web.ServerRunner` overrides it the same way)."""

    async def _make_server(self) -> web.Server:
        app = self.app
        app.on_startup.freeze()
        await app.startup()
        app.freeze()
        max_size = app[SETTINGS].max_body_bytes
        loop = asyncio.get_running_loop()

        def request_factory(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_size
            )

        return web.Server(api_handler(app), request_factory=request_factory, **self._kwargs)
