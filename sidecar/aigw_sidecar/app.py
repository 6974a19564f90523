"""Building the two aiohttp applications of a sidecar: the API and the admin port.

:func:`create_apps` wires one :class:`~aigw_sidecar.bundle_store.BundleStore`, one
:class:`~aigw_sidecar.metrics.Metrics` and one RNG into both. The API app's ``cleanup_ctx``
owns the lifecycle: first the pooled upstream :class:`aiohttp.ClientSession` and the pipeline
built on it, then the bundle (initial load, prepared by the pipeline's steps, then the reload
watcher task). Tests start the
apps in-process with :class:`aiohttp.web.AppRunner`; ``aigw sidecar`` with
:mod:`aigw_sidecar.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
from aiohttp import web

from . import handlers
from .admin import add_admin_routes
from .bundle_store import BundleStore
from .drain import InFlight
from .keys import (
    DRAINING,
    GOVERN,
    IN_FLIGHT,
    METRICS,
    PIPELINE,
    REQUEST_IDS,
    RNG,
    SETTINGS,
    STORE,
    Draining,
    RequestIds,
)
from .metrics import Metrics
from .middleware import error_middleware
from .pipeline import Pipeline, Step
from .rollout import add_rollout_route
from .settings import SidecarSettings
from .steps import default_steps
from .steps.govern import build_governor, with_governance

__all__ = ["StepsFactory", "create_apps"]

StepsFactory = Callable[[aiohttp.ClientSession, random.Random, Metrics], Sequence[Step]]


async def _bundle_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    store.preparer = app[PIPELINE].prepare
    if store.current is None:
        await store.reload()
    watcher = asyncio.create_task(store.watch(app[SETTINGS].reload_interval_s))
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher


def _upstream_ctx(steps: StepsFactory) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        connector = aiohttp.TCPConnector(
            limit=settings.upstream_pool_size, keepalive_timeout=30, ttl_dns_cache=60
        )
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,
            skip_auto_headers=("User-Agent",),
        )
        app[PIPELINE] = Pipeline(
            with_governance(steps(session, app[RNG], app[METRICS]), app[GOVERN])
        )
        yield
        await session.close()
        await app[GOVERN].drain()

    return ctx


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "aigw"  # not aiohttp's name and version


def create_apps(
    settings: SidecarSettings,
    *,
    rng: random.Random | None = None,
    steps: StepsFactory = default_steps,
) -> tuple[web.Application, web.Application]:
    """The API application and the admin application, sharing one store and registry."""
    metrics = Metrics()
    store = BundleStore(settings.bundle_path, settings.secrets_dir, metrics)
    draining = Draining()
    rng = rng if rng is not None else random.Random(settings.seed)  # noqa: S311 - not crypto

    api = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    admin = web.Application()
    govern = build_governor(settings, metrics)
    for app in (api, admin):
        app.on_response_prepare.append(_server_header)
        app[GOVERN] = govern
        app[SETTINGS] = settings
        app[STORE] = store
        app[METRICS] = metrics
        app[DRAINING] = draining
    api[RNG] = rng
    api[REQUEST_IDS] = RequestIds()
    api[IN_FLIGHT] = InFlight()
    api.cleanup_ctx.append(_upstream_ctx(steps))  # the pipeline first: loads prepare it
    api.cleanup_ctx.append(_bundle_ctx)
    api.router.add_post("/v1/chat/completions", handlers.chat_completions)
    api.router.add_post("/v1/embeddings", handlers.embeddings)
    api.router.add_get("/v1/models", handlers.list_models)
    api.router.add_post("/v1/messages", handlers.messages)
    add_admin_routes(admin)
    add_rollout_route(admin)
    return api, admin
