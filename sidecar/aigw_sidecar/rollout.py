"""``GET /aigw/rollout`` on the admin port: which bundle this sidecar serves, and what it refused.

The operator's leader polls this endpoint on every injected pod (see ``docs/operator.md``,
"Rollout status") to answer "do the 40 pods of this namespace serve the revision just
published, refuse it, or are they stuck?". It is served on the admin port, which the pod
network reaches anyway (probes, Prometheus), and says no more than the metrics already do:
the pod's identity, the revision and content hash served and when they were loaded, and the
last refused bundle with the reason. No tenants, counters, routes or paths (those stay in
``/aigw/status``), never a credential.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from .app_keys import SETTINGS, STORE
from .bundle_store import BundleStore
from .settings import SidecarSettings

__all__ = ["MAX_REASON_CHARS", "add_rollout_route", "rollout_report"]

MAX_REASON_CHARS = 1024
"""A refusal's reason is cut to this length (it ends up in a status and an Event)."""


def rollout_report(store: BundleStore, settings: SidecarSettings) -> dict[str, object]:
    """The report: ``pod``, ``serving``, ``lastRefused``, ``now`` (Unix times)."""
    config = store.current
    serving = None
    if config is not None:
        serving = {
            "revision": config.revision,
            "contentHash": config.content_hash,
            "formatVersion": config.bundle.format_version,
            "loadedAt": store.loaded_at,
        }
    failure = store.last_error
    refused = None
    if failure is not None:
        refused = {
            "revision": failure.revision,
            "contentHash": failure.content_hash,
            "formatVersion": failure.format_version,
            "reason": failure.message[:MAX_REASON_CHARS],
            "at": failure.at,
        }
    return {
        "pod": {"namespace": settings.pod_namespace, "name": settings.pod_name},
        "serving": serving,
        "lastRefused": refused,
        "now": time.time(),
    }


async def _rollout(request: web.Request) -> web.Response:
    body = orjson.dumps(rollout_report(request.app[STORE], request.app[SETTINGS]))
    return web.Response(body=body, content_type="application/json")


def add_rollout_route(app: web.Application) -> None:
    """Serve ``GET /aigw/rollout`` on ``app`` (the admin application)."""
    app.router.add_get("/aigw/rollout", _rollout)
