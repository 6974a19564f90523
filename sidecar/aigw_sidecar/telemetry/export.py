"""The OpenTelemetry SDK of a tracing sidecar: tracer provider, sampler, resource, exporter.

Imported only when tracing is configured (:class:`~aigw_sidecar.settings.TracingConfig`): an
idle sidecar without it loads no OpenTelemetry module at all.

**Off the hot path, never in the way.** A request only creates spans and, when they end,
appends them to a bounded queue (one ``deque.append``). A thread of its own exports them in
batches with the official OTLP exporter (HTTP/protobuf or gRPC). A Collector that is down or
slow therefore never slows or fails a request: the exporter retries in its thread within
``timeout_s``; meanwhile the queue fills and, once full, new spans are dropped and counted.
Every span is accounted for in ``aigw_trace_spans_exported_total`` or
``aigw_trace_spans_dropped_total{reason}`` (``queue_full``, ``export_failed``: a batch the
exporter gave up on, ``shutdown``: still queued when the drain's flush time ran out), and
``aigw_trace_queue_spans`` is the queue's length.

Sampling: the ``OTEL_TRACES_SAMPLER`` samplers, parent-based ones honouring the caller's
``traceparent`` flag. Only sampled spans are queued.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter, Gauge

from aigw_sidecar.settings import TracingConfig

from .semconv import GENAI_SEMCONV_VERSION, SCHEMA_URL, SCOPE

__all__ = ["SpanExport", "Tracing", "sampler_of"]

_log = logging.getLogger("aigw.telemetry")


def sampler_of(config: TracingConfig) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` (+ ``_ARG``) names."""
    name = config.sampler
    root: Sampler
    if name.endswith("always_on"):
        root = ALWAYS_ON
    elif name.endswith("always_off"):
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(config.ratio)
    return ParentBased(root) if name.startswith("parentbased_") else root


class SpanExport(SpanProcessor):
    """A bounded queue of ended spans and the thread that exports them (module docstring)."""

    def __init__(
        self,
        exporter: SpanExporter,
        registry: CollectorRegistry,
        *,
        queue_size: int,
        batch_size: int,
        delay_s: float,
    ) -> None:
        self._exporter = exporter
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
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

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        queue = self._queue
        if len(queue) >= self._queue_size or self._stopping.is_set():
            self._full.inc()
            return
        queue.append(span)
        if len(queue) >= self._batch_size:
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
                batch: list[ReadableSpan] = []
                while self._queue and len(batch) < self._batch_size:
                    batch.append(self._queue.popleft())
                self._export(batch)
        return True

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception:  # noqa: BLE001 - an exporter's failure must not end the thread
            _log.warning("span export raised; %d spans dropped", len(batch), exc_info=True)
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported.inc(len(batch))
        else:
            self._failed.inc(len(batch))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._export_all(time.monotonic() + timeout_millis / 1000)

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
        self._exporter.shutdown()


def _exporter(config: TracingConfig) -> SpanExporter:
    headers = dict(config.headers)
    if config.protocol == "grpc":
        import grpc  # type: ignore[import-untyped]  # noqa: PLC0415 - only gRPC loads it
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )

        credentials = None
        if config.certificate is not None:
            with open(config.certificate, "rb") as handle:
                credentials = grpc.ssl_channel_credentials(handle.read())
        return GrpcExporter(
            endpoint=config.endpoint,
            insecure=config.insecure or config.endpoint.startswith("http://"),
            credentials=credentials,
            headers=headers,
            timeout=config.timeout_s,
            compression=grpc.Compression.Gzip
            if config.compression == "gzip"
            else grpc.Compression.NoCompression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=config.endpoint,
        certificate_file=config.certificate,
        headers=headers,
        timeout=config.timeout_s,
        compression=Compression.Gzip if config.compression == "gzip" else Compression.NoCompression,
    )


def _sdk_version() -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version("opentelemetry-sdk")


class Tracing:
    """The tracer of one sidecar and the pipeline behind it; :meth:`shutdown` at the end."""

    def __init__(
        self,
        config: TracingConfig,
        registry: CollectorRegistry,
        *,
        resource: dict[str, str],
        exporter: SpanExporter | None = None,
    ) -> None:
        self.config = config
        attributes = {"service.name": config.service_name, **resource}
        attributes.update(dict(config.resource_attributes))
        self.export = SpanExport(
            exporter if exporter is not None else _exporter(config),
            registry,
            queue_size=config.queue_size,
            batch_size=config.batch_size,
            delay_s=config.schedule_delay_s,
        )
        attributes.update(
            {
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": _sdk_version(),
            }
        )
        # Resource(...) and not Resource.create(...): the latter reads OTEL_* itself, and the
        # environment is read in one place (aigw_cli), already in ``config``.
        self.provider = TracerProvider(
            sampler=sampler_of(config), resource=Resource(attributes), shutdown_on_exit=False
        )
        self.provider.add_span_processor(self.export)
        self.tracer: Tracer = self.provider.get_tracer(
            SCOPE, GENAI_SEMCONV_VERSION, schema_url=SCHEMA_URL
        )

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Export what is queued within ``timeout_s`` (a blocking call: run it in a thread)."""
        self.export.shutdown(timeout_s)
