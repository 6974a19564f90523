"""The one wrapper of every API call (:func:`serve`): request id, in-flight gauge, request
metrics, the audit record of a call the pipeline never saw, and errors -> responses.

:mod:`.dispatch` calls it around every endpoint (it was an aiohttp middleware; the API port
now runs on aiohttp's low-level server). Every exception a handler raises ends here. A
:class:`~aigw_sidecar.errors.SidecarError` is rendered in the caller's API shape (Anthropic
on ``/v1/messages``, OpenAI elsewhere) with ``Retry-After`` when it has one; aiohttp's own
HTTP errors (a body too large) become the matching typed error; a request the drain cut
before its answer began gets a 503 ``shutting_down``; anything else is a bug: logged with
the request id, answered with a generic 500 that carries no detail. A whole (not streamed)
answer is written here too, bounded by ``send_timeout_s``, so a caller that stops reading
cannot hold it forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from aigw_contract import AuditQueueFull

from .app_keys import (
    AUDIT,
    CONTEXT,
    HEAP,
    IN_FLIGHT,
    LARGE_BODY,
    METRICS,
    REQUEST_ID,
    REQUEST_IDS,
    SERVER,
    SETTINGS,
    STORE,
    correlation_id,
)
from .audit import bare_record
from .drain import shutting_down
from .errors import (
    BodyTooLarge,
    EndpointNotFound,
    InvalidRequest,
    MethodNotAllowed,
    SidecarError,
    anthropic_error_body,
    openai_error_body,
)
from .metrics import Metrics

ApiHandler = Callable[[web.BaseRequest, web.Application], Awaitable[web.StreamResponse]]
"""An endpoint: the request and the API application it is served by."""

__all__ = [
    "ApiHandler",
    "endpoint_not_found",
    "error_response",
    "method_not_allowed",
    "new_request_id",
    "serve",
]

_log = logging.getLogger(__name__)


def new_request_id(request: web.BaseRequest, app: web.Application) -> str:
    """A fresh id the sidecar generates for every request (``X-AIGW-Request-Id``).

    Never the caller's ``X-Request-Id``: a caller can send one id on many calls, and what
    is keyed by the request id (per-request state, reservations) must not be shared.
    """
    return app[REQUEST_IDS].next()


def error_response(
    request: web.BaseRequest, app: web.Application, error: SidecarError
) -> web.Response:
    """``error`` as a response in the shape of the endpoint the caller used."""
    request_id = request.get(REQUEST_ID, "")
    if request.path.startswith("/v1/messages"):
        body = anthropic_error_body(error, request_id)
    else:
        body = openai_error_body(error, request_id)
    response = web.Response(status=error.status, body=body, content_type="application/json")
    if error.close_connection:
        response.force_close()
    headers = response.headers
    headers["X-AIGW-Request-Id"] = request_id
    headers["Server"] = SERVER
    caller_id = correlation_id(request.headers)
    if caller_id is not None:
        headers["X-Request-Id"] = caller_id
    if error.status == 429:  # DESIGN: every 429 says when to come back
        headers["Retry-After"] = str(error.retry_after or 1)
    elif error.retry_after is not None and error.status == 503:
        headers["Retry-After"] = str(error.retry_after)
    ctx = request.get(CONTEXT)
    # A request that got as far as a context reports the bundle it ran under, not one a
    # reload swapped in since.
    config = ctx.config if ctx is not None else app[STORE].current
    if config is not None:
        headers["X-AIGW-Policy-Version"] = config.policy_version
    if ctx is not None:
        headers.update(ctx.response_headers)
    return response


def endpoint_not_found() -> EndpointNotFound:
    """The answer to a path the API does not serve."""
    return EndpointNotFound(
        "no such endpoint; see /v1/chat/completions, /v1/embeddings, /v1/models, /v1/messages"
    )


def method_not_allowed() -> MethodNotAllowed:
    """The answer to a method a served path does not take."""
    return MethodNotAllowed("method not allowed on this endpoint")


def _from_http(exc: web.HTTPException) -> SidecarError:
    if exc.status == 404:
        return endpoint_not_found()
    if exc.status == 405:
        return method_not_allowed()
    if exc.status == 413:
        return BodyTooLarge("the request body is too large")
    return InvalidRequest(exc.reason or "invalid request", code=f"http_{exc.status}")


_HEAD_ROOM = 16 * 1024
"""More than the status line and headers of any answer the sidecar writes."""


async def _send(request: web.BaseRequest, app: web.Application, response: web.Response) -> None:
    """Write a whole answer here, bounded by ``send_timeout_s``: aiohttp would wait forever
    for a caller that stopped reading. Past the bound the connection is dropped.

    A write waits only when it leaves more than the transport's high-water mark queued for
    the caller (the transport then pauses its writer): an answer that fits below it, the
    common case, is written without arming a timer."""
    transport = request.transport
    body = response.body
    if (
        transport is not None
        and isinstance(body, bytes)
        and transport.get_write_buffer_size() + len(body) + _HEAD_ROOM
        <= transport.get_write_buffer_limits()[1]
    ):
        await response.prepare(request)
        await response.write_eof()
        return
    try:
        async with asyncio.timeout(app[SETTINGS].send_timeout_s):
            await response.prepare(request)
            await response.write_eof()
    except TimeoutError:
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise ConnectionResetError("the caller stopped reading the answer") from None


def _record(
    metrics: Metrics, request: web.BaseRequest, status: int, error: str, began: float
) -> None:
    ctx = request.get(CONTEXT)
    route = ""
    if ctx is not None:
        if ctx.route is not None:
            route = ctx.route.name
        if not error and ctx.error_type:
            error = ctx.error_type  # a stream that failed after its 200 was sent
    metrics.count_request(route, status, error, asyncio.get_running_loop().time() - began)


def _needs_bare_record(request: web.BaseRequest, app: web.Application) -> bool:
    """A call that never reached the pipeline (no bundle yet, unknown endpoint) with an
    audit log to record it in; the pipeline's audit step records every other one."""
    return CONTEXT not in request and request.method == "POST" and AUDIT in app


