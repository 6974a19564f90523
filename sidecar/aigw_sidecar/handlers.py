"""The API endpoints: one request context, the pipeline, the answer in the caller's format.

Each endpoint is a front end (:mod:`aigw_sidecar.frontends`): the handler makes a
:class:`~aigw_sidecar.context.RequestContext` on the runtime config current at that moment,
lets the pipeline read and decode the body (so even a request refused for its body has run
the outermost steps), and renders the answer with the front end. A stream: the first batch
is read before the 200 is sent (inside the upstream attempt, so an upstream that fails at
once gives a proper error status), each write waits for the socket to drain
(back-pressure), the request deadline bounds the whole stream, and a failure after the 200
ends the stream with an error event in the caller's format. A caller that disconnects
cancels the handler (the server runs with ``handler_cancellation``), which closes the
upstream connection. A caller that stops reading is dropped once a write has waited
``send_timeout_s`` for it (which also closes the upstream connection and ends the call),
and a stream the drain cuts ends with a ``shutting_down`` error event (:mod:`.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from aiohttp import web

from .app_keys import (
    CONTEXT,
    IN_FLIGHT,
    METRICS,
    PIPELINE,
    REQUEST_ID,
    SERVER,
    SETTINGS,
    STORE,
    correlation_id,
)
from .body import read_json_body
from .context import Json, RequestContext
from .drain import shutting_down
from .errors import NotReady, SidecarError, UpstreamTimeout
from .frontends import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    Frontend,
)
from .keys import MODELS
from .pipeline import Decode, Pipeline
from .runtime import RuntimeConfig

__all__ = ["chat_completions", "count_tokens", "embeddings", "list_models", "messages"]

_JSON = "application/json"


def _body_reader(
    request: web.BaseRequest, app: web.Application, frontend: Frontend, ctx: RequestContext
) -> Decode:
    async def decode() -> Json:
        return frontend.decode(await read_json_body(request, app), ctx)

    return decode


def _loaded_config(app: web.Application) -> RuntimeConfig:
    """The bundle in force; 503 until the first valid one is loaded."""
    config = app[STORE].current
    if config is None:
        raise NotReady("the gateway has no valid policy bundle loaded yet", retry_after=1)
    return config


def _base_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {
        "X-AIGW-Request-Id": ctx.request_id,
        "X-AIGW-Policy-Version": ctx.config.policy_version,
        "X-AIGW-Cache": ctx.cache,
        "Server": SERVER,
    }
    caller_id = correlation_id(ctx.headers)
    if caller_id is not None:
        headers["X-Request-Id"] = caller_id  # echoed for the caller's correlation only
    headers.update(ctx.response_headers)
    return headers


async def _serve(
    request: web.BaseRequest, app: web.Application, frontend: Frontend
) -> web.StreamResponse:
    config = _loaded_config(app)
    ctx = RequestContext(
        request_id=request[REQUEST_ID],
        api=frontend.api,
        operation=frontend.operation,
        headers=request.headers,
        config=config,
        started=asyncio.get_running_loop().time(),
    )
    request[CONTEXT] = ctx
    pipeline = app[PIPELINE]
    try:
        await pipeline.run(ctx, _body_reader(request, app, frontend, ctx))
        if ctx.chunks is not None:
            return await _stream(request, app, ctx, pipeline, frontend)
        answer = ctx.response
        assert answer is not None, "the pipeline always answers or raises"
        ctx.status = 200
        return web.Response(
            body=frontend.render(ctx, answer), content_type=_JSON, headers=_base_headers(ctx)
        )
    except SidecarError as exc:
        ctx.error = exc
        ctx.status, ctx.error_type = exc.status, exc.type
        raise
    except (asyncio.CancelledError, ConnectionResetError) as exc:
        ctx.error = exc
        ctx.status, ctx.error_type = 499, "client_disconnected"
        raise
    except BaseException as exc:
        ctx.error = exc
        ctx.status, ctx.error_type = 500, "internal_error"
        raise
    finally:
        await pipeline.finish(ctx)
        ctx.error = None  # its traceback holds the frames that hold the body: let them go


async def _stream(
    request: web.BaseRequest,
    app: web.Application,
    ctx: RequestContext,
    pipeline: Pipeline,
    frontend: Frontend,
) -> web.StreamResponse:
    chunks = pipeline.stream(ctx)
    async with _closing(chunks):
        first = await anext(chunks, None)
        ctx.first_token_at = asyncio.get_running_loop().time()
        if ctx.route is not None:
            app[METRICS].time_to_first_token.labels(ctx.route.name).observe(
                ctx.first_token_at - ctx.started
            )
        response = web.StreamResponse(headers=_base_headers(ctx))
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        ctx.status = 200
        encoder = frontend.stream_encoder(ctx)
        send = _sender(request, app, response)
        try:
            deadline = ctx.deadline if math.isfinite(ctx.deadline) else None
            try:
                async with asyncio.timeout_at(deadline):
                    batch = first
                    while batch is not None:
                        data = encoder.feed(batch)
                        if data:
                            await send(data)
                        batch = await anext(chunks, None)
            except TimeoutError:
                raise UpstreamTimeout(
                    "the request deadline passed in the middle of the stream",
                    code="deadline_exceeded",
                ) from None
            await pipeline.respond(ctx)
            await send(encoder.finish())
        except SidecarError as exc:
            ctx.error = exc
            ctx.error_type = exc.type
            with contextlib.suppress(ConnectionError):
                await send(frontend.stream_error(exc, ctx.request_id))
        except ConnectionError as exc:  # the caller went away; closing `chunks` stops upstream
            ctx.error = exc
            ctx.error_type = "client_disconnected"
            return response
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not app[IN_FLIGHT].was_cut(task):
                raise
            assert task is not None
            task.uncancel()  # the drain's cut: end the stream with a typed event, not silence
            error = shutting_down()
            ctx.error, ctx.error_type = error, error.type
            with contextlib.suppress(ConnectionError):
                await send(frontend.stream_error(error, ctx.request_id))
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


def _sender(
    request: web.BaseRequest, app: web.Application, response: web.StreamResponse
) -> Callable[[bytes], Awaitable[None]]:
    """``response.write`` bounded by ``send_timeout_s`` when it may have to wait. A write
    waits only when it leaves more than the transport's high-water mark queued for the
    caller (the transport then pauses its writer), so the common case, a small batch and
    nothing queued, costs no timer."""
    timeout = app[SETTINGS].send_timeout_s
    transport = request.transport
    high = transport.get_write_buffer_limits()[1] if transport is not None else 0
    framing = 64  # chunked-encoding framing aiohttp adds to each write

    async def send(data: bytes) -> None:
        if transport is None or transport.get_write_buffer_size() + len(data) + framing <= high:
            await response.write(data)
            return
        try:
            async with asyncio.timeout(timeout):
                await response.write(data)
        except TimeoutError:
            transport.abort()
            raise ConnectionResetError("the caller stopped reading the stream") from None

    return send


@contextlib.asynccontextmanager
async def _closing(chunks: AsyncIterator[list[Json]]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


async def chat_completions(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    return await _serve(request, app, OPENAI_CHAT)


async def embeddings(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
    """``POST /v1/embeddings``."""
    return await _serve(request, app, OPENAI_EMBEDDINGS)


async def messages(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
    """``POST /v1/messages`` (Anthropic-compatible)."""
    return await _serve(request, app, ANTHROPIC_MESSAGES)


async def count_tokens(request: web.BaseRequest, app: web.Application) -> web.StreamResponse:
    """``POST /v1/messages/count_tokens`` (Anthropic-compatible)."""
    return await _serve(request, app, ANTHROPIC_COUNT_TOKENS)


async def list_models(request: web.BaseRequest, app: web.Application) -> web.Response:
    """``GET /v1/models``: the routes this workload may use (Anthropic shape for its SDK)."""
    config = _loaded_config(app)
    bodies = config.prepared.get(MODELS) or (config.models_openai, config.models_anthropic)
    return web.Response(
        body=bodies[1] if "anthropic-version" in request.headers else bodies[0],
        content_type=_JSON,
        headers={
            "X-AIGW-Request-Id": request[REQUEST_ID],
            "X-AIGW-Policy-Version": config.policy_version,
            "Server": SERVER,
        },
    )
