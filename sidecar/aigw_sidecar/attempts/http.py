"""The terminal of the attempt chain: translate, add credentials, call the backend over HTTP.

The attempt's headers already hold the backend's credential (a per-attempt copy of the
headers compiled at bundle load, plus whatever middlewares added). The body is the
canonical request translated by the backend's adapter. Upstream connections are pooled and
kept alive by the one shared :class:`aiohttp.ClientSession`; a stream's connection is closed
(not returned to the pool) when the stream is abandoned, so the provider sees the
cancellation.

Time limits of one attempt: connecting is bounded by the route's ``connect_ms``; a complete
answer, or the first byte of a stream, by ``request_ms`` and the request deadline, whichever
is sooner; each later stream read by ``idle_ms``. (The request deadline also bounds the rest
of a stream: the handler enforces it around the whole stream.)

A stream's first batch is read here, inside the attempt, so a stream that fails at once is a
failed attempt the chain can retry. Every canonical chunk feeds the request's
:class:`~aigw_sidecar.governance.OutputCounter` (the one per-chunk counter of usage) before
any stream transform sees it.

Metrics: ``aigw_upstream_duration_seconds`` (time to the response headers) and
``aigw_upstream_attempts_total{outcome}``: ``ok`` only once the answer is complete (for a
stream: its end), otherwise the error type, including failures in the middle of a stream
(cut, stall, in-stream error), or ``cancelled`` when the caller went away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import aiohttp
import orjson
from aiohttp import ClientSession, ClientTimeout

from aigw_contract import EnforcementMode, Provider
from aigw_sidecar.adapters import StreamDecoder
from aigw_sidecar.adapters.base import CARRIAGE, Adapter, Carriage
from aigw_sidecar.context import Decision, Json, RequestContext
from aigw_sidecar.errors import (
    InvalidRequest,
    SidecarError,
    UnsupportedOperation,
    UpstreamError,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from aigw_sidecar.governance import OutputCounter, TokenCounter, count_prompt
from aigw_sidecar.keys import ADMISSION
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.runtime import RuntimeBackend
from aigw_sidecar.sse import iter_sse_batches
from aigw_sidecar.upstream_errors import map_upstream_error

from .chain import Attempt, Upstream

__all__ = ["HttpCall"]


class HttpCall:
    """``async (attempt) -> Upstream``: the innermost link of every attempt chain."""

    __slots__ = ("_counter", "_metrics", "_session")

    def __init__(self, session: ClientSession, metrics: Metrics, counter: TokenCounter) -> None:
        self._session = session
        self._metrics = metrics
        self._counter = counter

    async def __call__(self, attempt: Attempt) -> Upstream:
        try:
            upstream = await self._attempt(attempt)
        except SidecarError as exc:
            self._failed(attempt, exc)
            raise
        except asyncio.CancelledError:
            self._ended(attempt, "cancelled")
            raise
        if upstream.response is not None:
            self._ended(attempt, "ok")
        return upstream

    def _failed(self, attempt: Attempt, exc: SidecarError) -> None:
        record = attempt.record
        if isinstance(exc, UpstreamFailure):
            record.error_class = exc.error_class
        record.code = exc.code
        self._ended(attempt, exc.type)

    def _ended(self, attempt: Attempt, outcome: str) -> None:
        record = attempt.record
        if record.outcome != "pending":
            return
        record.outcome = outcome
        record.ended = asyncio.get_running_loop().time()
        route, backend = attempt.route.name, attempt.backend.name
        if outcome == "ok":
            self._metrics.backend(route, backend).attempts_ok.inc()
        else:
            self._metrics.upstream_attempts.labels(route, backend, outcome).inc()

    async def _attempt(self, attempt: Attempt) -> Upstream:  # noqa: PLR0912, PLR0915 - one place
        ctx, route, backend = attempt.ctx, attempt.route, attempt.backend
        if backend.credential_problem:
            raise UpstreamUnavailable(
                f"backend {backend.name} has no usable credential", code="credential_unavailable"
            )
        adapter = backend.adapter
        carriage = ctx.state.get(CARRIAGE)
        headers = attempt.headers
        if (
            carriage is not None
            and carriage.anthropic_beta
            and backend.provider is Provider.ANTHROPIC
        ):
            headers["anthropic-beta"] = carriage.anthropic_beta
        if ctx.operation == "chat":
            _check_supported(ctx, adapter, backend, carriage)
            url = backend.chat_url
            data = adapter.chat_request(
                ctx.body, backend.model, stream=ctx.stream, carriage=carriage
            )
        elif ctx.operation == "count_tokens":
            if backend.count_tokens_url is None:  # no such endpoint: the one estimator counts
                attempt.record.outcome = "ok"
                tokens = count_prompt(ctx.body, self._counter)
                return Upstream(attempt, response={"input_tokens": tokens})
            url = backend.count_tokens_url
            data = adapter.count_tokens_request(ctx.body, backend.model, carriage)
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
                        url, data=data, headers=headers, timeout=route.stream_timeout
                    )
            else:
                timeout = (
                    route.timeout
                    if remaining >= route.request_s
                    else ClientTimeout(total=remaining, connect=route.connect_s)
                )
                response = await post(url, data=data, headers=headers, timeout=timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"backend {backend.name} did not answer in time") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamUnavailable(f"backend {backend.name} is unreachable") from None
        latency = loop.time() - began
        attempt.record.latency_s = latency
        self._metrics.backend(route.name, backend.name).upstream_seconds.observe(latency)
        if response.status >= 300:
            try:
                raw = await _read(response, backend)
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
            output = ctx.output
            if output is None:
                output = ctx.output = OutputCounter(self._counter)
            chunks = self._chunks(attempt, response, adapter.stream_decoder(backend.model), output)
            try:
                first = await anext(chunks, None)
            except BaseException:
                await chunks.aclose()
                raise
            attempt.record.first_chunk_s = loop.time() - began
            return Upstream(attempt, chunks=_prefixed(first, chunks))
        try:
            raw = await _read(response, backend)
        finally:
            response.release()
        if ctx.operation == "embeddings":
            answer = adapter.embeddings_response(raw)
        elif ctx.operation == "count_tokens":
            answer = _count(raw)
        else:
            answer = adapter.chat_response(raw)
        return Upstream(attempt, response=answer)

    async def _chunks(
        self,
        attempt: Attempt,
        response: aiohttp.ClientResponse,
        decode: StreamDecoder,
        output: OutputCounter,
    ) -> AsyncGenerator[list[Json], None]:
        backend = attempt.backend
        try:
            try:
                async for events in iter_sse_batches(response.content):
                    batch = [chunk for event, data in events for chunk in decode(event, data)]
                    if batch:
                        output.feed(batch)
                        yield batch
            except TimeoutError:
                raise UpstreamTimeout(f"backend {backend.name} stalled mid-stream") from None
            except (aiohttp.ClientError, OSError, ValueError):
                raise UpstreamUnavailable(f"backend {backend.name} cut the stream") from None
        except SidecarError as exc:
            self._failed(attempt, exc)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            self._ended(attempt, "cancelled")
            raise
        finally:
            if response.content.at_eof():
                response.release()
            else:
                response.close()  # abandoned: drop the connection so the provider stops
        self._ended(attempt, "ok")


def _check_supported(
    ctx: RequestContext, adapter: Adapter, backend: RuntimeBackend, carriage: Carriage | None
) -> None:
    """Refuse (enforce) or warn about (warn, observe) what this backend cannot honour; never
    drop it silently."""
    names = adapter.unsupported(ctx.body, carriage)
    if not names:
        return
    admission = ctx.state.get(ADMISSION)
    mode = admission.mode if admission is not None else EnforcementMode.ENFORCE
    message = f"backend {backend.name} ({backend.provider.value}) cannot honour " + ", ".join(
        sorted(set(names))
    )
    if mode is EnforcementMode.ENFORCE:
        ctx.decisions.append(Decision("upstream", "blocked", message, "unsupported_parameter"))
        raise InvalidRequest(message, code="unsupported_parameter")
    verdict = "warned" if mode is EnforcementMode.WARN else "observed"
    ctx.decisions.append(
        Decision("upstream", verdict, message + " (left out)", "unsupported_parameter")
    )
    if mode is EnforcementMode.WARN:
        ctx.warn(message + " (left out)")


def _count(raw: bytes) -> Json:
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise UpstreamError(
            "the provider sent a malformed token count", code="upstream_bad_response"
        )
    return {"input_tokens": tokens}


async def _prefixed(
    first: list[Json] | None, rest: AsyncGenerator[list[Json], None]
) -> AsyncGenerator[list[Json], None]:
    try:
        if first is not None:
            yield first
            async for batch in rest:
                yield batch
    finally:
        await rest.aclose()


async def _read(response: aiohttp.ClientResponse, backend: RuntimeBackend) -> bytes:
    try:
        return await response.read()
    except TimeoutError:
        raise UpstreamTimeout(f"backend {backend.name} did not answer in time") from None
    except (aiohttp.ClientError, OSError):
        raise UpstreamUnavailable(f"backend {backend.name} cut the response") from None
