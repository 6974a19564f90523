"""Traces: a server span per request, a client span per upstream attempt (docs/telemetry.md).

Imported only when tracing is configured (with the tracer of :mod:`aigw_sidecar.telemetry.spans`).

:class:`Trace` (``Phase.OBSERVE``, inside the audit step) joins the caller's trace: it
parses the W3C ``traceparent``/``tracestate`` of the request (an invalid one starts a new
trace, a caller cannot break anything with it), starts the ``SERVER`` span at the request's
start and publishes the ids as ``ctx.state[TRACE]`` (the audit record's ``trace_id``). When
the request ends (``on_finish``, a stream: at its end) it sets the span's attributes, adds a
``gen_ai.guardrail.result`` event per decision, ends every attempt span at the time its
attempt ended and then the server span.

:class:`AttemptSpan` (``Stage.SPAN``: inside retries and breakers, so it sees every attempt
that calls upstream) starts one ``CLIENT`` span per attempt, named ``{operation} {model}``,
and puts its ``traceparent`` (and the caller's ``tracestate``; with ``OTEL_PROPAGATORS``
naming ``baggage``, the caller's baggage) on that attempt's own headers: the provider joins
the trace. Unsampled requests still propagate (flag ``00``) and set no attributes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aigw_sidecar.attempts import Attempt, AttemptMiddleware, CallNext, Stage, Upstream
from aigw_sidecar.context import AttemptRecord, RequestContext
from aigw_sidecar.keys import TRACE, TraceIds
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.state import Key
from aigw_sidecar.telemetry import attributes as attrs
from aigw_sidecar.telemetry import semconv as sc
from aigw_sidecar.telemetry.spans import Parent, Span, SpanKind, Tracer, parse_traceparent

from .trace_content import CONTENT, Content

__all__ = ["AttemptSpan", "Trace"]

_ROUTE_ATTRIBUTES = {
    route: {sc.HTTP_METHOD: "POST", sc.HTTP_ROUTE: route, sc.URL_PATH: route}
    for route in attrs.HTTP_ROUTES
}


@dataclass(slots=True, eq=False)
class _Spans:
    server: Span
    parent: Parent
    """The server span as the parent of the attempt spans."""
    offset_ns: int
    """Add to event-loop time x 1e9 to get Unix time in ns."""
    baggage: str | None
    attempts: list[tuple[AttemptRecord, Span]] = field(default_factory=list)

    def ns(self, loop_time: float) -> int:
        return int(loop_time * 1e9) + self.offset_ns


_SPANS: Key[_Spans] = Key("trace.spans")


class Trace(Step):
    """The request's server span (see the module docstring)."""

    name = "trace"
    phase = Phase.OBSERVE

    def __init__(self, tracer: Tracer, *, baggage: bool, dup: bool) -> None:
        self._tracer = tracer
        self._baggage = baggage
        self._dup = dup

    async def on_request(self, ctx: RequestContext) -> None:
        headers = ctx.headers
        state = ",".join(headers.getall("tracestate")) if "tracestate" in headers else None
        parent = parse_traceparent(headers.get("traceparent"), state)
        offset = time.time_ns() - int(asyncio.get_running_loop().time() * 1e9)
        route = attrs.http_route(ctx)
        span = self._tracer.start(
            f"POST {route}",
            SpanKind.SERVER,
            parent,
            int(ctx.started * 1e9) + offset,
            dict(_ROUTE_ATTRIBUTES[route]),
        )
        ctx.state[TRACE] = TraceIds(f"{span.trace_id:032x}", f"{span.span_id:016x}", span.recording)
        carried = None
        if self._baggage and "baggage" in headers:
            from aigw_sidecar.telemetry.baggage import passed_on  # noqa: PLC0415 - opt-in

            carried = passed_on(headers.get("baggage"))
        ctx.state[_SPANS] = _Spans(span, span.as_parent(), offset, carried)

    async def on_finish(self, ctx: RequestContext) -> None:
        spans = ctx.state.get(_SPANS)
        if spans is None:
            return
        tracer = self._tracer
        now = asyncio.get_running_loop().time()
        answering = ctx.attempts[-1] if ctx.answered_by is None and ctx.attempts else None
        content = ctx.state.get(CONTENT)
        for record, span in spans.attempts:
            if span.recording:
                span.attributes.update(
                    attrs.attempt_result_attributes(
                        ctx, record, answered=record is answering, dup=self._dup
                    )
                )
                if record.outcome != "ok":
                    span.error(record.outcome)
                if content is not None:
                    _content(span, content, answered=record is answering and record.outcome == "ok")
            tracer.end(span, spans.ns(record.ended if record.ended is not None else now))
        server = spans.server
        if server.recording:
            server.attributes.update(attrs.request_attributes(ctx))
            at = spans.ns(now)
            server.events.extend(
                (sc.GUARDRAIL_EVENT, at, event) for event in attrs.guardrail_events(ctx)
            )
            if ctx.error_type or ctx.status >= 500:
                server.error(ctx.error_type or str(ctx.status))
        tracer.end(server, spans.ns(now))


def _content(span: Span, content: Content, *, answered: bool) -> None:
    """The redacted prompt on every inference span of the request, the answer on the one
    that answered (``telemetry.captureContent``)."""
    truncated = False
    if content.input is not None:
        span.attributes[sc.INPUT_MESSAGES] = content.input.value
        truncated = content.input.truncated
    answer = content.answer() if answered else None
    if answer is not None:
        span.attributes[sc.OUTPUT_MESSAGES] = answer.value
        truncated = truncated or answer.truncated
    if truncated:
        span.attributes[sc.AIGW_CONTENT_TRUNCATED] = True


class AttemptSpan(AttemptMiddleware):
    """One client span per upstream attempt, and its ``traceparent`` upstream."""

    name = "trace.attempt"
    stage = Stage.SPAN

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    async def __call__(self, attempt: Attempt, call_next: CallNext) -> Upstream:
        spans = attempt.ctx.state.get(_SPANS)
        if spans is None:
            return await call_next(attempt)
        backend, record = attempt.backend, attempt.record
        operation = sc.OPERATIONS[attempt.ctx.operation]
        span = self._tracer.start(
            f"{operation} {backend.model}",
            SpanKind.CLIENT,
            spans.parent,
            spans.ns(record.started),
            attrs.attempt_attributes(attempt.ctx, backend, record.number)
            if spans.server.recording
            else None,
        )
        spans.attempts.append((record, span))
        headers = attempt.headers
        headers["traceparent"] = span.traceparent()
        if span.trace_state:
            headers["tracestate"] = span.trace_state
        if spans.baggage:
            headers["baggage"] = spans.baggage
        return await call_next(attempt)
