"""A bare aiohttp passthrough: the floor for any Python proxy.

It does what every proxy in the benchmark must do and nothing more: accept the request, send
the same method, path, body and headers to the upstream over a keep-alive pool, and relay the
answer (streamed chunk by chunk when the upstream streams). Whatever the aigw sidecar costs on
top of this is the price of its governance, not of Python or aiohttp.

Run as a script: ``python bench/passthrough.py --port P --upstream http://127.0.0.1:U``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

__all__ = ["build_app", "main"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "host",
        "upgrade",
        "proxy-connection",
        "te",
        "trailer",
    }
)
_SESSION = web.AppKey("session", aiohttp.ClientSession)


def build_app(upstream: str) -> web.Application:
    """The passthrough application forwarding everything to ``upstream``."""
    app = web.Application()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60)
        async with aiohttp.ClientSession(upstream, connector=connector) as session:
            app[_SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", _forward)
    return app


async def _forward(request: web.Request) -> web.StreamResponse:
    session = request.app[_SESSION]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = await request.read()
    async with session.request(
        request.method, request.rel_url, data=body, headers=headers
    ) as upstream:
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        if not upstream.content_type.startswith("text/event-stream"):
            payload = await upstream.read()
            return web.Response(body=payload, status=upstream.status, headers=out_headers)
        response = web.StreamResponse(status=upstream.status, headers=out_headers)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    web.run_app(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handler_cancellation=True,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