async def _audit_bare(
    request: web.BaseRequest, app: web.Application, status: int, error_type: str, began: float
) -> None:
    """The record of a call :func:`_needs_bare_record` says the pipeline did not record."""
    audit = app[AUDIT]
    record = bare_record(
        request[REQUEST_ID],
        request.path,
        status,
        error_type,
        asyncio.get_running_loop().time() - began,
        request.headers,
        audit.pod,
    )
    waiting = audit.offer(record, AuditQueueFull.BACKPRESSURE)
    if waiting is not None:
        await waiting


async def _finish(
    request: web.BaseRequest, app: web.Application, status: int, error_type: str, began: float
) -> None:
    try:
        await _audit_bare(request, app, status, error_type, began)
    finally:
        _release(request, app)


def _release(request: web.BaseRequest, app: web.Application) -> None:
    """The call is over: let its body and context go now (an idle keep-alive connection
    keeps its last request reachable until the next one arrives), and give a large body's
    memory back to the system (:mod:`.memory`)."""
    request.pop(CONTEXT, None)
    if request[LARGE_BODY]:  # always set (the middleware starts it False): no KeyError raised
        request[LARGE_BODY] = False
        app[HEAP].leave()


async def serve(  # noqa: PLR0915 - every outcome in one place
    request: web.BaseRequest, app: web.Application, handler: ApiHandler
) -> web.StreamResponse:
    """``handler``'s answer to ``request``, every outcome of it typed, counted and recorded."""
    metrics = app[METRICS]
    request[REQUEST_ID] = new_request_id(request, app)
    request[LARGE_BODY] = False  # so that reading it never raises KeyError (Mapping mixins do)
    began = asyncio.get_running_loop().time()
    metrics.in_flight.inc()
    in_flight = app[IN_FLIGHT]
    task = asyncio.current_task()
    assert task is not None
    in_flight.enter(task)
    status, error_type = 500, "upstream_error"
    try:
        try:
            response = await handler(request, app)
        except SidecarError as exc:
            response = error_response(request, app, exc)
            error_type = exc.type
        except web.HTTPException as exc:
            mapped = _from_http(exc)
            response = error_response(request, app, mapped)
            error_type = mapped.type
        except asyncio.CancelledError:
            if not in_flight.was_cut(task) or request.writer.output_size > 0:
                error_type, status = "client_disconnected", 499
                raise
            task.uncancel()  # cut by the drain before its answer began: say so, typed
            response = error_response(request, app, shutting_down())
            response.force_close()
            error_type = "upstream_unavailable"
        except ConnectionResetError:
            error_type = "client_disconnected"
            status = 499
            raise
        except Exception:  # noqa: BLE001 - a bug becomes a bare 500, logged
            _log.exception(
                "unexpected error in request %s (caller id %s)",
                request[REQUEST_ID],
                correlation_id(request.headers),
            )
            response = error_response(
                request, app, SidecarError("internal error in the gateway", code="internal_error")
            )
        else:
            error_type = ""
        status = response.status
        if isinstance(response, web.Response) and not response.prepared:
            try:
                await _send(request, app, response)
            except ConnectionResetError:
                status, error_type = 499, "client_disconnected"
                raise
        return response
    finally:
        in_flight.leave(task)
        metrics.in_flight.dec()
        _record(metrics, request, status, error_type, began)
        if _needs_bare_record(request, app):
            await _finish(request, app, status, error_type, began)
        else:
            _release(request, app)  # no coroutine to run on the common path
