"""The admin port: probes, Prometheus metrics and the bundle status.

Served on its own port (not the loopback-only API port) so the kubelet and Prometheus can
reach it; it never needs auth and carries no credentials (issue: "/metrics suddenly behind
auth so scrapes broke"). ``/readyz`` is ready only once a valid bundle is loaded and until
shutdown starts. ``/aigw/healthz`` and ``/aigw/ready`` are the same probes under the paths
the operator's injected container uses.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .app_keys import BACKEND_STATES, DRAINING, GOVERN, METRICS, STORE
from .attempts import HEALTH
from .governance import budget_status

__all__ = ["add_admin_routes"]


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(value), content_type="application/json")


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if request.app[DRAINING].active:
        return _json({"ready": False, "reason": "shutting down"}, 503)
    if request.app[STORE].current is None:
        return _json({"ready": False, "reason": "no valid bundle loaded"}, 503)
    return _json({"ready": True})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _status(request: web.Request) -> web.Response:
    status = request.app[STORE].status()
    config = request.app[STORE].current
    if config is not None:
        govern = request.app[GOVERN]
        status["governance"] = await budget_status(govern.governor, govern.view(config))
    status["backends"] = _backend_health(request)
    status["draining"] = request.app[DRAINING].active
    status["now"] = time.time()
    return _json(status)


def _backend_health(request: web.Request) -> list[dict[str, object]]:
    """Circuit breakers and back-offs of every (route, backend) that has been called."""
    now = asyncio.get_running_loop().time()
    rows: list[dict[str, object]] = []
    for (route, backend), state in request.app[BACKEND_STATES].items():
        health = state.get(HEALTH)
        if health is not None:
            rows.append({"route": route, "backend": backend, **health.status(now)})
    return rows


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/aigw/healthz", _healthz)  # the paths the injected probes use
    app.router.add_get("/aigw/ready", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/aigw/status", _status)
