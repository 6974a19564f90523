"""Building the two aiohttp applications of a sidecar: the API and the admin port.

:func:`create_apps` wires one :class:`~aigw_sidecar.bundle_store.BundleStore`, one
:class:`~aigw_sidecar.metrics.Metrics` and one RNG into both. The API app's ``cleanup_ctx``
owns the lifecycle: first the pooled upstream :class:`aiohttp.ClientSession` and the pipeline
built on it (the plug-in factory's steps and attempt middlewares, governance always added,
the HTTP call as the attempt chain's terminal), then the bundle (initial load, prepared by
the pipeline's steps, then the reload watcher task). Tests start the
apps through :class:`~aigw_sidecar.server.SidecarServer`, as ``aigw sidecar`` does
(:mod:`aigw_sidecar.server`): the API application is served by
:class:`~aigw_sidecar.dispatch.ApiRunner` (aiohttp's low-level server, no router or
middleware), the admin application by :class:`aiohttp.web.AppRunner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .admin import add_admin_routes
from .app_keys import (
    AUDIT,
    BACKEND_STATES,
    DRAINING,
    GENAI,
    GOVERN,
    HEAP,
    IN_FLIGHT,
    METRICS,
    PIPELINE,
    REQUEST_IDS,
    RNG,
    SERVER,
    SETTINGS,
    STORE,
    TRACING,
    Draining,
    RequestIds,
)
from .attempts import AttemptChain, AttemptMiddleware, BackendStates, HttpCall
from .audit import open_audit
from .bundle_store import BundleStore
from .drain import InFlight
from .governance import RedisStore
from .idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from .memory import HeapTrimmer
from .metrics import Metrics
from .pipeline import Pipeline, Step
from .rollout import add_rollout_route
from .settings import SidecarSettings
from .steps import (
    CacheAnswer,
    CacheLookup,
    Caching,
    Idempotency,
    Plugin,
    Residency,
    Services,
    audit_steps,
    cache_steps,
    default_steps,
    telemetry_steps,
)
from .steps.govern import Governance, build_governance
from .steps.inspect import Inspect, InspectAnswer, Inspection
from .telemetry import GenAiMetrics

if TYPE_CHECKING:
    from .telemetry.export import Tracing

__all__ = ["StepsFactory", "build_pipeline", "create_apps"]

StepsFactory = Callable[[Services], Sequence[Plugin]]
_TRACING_FLUSH_S = 1.0


def _idempotency_store(governance: Governance) -> IdempotencyStore:
    """Redis when the sidecar shares state (the same connection), else this pod's memory."""
    store = governance.governor.store
    if isinstance(store, RedisStore):
        return RedisIdempotencyStore(store.client, store.failures)
    return MemoryIdempotencyStore()


def build_pipeline(
    plugins: Sequence[Plugin],
    governance: Governance,
    services: Services,
    call: HttpCall,
    states: BackendStates | None = None,
    *,
    caching: Caching | None = None,
) -> Pipeline:
    """The pipeline of ``plugins`` (steps and attempt middlewares, any order) with governance,
    inspection and the response cache added when the factory did not include them (a plug-in
    factory cannot leave a policy's redaction or caching out by accident; it may bring its
    own ``Inspection`` or cache steps), and so are the audit steps when the sidecar has an
    audit log."""
    steps: list[Step] = [p for p in plugins if isinstance(p, Step)]
    middlewares = [p for p in plugins if isinstance(p, AttemptMiddleware)]
    if not any(s.name == "audit" for s in steps):
        steps += [p for p in audit_steps(services) if isinstance(p, Step)]
    names = {s.name for s in steps} | {m.name for m in middlewares}
    for plugin in telemetry_steps(services):
        if plugin.name in names:
            continue
        if isinstance(plugin, Step):
            steps.append(plugin)
        else:
            middlewares.append(plugin)
    for step in governance.steps:
        if step not in steps:
            steps.append(step)
    names = {s.name for s in steps}
    if Inspect.name not in names and InspectAnswer.name not in names:
        steps.extend(Inspection(services.settings, services.metrics).steps)
    if Residency.name not in names:
        steps.append(Residency(governance.governor.settings.default_data_classification))
    if Idempotency.name not in names:
        steps.append(Idempotency(_idempotency_store(governance), services.metrics))
    caching = caching or Caching(services.settings, services.metrics, services.state_client)
    if CacheLookup.name not in names and CacheAnswer.name not in names:
        steps.extend(cache_steps(caching))
    chain = AttemptChain(middlewares, call, rng=services.rng, states=states)
    pipeline = Pipeline(steps, chain)
    caching.bind(pipeline)
    return pipeline


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
        governance = app[GOVERN]
        counter = governance.governor.counter
        store = governance.governor.store
        client = store.client if isinstance(store, RedisStore) else None
        services = Services(
            settings,
            app[METRICS],
            app[RNG],
            counter,
            app.get(AUDIT),
            app[GENAI],
            app.get(TRACING),
            client,
        )
        call = HttpCall(session, app[METRICS], counter)
        caching = Caching(settings, app[METRICS], client)
        app[PIPELINE] = build_pipeline(
            steps(services), governance, services, call, app[BACKEND_STATES], caching=caching
        )
        yield
        await session.close()
        await caching.drain()
        await app[GOVERN].drain()

    return ctx


