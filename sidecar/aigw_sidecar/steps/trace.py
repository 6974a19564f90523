"""Traces: a server span per request, a client span per upstream attempt (docs/telemetry.md).

Imported only when tracing is configured (it imports the OpenTelemetry API).

:class:`Trace` (``Phase.OBSERVE``, inside the audit step) joins the caller's trace: it
extracts the W3C ``traceparent``/``tracestate`` of the request (an invalid one starts a new
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

from opentelemetry import baggage as otel_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aigw_sidecar.attempts import Attempt, AttemptMiddleware, CallNext, Stage, Upstream
from aigw_sidecar.context import AttemptRecord, RequestContext
from aigw_sidecar.keys import TRACE, TraceIds
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.state import Key
from aigw_sidecar.telemetry import attributes as attrs
from aigw_sidecar.telemetry import semconv as sc

__all__ = ["AttemptSpan", "Trace"]

_TRACECONTEXT = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()


@dataclass(slots=True, eq=False)
class _Spans:
    server: Span
    parent: Context
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
        parent = _TRACECONTEXT.extract(headers)
        offset = time.time_ns() - int(asyncio.get_running_loop().time() * 1e9)
        route = attrs.http_route(ctx)
        span = self._tracer.start_span(
            f"POST {route}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=int(ctx.started * 1e9) + offset,
            attributes={sc.HTTP_METHOD: "POST", sc.HTTP_ROUTE: route, sc.URL_PATH: route},
        )
        context = span.get_span_context()
        ctx.state[TRACE] = TraceIds(
            f"{context.trace_id:032x}", f"{context.span_id:016x}", context.trace_flags.sampled
        )
        carried = None
        if self._baggage and "baggage" in headers:
            entries = otel_baggage.get_all(_BAGGAGE.extract(headers))
            if entries:
                carrier: dict[str, str] = {}
                _BAGGAGE.inject(carrier, _baggage_context(entries))
                carried = carrier.get("baggage")
        ctx.state[_SPANS] = _Spans(span, set_span_in_context(span), offset, carried)

    async def on_finish(self, ctx: RequestContext) -> None:
        spans = ctx.state.get(_SPANS)
        if spans is None:
            return
        now = asyncio.get_running_loop().time()
        answering = ctx.attempts[-1] if ctx.answered_by is None and ctx.attempts else None
        for record, span in spans.attempts:
            if span.is_recording():
                span.set_attributes(
                    attrs.attempt_result_attributes(
                        ctx, record, answered=record is answering, dup=self._dup
                    )
                )
                if record.outcome != "ok":
                    span.set_status(Status(StatusCode.ERROR, record.outcome))
            span.end(spans.ns(record.ended if record.ended is not None else now))
        server = spans.server
        if server.is_recording():
            server.set_attributes(attrs.request_attributes(ctx))
            for event in attrs.guardrail_events(ctx):
                server.add_event(sc.GUARDRAIL_EVENT, event)
            if ctx.error_type or ctx.status >= 500:
                server.set_status(Status(StatusCode.ERROR, ctx.error_type or str(ctx.status)))
        server.end(spans.ns(now))


def _baggage_context(entries: object) -> Context:
    context = Context()
    if isinstance(entries, dict):
        for key, value in entries.items():
            context = otel_baggage.set_baggage(str(key), str(value), context)
    return context


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
        span = self._tracer.start_span(
            f"{operation} {backend.model}",
            context=spans.parent,
            kind=SpanKind.CLIENT,
            start_time=spans.ns(record.started),
            attributes=attrs.attempt_attributes(attempt.ctx, backend, record.number)
            if spans.server.is_recording()
            else None,
        )
        spans.attempts.append((record, span))
        headers = attempt.headers
        _TRACECONTEXT.inject(headers, set_span_in_context(span))  # traceparent, tracestate
        if spans.baggage:
            headers["baggage"] = spans.baggage
        return await call_next(attempt)
