"""The sidecar's HTTP listeners: aiohttp's protocol with the sidecar's limits and error pages.

Why not ``web.TCPSite``: a site builds aiohttp's stock protocol, whose answer to a request
its parser refuses (bare CR or LF, NUL, an oversized or a malformed header, a Content-Encoding
it cannot decode) is a plain-text 400 that names the software (``Server: Python/3.11
aiohttp/3.x``) and echoes the offending bytes, logged as an ERROR with a traceback per
request: a hostile caller could fill the log. :class:`Protocol` answers those with the
sidecar's own JSON error (``invalid_request``/``malformed_http``, ``Server: aigw``, nothing
of the request echoed, the connection closed) and logs them at DEBUG; an exception that
escaped the application (a bug: ``middleware.serve`` catches everything) becomes a bare
JSON 500, logged with its traceback.

:func:`listen` binds one address with that protocol, for an :class:`aiohttp.web.AppRunner`
that was set up without sites; the runner's connection manager still tracks every
connection, so its shutdown works as usual. Connection limits and timeouts are
:class:`ConnectionLimits`:

* ``idle_timeout_s``: a connection with no request in progress is closed this long after it
  opened or its previous response ended. That bounds a silent connection, an idle keep-alive
  one, and one still trickling its request line and headers (aiohttp's keep-alive timer
  keeps running until a request's headers are complete);
* header sizes and counts: aiohttp's parser limits.

Bounds of the body and of writes to the caller are applied per request (``body_timeout_s``,
``send_timeout_s`` in :class:`~aigw_sidecar.settings.SidecarSettings`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from .errors import InvalidRequest, SidecarError, openai_error_body

__all__ = ["ConnectionLimits", "Protocol", "bound_port", "listen"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits of one listener."""

    idle_timeout_s: float
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 100


class Protocol(web.RequestHandler):
    """aiohttp's HTTP/1.1 protocol, answering parser-level errors the sidecar's way."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # part of a response is out: only closing helps
            raise ConnectionError("cannot answer an error after a response started")
        error: SidecarError
        if 400 <= status < 500:
            _log.debug("refused a malformed request (%s): %s", status, type(exc).__name__)
            error = InvalidRequest(
                "the request is not valid HTTP/1.1 (request line, headers, framing or"
                " Content-Encoding)",
                code="malformed_http",
            )
        else:
            _log.error("unexpected error outside the application", exc_info=exc)
            status = 500
            error = SidecarError("internal error in the gateway", code="internal_error")
        response = web.Response(
            status=status, body=openai_error_body(error, ""), content_type="application/json"
        )
        response.headers["Server"] = "aigw"
        response.force_close()
        return response


async def listen(
    runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits
) -> asyncio.Server:
    """Serve ``runner``'s application on ``host:port`` (0: a free port) with :class:`Protocol`."""
    manager = runner.server
    assert manager is not None, "the runner must be set up first"
    loop = asyncio.get_running_loop()

    def protocol() -> Protocol:
        return Protocol(
            manager,
            loop=loop,
            keepalive_timeout=limits.idle_timeout_s,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
            access_log=None,  # type: ignore[arg-type]  # None turns access logging off
        )

    return await loop.create_server(protocol, host, port, reuse_address=True, backlog=128)


def bound_port(server: asyncio.Server) -> int:
    """The port ``server`` listens on (the one chosen for port 0)."""
    port: int = server.sockets[0].getsockname()[1]
    return port
