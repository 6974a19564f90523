"""Step: send the request to one of the route's backends (the last step of the pipeline).

Backend choice is weighted-random among the route's backends with weight > 0 (the RNG is
passed in, so tests and canaries can be reproducible). Attempts are a loop; today it runs
once (``max_attempts``), and retries, fallbacks and circuit breakers will extend the loop
with the route's ``retry``/``fallback``/``circuit_breaker`` settings, retrying only
:class:`~aigw_sidecar.errors.UpstreamFailure` whose ``error_class`` the policy lists.

Time limits: connecting is bounded by the route's ``connect_ms``; a complete answer, or the
first byte of a stream, by ``request_ms`` and the request deadline, whichever is sooner; each
later stream chunk by ``idle_ms``. Upstream connections are pooled and kept alive by the one
shared :class:`aiohttp.ClientSession`. A stream's upstream connection is closed (not returned
to the pool) if the stream is abandoned, so the provider sees the cancellation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator

import aiohttp
from aiohttp import ClientSession, ClientTimeout

from aigw_sidecar.adapters import StreamDecoder
from aigw_sidecar.context import Decision, Json, RequestContext
from aigw_sidecar.errors import (
    SidecarError,
    UnsupportedOperation,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Step
from aigw_sidecar.runtime import RuntimeBackend, RuntimeRoute
from aigw_sidecar.sse import iter_sse_batches
from aigw_sidecar.upstream_errors import map_upstream_error

__all__ = ["CallUpstream"]


class CallUpstream(Step):
    """Choose a backend, call it, and leave ``ctx.response`` or ``ctx.chunks``."""

    name = "upstream"
    max_attempts = 1

    def __init__(self, session: ClientSession, rng: random.Random, metrics: Metrics) -> None:
        self._session = session
        self._rng = rng
        self._metrics = metrics

    async def on_request(self, ctx: RequestContext) -> None:
        route = ctx.route
        assert route is not None, "ResolveRoute runs first"
        failure: UpstreamFailure | None = None
        for _ in range(self.max_attempts):
            backend = route.pick(self._rng)
            ctx.backend = backend
            ctx.attempts += 1
            ctx.response_headers["X-AIGW-Backend"] = backend.name
            try:
                await self._attempt(ctx, route, backend)
            except UpstreamFailure as exc:
                failure = exc
                self._metrics.upstream_attempts.labels(route.name, backend.name, exc.type).inc()
                ctx.decisions.append(Decision(self.name, "attempt_failed", exc.code))
                continue
            except SidecarError as exc:
                self._metrics.upstream_attempts.labels(route.name, backend.name, exc.type).inc()
                raise
            self._metrics.backend(route.name, backend.name).attempts_ok.inc()
            return
        assert failure is not None
        raise failure

    async def _attempt(  # noqa: PLR0912, PLR0915 - one place that owns the whole attempt
        self, ctx: RequestContext, route: RuntimeRoute, backend: RuntimeBackend
    ) -> None:
        if backend.credential_problem:
            raise UpstreamUnavailable(
                f"backend {backend.name} has no usable credential", code="credential_unavailable"
            )
        adapter = backend.adapter
        if ctx.operation == "chat":
            url = backend.chat_url
            data = adapter.chat_request(ctx.body, backend.model, stream=ctx.stream)
        else:
            if backend.embeddings_url is None:
                raise UnsupportedOperation(
                    f"route {route.name} cannot serve embeddings (backend {backend.name})"
                )
            url = backend.embeddings_url
            data = adapter.embeddings_request(ctx.body, backend.model)
        loop = asyncio.get_running_loop()
        began = loop.time()
        remaining = ctx.deadline - began
        if remaining <= 0:
            raise UpstreamTimeout("the request deadline passed before the upstream call")
        post = self._session.post
        try:
            if ctx.stream:  # connect, then the first byte by the deadline, then idle per chunk
                async with asyncio.timeout(min(route.request_s, remaining)):
                    response = await post(
                        url, data=data, headers=backend.headers, timeout=route.stream_timeout
                    )
            else:
                timeout = (
                    route.timeout
                    if remaining >= route.request_s
                    else ClientTimeout(total=remaining, connect=route.connect_s)
                )
                response = await post(url, data=data, headers=backend.headers, timeout=timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"backend {backend.name} did not answer in time") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamUnavailable(f"backend {backend.name} is unreachable") from None
        self._metrics.backend(route.name, backend.name).upstream_seconds.observe(
            loop.time() - began
        )
        if response.status >= 300:
            try:
                raw = await self._read(response, backend)
            finally:
                response.release()
            raise map_upstream_error(
                response.status,
                raw,
                response.headers,
                backend=backend.name,
                scrubber=ctx.config.scrubber,
            )
        if ctx.stream:
            ctx.chunks = self._chunks(ctx, response, backend, adapter.stream_decoder(backend.model))
            return
        try:
            raw = await self._read(response, backend)
        finally:
            response.release()
        if ctx.operation == "chat":
            ctx.response = adapter.chat_response(raw)
        else:
            ctx.response = adapter.embeddings_response(raw)
        usage = ctx.response.get("usage")
        if isinstance(usage, dict):
            ctx.usage = usage

    @staticmethod
    async def _read(response: aiohttp.ClientResponse, backend: RuntimeBackend) -> bytes:
        try:
            return await response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"backend {backend.name} did not answer in time") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamUnavailable(f"backend {backend.name} cut the response") from None

    @staticmethod
    async def _chunks(
        ctx: RequestContext,
        response: aiohttp.ClientResponse,
        backend: RuntimeBackend,
        decode: StreamDecoder,
    ) -> AsyncGenerator[list[Json], None]:
        try:
            async for events in iter_sse_batches(response.content):
                batch = [chunk for event, data in events for chunk in decode(event, data)]
                if batch:
                    for chunk in batch:
                        usage = chunk.get("usage")
                        if usage:
                            ctx.usage = usage
                    yield batch
        except TimeoutError:
            raise UpstreamTimeout(f"backend {backend.name} stalled mid-stream") from None
        except (aiohttp.ClientError, OSError, ValueError):
            raise UpstreamUnavailable(f"backend {backend.name} cut the stream") from None
        finally:
            if response.content.at_eof():
                response.release()
            else:
                response.close()  # abandoned: drop the connection so the provider stops
