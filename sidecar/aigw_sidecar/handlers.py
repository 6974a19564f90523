"""The API endpoints: parse and check the body, run the pipeline, render the answer.

Each handler turns its wire format into the canonical form (``/v1/messages`` translates the
Anthropic request into OpenAI chat), builds a :class:`~aigw_sidecar.context.RequestContext`
on the runtime config current at that moment, and runs the pipeline. A complete answer is
rendered as JSON; a stream as SSE: the first chunk is awaited before the 200 is sent (so an
upstream that fails at once still gives a proper error status), each write waits for the
socket to drain (back-pressure), and a failure after the 200 ends the stream with an error
event in the caller's format. A caller that disconnects cancels the handler (the server runs
with ``handler_cancellation``), which closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web

from .adapters.anthropic_inbound import anthropic_request_to_openai, openai_response_to_anthropic
from .adapters.anthropic_stream import OpenAIToAnthropic
from .context import Api, Json, Operation, RequestContext
from .errors import (
    BodyTooLarge,
    NotReady,
    SidecarError,
    anthropic_error_body,
    openai_error_body,
)
from .keys import CONTEXT, METRICS, PIPELINE, REQUEST_ID, SETTINGS, STORE
from .middleware import correlation_id
from .pipeline import Pipeline
from .runtime import RuntimeConfig
from .sse import DONE, anthropic_event, openai_event
from .steps.models import MODELS_STEP
from .validate import check_chat, check_embeddings, check_messages, parse_json_object

__all__ = ["chat_completions", "embeddings", "list_models", "messages"]

_JSON = "application/json"


async def _read_body(request: web.Request) -> Json:
    limit = request.app[SETTINGS].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"the request body is larger than {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"the request body is larger than {limit} bytes") from None
    return parse_json_object(raw)


def _loaded_config(request: web.Request) -> RuntimeConfig:
    """The bundle in force; 503 until the first valid one is loaded."""
    config = request.app[STORE].current
    if config is None:
        raise NotReady("the gateway has no valid policy bundle loaded yet", retry_after=1)
    return config


def _base_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {
        "X-AIGW-Request-Id": ctx.request_id,
        "X-AIGW-Policy-Version": ctx.config.policy_version,
        "X-AIGW-Cache": "bypass",
    }
    caller_id = correlation_id(ctx.headers)
    if caller_id is not None:
        headers["X-Request-Id"] = caller_id  # echoed for the caller's correlation only
    headers.update(ctx.response_headers)
    return headers


async def _serve(
    request: web.Request, api: Api, operation: Operation, body: Json
) -> web.StreamResponse:
    config = _loaded_config(request)
    ctx = RequestContext(
        request_id=request[REQUEST_ID],
        api=api,
        operation=operation,
        body=body,
        headers=request.headers,
        config=config,
        started=asyncio.get_running_loop().time(),
    )
    request[CONTEXT] = ctx
    pipeline = request.app[PIPELINE]
    try:
        await pipeline.run(ctx)
        if ctx.chunks is not None:
            return await _stream(request, ctx, pipeline)
        answer = ctx.response
        assert answer is not None, "the pipeline always answers or raises"
        if api == "anthropic":
            answer = openai_response_to_anthropic(answer, ctx.requested_model)
        return web.Response(
            body=orjson.dumps(answer), content_type=_JSON, headers=_base_headers(ctx)
        )
    except BaseException as exc:
        ctx.error = exc
        raise
    finally:
        await pipeline.finish(ctx)


def _stream_error(ctx: RequestContext, error: SidecarError) -> bytes:
    if ctx.api == "anthropic":
        return b"event: error\ndata: " + anthropic_error_body(error, ctx.request_id) + b"\n\n"
    return b"data: " + openai_error_body(error, ctx.request_id) + b"\n\n"


async def _stream(
    request: web.Request, ctx: RequestContext, pipeline: Pipeline
) -> web.StreamResponse:
    chunks = pipeline.stream(ctx)
    async with contextlib.aclosing(chunks):
        first = await anext(chunks, None)  # errors before the 200 become normal error responses
        if ctx.route is not None:
            request.app[METRICS].time_to_first_token.labels(ctx.route.name).observe(
                asyncio.get_running_loop().time() - ctx.started
            )
        response = web.StreamResponse(headers=_base_headers(ctx))
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        try:
            if ctx.api == "openai":
                include_usage = ctx.include_usage
                batch = first
                while batch is not None:
                    data = b"".join(
                        openai_event(chunk)
                        for chunk in batch
                        if include_usage or chunk.get("choices") or not chunk.get("usage")
                    )
                    if data:
                        await response.write(data)
                    batch = await anext(chunks, None)
                await response.write(DONE)
            else:
                translator = OpenAIToAnthropic(ctx.requested_model)
                batch = first
                while batch is not None:
                    data = b"".join(
                        anthropic_event(event, payload)
                        for chunk in batch
                        for event, payload in translator.feed(chunk)
                    )
                    if data:
                        await response.write(data)
                    batch = await anext(chunks, None)
                await response.write(
                    b"".join(anthropic_event(e, payload) for e, payload in translator.finish())
                )
        except SidecarError as exc:
            ctx.error = exc
            with contextlib.suppress(ConnectionError):
                await response.write(_stream_error(ctx, exc))
        except ConnectionError as exc:  # the caller went away; closing `chunks` stops upstream
            ctx.error = exc
            return response
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    body = check_chat(await _read_body(request))
    return await _serve(request, "openai", "chat", body)


async def embeddings(request: web.Request) -> web.StreamResponse:
    """``POST /v1/embeddings``."""
    body = check_embeddings(await _read_body(request))
    if body.get("stream") is not None:
        body = {k: v for k, v in body.items() if k != "stream"}
    return await _serve(request, "openai", "embeddings", body)


async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages`` (Anthropic-compatible)."""
    body = anthropic_request_to_openai(check_messages(await _read_body(request)))
    return await _serve(request, "anthropic", "chat", body)


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the routes this workload may use (Anthropic shape for its SDK)."""
    config = _loaded_config(request)
    bodies = config.prepared.get(MODELS_STEP)
    if not isinstance(bodies, tuple):
        bodies = (config.models_openai, config.models_anthropic)
    return web.Response(
        body=bodies[1] if "anthropic-version" in request.headers else bodies[0],
        content_type=_JSON,
        headers={
            "X-AIGW-Request-Id": request[REQUEST_ID],
            "X-AIGW-Policy-Version": config.policy_version,
        },
    )