async def _audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """The audit log outlives everything else: closed (queue written, chain ended, file
    fsynced) only after the drain ended every call and the pipeline is gone."""
    log = app.get(AUDIT)
    if log is not None:
        log.start()
    yield
    if log is not None:
        await log.close()


async def _tracing_ctx(app: web.Application) -> AsyncIterator[None]:
    """The tracer outlives the pipeline: after the drain, what is queued is exported within
    a second (in a thread: the exporter blocks), the rest counted as dropped."""
    yield
    tracing = app.get(TRACING)
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown, _TRACING_FLUSH_S)


def _tracing(settings: SidecarSettings, metrics: Metrics) -> Tracing | None:
    config = settings.telemetry.tracing
    if config is None:
        return None
    from .telemetry.export import Tracing  # noqa: PLC0415 - the SDK only when tracing is on

    resource = {"k8s.container.name": "aigw-sidecar"}
    if settings.pod_namespace:
        resource["k8s.namespace.name"] = settings.pod_namespace
    if settings.pod_name:
        resource["k8s.pod.name"] = settings.pod_name
    if settings.pod_name or settings.pod_namespace:
        resource["k8s.service_account.name"] = settings.service_account
    return Tracing(config, metrics.registry, resource=resource)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER  # not aiohttp's name and version


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

    api = web.Application()  # served by dispatch.ApiRunner: its keys and lifecycle only
    admin = web.Application()
    govern = build_governance(settings, metrics)
    states = BackendStates()
    for app in (api, admin):
        app[BACKEND_STATES] = states
        app[GOVERN] = govern
        app[SETTINGS] = settings
        app[STORE] = store
        app[METRICS] = metrics
        app[DRAINING] = draining
    api[RNG] = rng
    api[REQUEST_IDS] = RequestIds()
    api[IN_FLIGHT] = InFlight()
    api[HEAP] = HeapTrimmer()
    audit = open_audit(settings, metrics.registry)
    if audit is not None:
        api[AUDIT] = admin[AUDIT] = audit
    api[GENAI] = GenAiMetrics(
        metrics.registry,
        dup=settings.telemetry.semconv == "dup",
        tenant_cap=settings.telemetry.tenant_label_cap,
    )
    tracing = _tracing(settings, metrics)
    if tracing is not None:
        api[TRACING] = tracing
    api.cleanup_ctx.append(_audit_ctx)  # first in, last out
    api.cleanup_ctx.append(_tracing_ctx)
    api.cleanup_ctx.append(_upstream_ctx(steps))  # the pipeline first: loads prepare it
    api.cleanup_ctx.append(_bundle_ctx)
    admin.on_response_prepare.append(_server_header)
    add_admin_routes(admin)
    add_rollout_route(admin)
    return api, admin
