"""The tracer of a tracing sidecar and its export queue: spans off the hot path, never in the way.

Imported only when tracing is configured (:class:`~aigw_sidecar.settings.TracingConfig`): an
idle sidecar without it loads none of this.

A request only creates spans (:mod:`.spans`); when one ends, it is encoded at once on the
event loop (:meth:`~.otlp.Encoder.span`, a few microseconds) and its bytes appended to a
bounded queue. A thread of its own joins them into batches and sends them to the Collector
(HTTP/protobuf or gRPC). The thread holds the GIL only for the join and the sender's own
Python: it encoded whole batches once, in pure Python, and as the sidecar runs on one core
that took the loop's time in slices of CPython's 5 ms switch interval (issue 20: a traced
call's p99 was 4 ms against 0.5-1.2 without). A Collector that is down or slow
therefore never slows or fails a request: the sender retries in its thread within
``timeout_s``; meanwhile the queue fills and, once full, new spans are dropped and counted.
Every span is accounted for in ``aigw_trace_spans_exported_total`` or
``aigw_trace_spans_dropped_total{reason}`` (``queue_full``, ``export_failed``: a batch the
sender gave up on, ``shutdown``: still queued when the drain's flush time ran out), and
``aigw_trace_queue_spans`` is the queue's length. These metrics are updated from the export
thread too, so they are ``prometheus_client``'s locked ones.

Sampling: the ``OTEL_TRACES_SAMPLER`` samplers, parent-based ones honouring the caller's
``traceparent`` flag. Only sampled spans are queued.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from aigw_sidecar.settings import TracingConfig

from .otlp import Encoder, Sender, sender_of
from .semconv import AIGW_REQUEST_ID, GENAI_SEMCONV_VERSION, RESPONSE_ID, SCHEMA_URL, SCOPE
from .spans import Span, Tracer, sampler_of

__all__ = ["SDK_NAME", "SpanExport", "Tracing"]

_log = logging.getLogger("aigw.telemetry")
SDK_NAME = "aigw"
"""``telemetry.sdk.name`` of the resource: spans are made by aigw's own tracer."""


class SpanExport:
    """A bounded queue of ended spans and the thread that exports them (module docstring)."""

    def __init__(
        self,
        sender: Sender,
        encoder: Encoder,
        registry: CollectorRegistry,
        *,
        queue_size: int,
        batch_size: int,
        delay_s: float,
        stopping: threading.Event | None = None,
    ) -> None:
        self._sender = sender
        self._encoder = encoder
        self._queue: collections.deque[bytes] = collections.deque()
        """Encoded spans (:meth:`Encoder.span`): appended on the loop, taken by the thread."""
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._wake = threading.Event()
        self._stopping = stopping if stopping is not None else threading.Event()
        self._export_lock = threading.Lock()
        self.exported = Counter(
            "aigw_trace_spans_exported",
            "Spans the OTLP exporter delivered to the Collector.",
            registry=registry,
        )
        dropped = Counter(
            "aigw_trace_spans_dropped",
            "Spans lost: queue_full (the export queue was full), export_failed (the exporter "
            "gave up on the batch), shutdown (still queued when the drain ended).",
            ["reason"],
            registry=registry,
        )
        self._full = dropped.labels("queue_full")
        self._failed = dropped.labels("export_failed")
        self._shutdown = dropped.labels("shutdown")
        queued = Gauge(
            "aigw_trace_queue_spans", "Ended spans waiting for the exporter.", registry=registry
        )
        queued.set_function(lambda: len(self._queue))
        self._thread = threading.Thread(target=self._run, name="aigw-span-export", daemon=True)
        self._thread.start()

    def on_end(self, span: Span) -> None:
        """Encode and queue an ended sampled span (the event loop only: the encoder's caches
        are the loop's)."""
        queue = self._queue
        if len(queue) >= self._queue_size or self._stopping.is_set():
            self._full.inc()
            return
        queue.append(self._encoder.span(span))
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._delay_s)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._export_all(deadline=None)

    def _export_all(self, deadline: float | None) -> bool:
        """Export what is queued now; False if ``deadline`` (monotonic) passed first."""
        with self._export_lock:
            while self._queue:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                batch: list[bytes] = []
                while self._queue and len(batch) < self._batch_size:
                    batch.append(self._queue.popleft())
                self._export(batch)
        return True

    def _export(self, batch: Sequence[bytes]) -> None:
        try:
            sent = self._sender.send(self._encoder.request_of(batch))
        except Exception:  # noqa: BLE001 - a sender's failure must not end the thread
            _log.warning("span export raised; %d spans dropped", len(batch), exc_info=True)
            sent = False
        if sent:
            self.exported.inc(len(batch))
        else:
            self._failed.inc(len(batch))

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        return self._export_all(time.monotonic() + timeout_s)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop the thread, export what is queued within ``timeout_s``, count the rest."""
        if self._stopping.is_set():
            return
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            self._export_all(deadline)
        left = len(self._queue)
        self._queue.clear()
        if left:
            self._shutdown.inc(left)
            _log.warning("tracing: %d spans still queued at shutdown were dropped", left)
        if not self._thread.is_alive():
            self._sender.close()


class Tracing:
    """The tracer of one sidecar and the queue behind it; :meth:`shutdown` at the end."""

    def __init__(
        self,
        config: TracingConfig,
        registry: CollectorRegistry,
        *,
        resource: dict[str, str],
        sender: Sender | None = None,
    ) -> None:
        self.config = config
        attributes = {"service.name": config.service_name, **resource}
        attributes.update(dict(config.resource_attributes))
        attributes.update(
            {
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": SDK_NAME,
                "telemetry.sdk.version": _version(),
            }
        )
        stopping = threading.Event()
        self.export = SpanExport(
            sender if sender is not None else sender_of(config, stopping),
            Encoder(
                attributes,
                SCOPE,
                GENAI_SEMCONV_VERSION,
                SCHEMA_URL,
                unique=frozenset({AIGW_REQUEST_ID, RESPONSE_ID}),
            ),
            registry,
            queue_size=config.queue_size,
            batch_size=config.batch_size,
            delay_s=config.schedule_delay_s,
            stopping=stopping,
        )
        self.tracer = Tracer(sampler_of(config.sampler, config.ratio), self.export.on_end)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Export what is queued within ``timeout_s`` (a blocking call: run it in a thread)."""
        self.export.shutdown(timeout_s)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("aigw")
    except PackageNotFoundError:
        return "0"
