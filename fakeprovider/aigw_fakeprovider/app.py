"""The aiohttp application: one flavor's endpoints, the fault/auth/record layer, the control API.

Every model request goes through :func:`_provider_middleware`, in the order a real provider
applies things: record the request, wait the fault's latency, check the API key (401 in the
flavor's format), refuse bad JSON, answer the fault's status (with ``Retry-After``), and only
then let the flavor's handler answer. A cancelled handler or a failed write marks the exchange
``disconnected``.

The control API (never recorded, never authenticated) lets a test or a proxy-side test drive
the fake without custom headers: ``POST /_fake/faults`` (``{"fault": {...}, "count": N}`` or
``{"faults": [{...}, ...]}``), ``POST /_fake/embeddings`` (``{"vectors": {text: [numbers]}}``:
the vector the embeddings endpoint answers for that text), ``GET /_fake/requests``,
``POST /_fake/reset``, ``GET /_fake/health``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from aiohttp import web

from . import anthropic_api, openai_api
from .faults import Fault, FaultQueue
from .recorder import Recorder
from .vectors import VECTORS_KEY, Vectors
from .wire import CALL_KEY, Call

__all__ = [
    "FAULTS_KEY",
    "RECORDER_KEY",
    "SETTINGS_KEY",
    "VECTORS_KEY",
    "FakeProviderSettings",
    "Flavor",
    "build_app",
]

Flavor = Literal["openai", "anthropic"]
_DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small"),
    "anthropic": ("claude-sonnet-4-5", "claude-haiku-4-5"),
}
_DEFAULT_MESSAGES = {
    401: "Incorrect API key provided.",
    429: "Rate limit reached for requests.",
    500: "The server had an error while processing your request.",
    503: "The service is temporarily unavailable.",
    529: "Overloaded",
}
_RETRY_STATUSES = frozenset({429, 503, 529})


@dataclass(frozen=True, slots=True)
class FakeProviderSettings:
    """How one fake provider behaves.

    ``flavor``: which wire format it speaks. ``api_key``: the key clients must present
    (``None`` accepts any). ``models``: what ``GET /v1/models`` lists (empty: the flavor's
    defaults). ``record_limit``: how many exchanges the recorder keeps.
    """

    flavor: Flavor = "openai"
    api_key: str | None = None
    models: tuple[str, ...] = field(default=())
    record_limit: int = 10_000

    @property
    def listed_models(self) -> tuple[str, ...]:
        return self.models or _DEFAULT_MODELS[self.flavor]


class _FlavorModule(Protocol):
    RATE_LIMIT_HEADERS: dict[str, str]

    def error_response(
        self, status: int, message: str, headers: Mapping[str, str], *, code: str | None = None
    ) -> web.Response: ...

    def presented_key(self, request: web.Request) -> str | None: ...

    def routes(self, models: tuple[str, ...]) -> list[web.RouteDef]: ...


SETTINGS_KEY = web.AppKey("aigw_fake_settings", FakeProviderSettings)
RECORDER_KEY = web.AppKey("aigw_fake_recorder", Recorder)
FAULTS_KEY = web.AppKey("aigw_fake_faults", FaultQueue)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    settings: FakeProviderSettings,
    recorder: Recorder | None = None,
    faults: FaultQueue | None = None,
    vectors: Vectors | None = None,
) -> web.Application:
    """The fake provider as an aiohttp application (serve it with ``handler_cancellation``)."""
    flavor = _flavor_module(settings.flavor)
    app = web.Application(middlewares=[_provider_middleware], client_max_size=64 * 1024 * 1024)
    app[SETTINGS_KEY] = settings
    app[RECORDER_KEY] = recorder if recorder is not None else Recorder(settings.record_limit)
    app[FAULTS_KEY] = faults if faults is not None else FaultQueue()
    app[VECTORS_KEY] = vectors if vectors is not None else Vectors()
    app.router.add_routes(
        [
            web.post("/_fake/faults", _queue_faults),
            web.post("/_fake/embeddings", _set_vectors),
            web.get("/_fake/requests", _list_requests),
            web.post("/_fake/reset", _reset),
            web.get("/_fake/health", _health),
        ]
    )
    app.router.add_routes(flavor.routes(settings.listed_models))
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


def _flavor_module(flavor: Flavor) -> _FlavorModule:
    return openai_api if flavor == "openai" else anthropic_api


@web.middleware
async def _provider_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if request.path.startswith("/_fake/"):
        return await handler(request)
    app = request.app
    settings = app[SETTINGS_KEY]
    flavor = _flavor_module(settings.flavor)
    body, bad_json = await _read_json(request)
    exchange = app[RECORDER_KEY].start(
        request.method, request.path, request.query, request.headers, body
    )
    request_id = f"req_{exchange.seq:024x}"
    id_header = "x-request-id" if settings.flavor == "openai" else "request-id"
    headers = {id_header: request_id, **flavor.RATE_LIMIT_HEADERS}
    try:
        try:
            fault = app[FAULTS_KEY].pop().with_headers(request.headers)
        except ValueError as exc:
            exchange.status = 400
            return flavor.error_response(400, f"bad X-Fake header: {exc}", headers)
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        error = _refusal(flavor, settings, request, fault, headers, bad_json)
        if error is not None:
            exchange.status = error.status
            exchange.completed = True
            return error
        request[CALL_KEY] = Call(request, exchange, fault, body, headers)
        return await handler(request)
    except (asyncio.CancelledError, ConnectionResetError):
        exchange.disconnected = True
        raise


def _refusal(  # noqa: PLR0917 - private, called once
    flavor: _FlavorModule,
    settings: FakeProviderSettings,
    request: web.Request,
    fault: Fault,
    headers: dict[str, str],
    bad_json: bool,
) -> web.Response | None:
    if settings.api_key is not None and flavor.presented_key(request) != settings.api_key:
        return flavor.error_response(401, _DEFAULT_MESSAGES[401], headers)
    if bad_json:
        return flavor.error_response(400, "the request body is not valid JSON", headers)
    if fault.status is None or fault.status < 400:
        return None
    status = fault.status
    hinted = fault.retry_after_ms is not None or fault.ratelimit_reset is not None
    if fault.retry_after is not None or (status in _RETRY_STATUSES and not hinted):
        headers = {**headers, "retry-after": fault.retry_after or "1"}
    if fault.retry_after_ms is not None:
        headers = {**headers, "retry-after-ms": fault.retry_after_ms}
    if fault.ratelimit_reset is not None and "x-ratelimit-reset-requests" in headers:
        headers = {
            **headers,
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": fault.ratelimit_reset,
        }
    message = fault.error_message or _DEFAULT_MESSAGES.get(status, f"fake provider error {status}")
    return flavor.error_response(status, message, headers)


async def _read_json(request: web.Request) -> tuple[Any, bool]:
    if not request.body_exists:
        return None, False
    raw = await request.read()
    try:
        return orjson.loads(raw), False
    except ValueError:
        pass
    try:  # what orjson refuses but Python's json accepts (NaN, huge integers)
        return json.loads(raw), False
    except ValueError:
        return raw.decode("utf-8", "replace"), True


async def _not_found(request: web.Request) -> web.StreamResponse:
    call: Call = request[CALL_KEY]
    flavor = _flavor_module(request.app[SETTINGS_KEY].flavor)
    call.exchange.status = 404
    return flavor.error_response(404, f"Unknown path: {request.path}", call.headers)


async def _queue_faults(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object")
        if "faults" in data:
            faults = [Fault.from_json(item) for item in data["faults"]]
        else:
            count = data.get("count", 1)
            if not isinstance(count, int) or count < 1:
                raise ValueError("count must be a positive integer")
            faults = [Fault.from_json(data.get("fault", {}))] * count
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    queue = request.app[FAULTS_KEY]
    queued = 0
    for fault in faults:
        queued = queue.push(fault)
    return web.json_response({"queued": queued})


async def _set_vectors(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        vectors = data.get("vectors") if isinstance(data, Mapping) else None
        if not isinstance(vectors, Mapping):
            raise ValueError('expected {"vectors": {text: [numbers]}}')
        request.app[VECTORS_KEY].update(vectors)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"vectors": len(vectors)})


async def _list_requests(request: web.Request) -> web.StreamResponse:
    exchanges = request.app[RECORDER_KEY].exchanges
    return web.json_response({"requests": [e.to_json() for e in exchanges]})


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[RECORDER_KEY].clear()
    request.app[FAULTS_KEY].clear()
    return web.json_response({"reset": True})


async def _health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok", "flavor": request.app[SETTINGS_KEY].flavor})
