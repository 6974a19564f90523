"""The admin port: probes, Prometheus metrics and the bundle status.

Served on its own port (not the loopback-only API port) so the kubelet and Prometheus can
reach it; it never needs auth and carries no credentials (issue: "/metrics suddenly behind
auth so scrapes broke"). ``/aigw/status`` names tenants, counter keys, usage and the bundle
path, so it answers only peers on the pod's loopback (``kubectl port-forward`` arrives there)
unless ``status_from_network`` is set; any other peer gets a 404. ``/readyz`` is ready only
once a valid bundle is loaded and until shutdown starts. ``/aigw/healthz`` and
``/aigw/ready`` are the same probes under the paths the operator's injected container uses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .app_keys import AUDIT, BACKEND_STATES, DRAINING, GOVERN, METRICS, SETTINGS, STORE
from .attempts import HEALTH
from .governance import budget_status

__all__ = ["add_admin_routes", "is_loopback"]


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


def is_loopback(peer: str | None) -> bool:
    """Whether a peer address is the pod's own loopback (IPv4, IPv6, IPv4-mapped IPv6)."""
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def _status(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].status_from_network and not is_loopback(request.remote):
        # Tenants, counter keys, usage and paths stay inside the pod unless configured.
        return _json({"error": "not found"}, 404)
    status = request.app[STORE].status()
    config = request.app[STORE].current
    if config is not None:
        govern = request.app[GOVERN]
        status["governance"] = await budget_status(govern.governor, govern.view(config))
    status["backends"] = _backend_health(request)
    audit = request.app.get(AUDIT)
    status["audit"] = audit.status() if audit is not None else None
    status["draining"] = request.app[DRAINING].active
    # Where the key of redaction mode hash came from (never the key): "file" on every pod of
    # a fleet means their hash tokens join; "per-process" means they match in this pod only.
    key = request.app[SETTINGS].redaction_key
    status["redaction"] = {"hashKey": "per-process" if key is None else "file"}
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
