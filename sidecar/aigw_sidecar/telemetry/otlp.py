"""OTLP traces on the wire: the protobuf encoding of a batch of spans, and its two transports.

Spans are encoded on the event loop as they end (:meth:`Encoder.span`, a few microseconds
each); the export thread (:mod:`.export`) only joins a batch (:meth:`Encoder.request_of`) and
sends it. The encoding is written out by hand from the
OTLP protocol's message definitions (``opentelemetry/proto/trace/v1/trace.proto``,
``common/v1/common.proto``, ``collector/trace/v1/trace_service.proto``): an
``ExportTraceServiceRequest`` of one ``ResourceSpans`` (the sidecar's resource, encoded once)
with one ``ScopeSpans`` (the ``aigw.sidecar`` scope, its version and schema URL). Building
the SDK's protobuf objects was the larger half of a traced call's cost; this is bytes
joined from a few cached pieces (attribute key/value pairs repeat from call to call: the
policy version, the tenant, the model are encoded once and reused).

Transports, both bounded by ``timeout_s`` per batch including retries: **HTTP/protobuf**
(``http.client``, one kept-alive connection, optional gzip and CA file) and **gRPC** (the
``TraceService/Export`` method through ``grpcio``, the bytes passed as they are; imported
only for that protocol). Transient failures are retried with exponential backoff (1 s,
2 s, ... with +/-20% jitter, ``Retry-After`` honoured) while the deadline allows: HTTP 429,
502, 503, 504 and connection errors; gRPC ``UNAVAILABLE``, ``RESOURCE_EXHAUSTED`` and the
other codes OTLP calls retryable. A batch is *exported* only when the Collector said so.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import random
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from aigw_sidecar.settings import TracingConfig

from .spans import Span

__all__ = ["Encoder", "Sender", "sender_of"]

_log = logging.getLogger("aigw.telemetry")
_CACHE_LIMIT = 8192
_RETRY_HTTP = frozenset({429, 502, 503, 504})


_SMALL = tuple(bytes((i,)) for i in range(0x80))
_U64 = struct.Struct("<Q").pack
_U32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_INT64 = 0xFFFF_FFFF_FFFF_FFFF
_TRUE, _FALSE = b"\x10\x01", b"\x10\x00"  # AnyValue.bool_value


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes, embedded messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode("utf-8", "surrogatepass"))


def _any_value(value: Any) -> bytes | None:  # noqa: PLR0911 - one return per kind
    """An ``AnyValue``; None for a type OTLP attributes cannot hold (left out)."""
    kind = type(value)
    if kind is str:
        data: bytes = value.encode("utf-8", "surrogatepass")
        return b"\x0a" + _varint(len(data)) + data
    if kind is int:
        return b"\x18" + _varint(value & _INT64)
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, list | tuple):
        items = [_any_value(v) for v in value]
        return _bytes_field(5, b"".join(_bytes_field(1, i) for i in items if i is not None))
    for base in (str, int, float):  # subclasses (an IntEnum, a str enum)
        if isinstance(value, base):
            return _any_value(base(value))
    return None


class Encoder:
    """Encodes batches of spans for one resource and scope (see the module docstring).

    Attribute pairs with a string, integer or boolean value repeat from call to call (the
    policy version, the tenant, the model, the status): they are encoded once and kept
    (at most 8,192, then the cache starts again), except for the keys in ``unique`` (the
    request id: a new value each time)."""

    def __init__(
        self,
        resource: Mapping[str, str],
        scope: str,
        version: str,
        schema_url: str,
        *,
        unique: frozenset[str] = frozenset(),
    ) -> None:
        self._unique = unique
        self._keys: dict[str, bytes] = {}
        """``KeyValue.key`` fields by key."""
        self._pairs: dict[tuple[bytes, str, type, object], bytes] = {}
        """Whole ``KeyValue`` fields by (tag, key, value type, value)."""
        self._names: dict[str, bytes] = {}
        self._resource = _bytes_field(1, self.attributes(resource.items(), b"\x0a"))
        self._scope = _bytes_field(1, _text(1, scope) + _text(2, version))
        self._schema = _text(3, schema_url)

    def _pair(self, tag: bytes, key: str, value: Any) -> bytes:
        encoded = _any_value(value)
        if encoded is None:
            return b""
        prefix = self._keys.get(key)
        if prefix is None:
            prefix = self._keys[key] = _text(1, key)
        body = prefix + b"\x12" + _varint(len(encoded)) + encoded
        return tag + _varint(len(body)) + body

    def attributes(self, items: Iterable[tuple[str, Any]], tag: bytes) -> bytes:
        """Repeated ``KeyValue`` fields (``tag``: the field's tag in the enclosing message)."""
        cache, unique, pair = self._pairs, self._unique, self._pair
        out: list[bytes] = []
        for key, value in items:
            kind = type(value)
            if (kind is str or kind is int or kind is bool) and key not in unique:
                index = (tag, key, kind, value)
                encoded = cache.get(index)
                if encoded is None:
                    if len(cache) >= _CACHE_LIMIT:
                        cache.clear()
                    encoded = cache[index] = pair(tag, key, value)
            else:
                encoded = pair(tag, key, value)
            out.append(encoded)
        return b"".join(out)

    def span(self, span: Span) -> bytes:
        name = self._names.get(span.name)
        if name is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            name = self._names[span.name] = _text(5, span.name)
        parts = [
            b"\x0a\x10" + span.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + span.span_id.to_bytes(8, "big"),
        ]
        if span.trace_state:
            parts.append(_text(3, span.trace_state))
        parent = span.parent
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        parts += (
            name,
            b"\x30" + _SMALL[int(span.kind)],
            b"\x39" + _U64(span.start_ns),
            b"\x41" + _U64(span.end_ns),
            self.attributes(span.attributes.items(), b"\x4a"),
        )
        for event_name, at_ns, attributes in span.events:
            event = (
                b"\x09"
                + _U64(at_ns)
                + _text(2, event_name)
                + self.attributes(attributes.items(), b"\x1a")
            )
            parts.append(b"\x5a" + _varint(len(event)) + event)
        if span.status_code:
            status = b"\x18" + _varint(span.status_code)
            if span.status_message:
                status = _text(2, span.status_message) + status
            parts.append(_bytes_field(15, status))
        # SpanFlags: the parent's remoteness is known (0x100), and whether it is (0x200).
        parts.append(b"\x85\x01" + _U32(0x300 if parent is not None and parent.remote else 0x100))
        body = b"".join(parts)
        return b"\x12" + _varint(len(body)) + body

    def request(self, spans: Sequence[Span]) -> bytes:
        """The ``ExportTraceServiceRequest`` of ``spans``."""
        return self.request_of([self.span(s) for s in spans])

    def request_of(self, encoded: Sequence[bytes]) -> bytes:
        """The ``ExportTraceServiceRequest`` of spans already encoded by :meth:`span`; reads
        only what ``__init__`` built, so any thread may call it."""
        scope_spans = _bytes_field(2, self._scope + b"".join(encoded) + self._schema)
        return _bytes_field(1, self._resource + scope_spans)


class Sender(Protocol):
    def send(self, payload: bytes) -> bool:
        """Deliver one request; True once the Collector accepted it."""
        ...

    def close(self) -> None: ...


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    return float(2**attempt) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter


class HttpSender:
    """OTLP/HTTP with protobuf bodies over one kept-alive connection."""

    def __init__(self, config: TracingConfig, stopping: threading.Event) -> None:
        url = urllib.parse.urlsplit(config.endpoint)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._path = (url.path or "/v1/traces") + (f"?{url.query}" if url.query else "")
        self._timeout = config.timeout_s
        self._gzip = config.compression == "gzip"
        self._headers = {**dict(config.headers), "Content-Type": "application/x-protobuf"}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._context = (
            ssl.create_default_context(cafile=config.certificate) if self._https else None
        )
        self._stopping = stopping
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is None:
            if self._https:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def send(self, payload: bytes) -> bool:
        body = gzip.compress(payload) if self._gzip else payload
        deadline = time.monotonic() + self._timeout
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                connection = self._connect(max(0.001, deadline - time.monotonic()))
                connection.request("POST", self._path, body, self._headers)
                response = connection.getresponse()
                response.read()
                if 200 <= response.status < 300:
                    return True
                if response.status not in _RETRY_HTTP:
                    _log.warning("OTLP export refused: HTTP %d", response.status)
                    return False
                header = response.getheader("Retry-After")
                retry_after = float(header) if header and header.isdigit() else None
            except (OSError, http.client.HTTPException) as exc:
                _log.debug("OTLP export failed: %s", type(exc).__name__)
                self.close()
            wait = _backoff(attempt, retry_after)
            attempt += 1
            if time.monotonic() + wait > deadline or self._stopping.wait(wait):
                return False

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class GrpcSender:
    """OTLP/gRPC: ``TraceService/Export`` with the encoded request as it is."""

    _METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    def __init__(self, config: TracingConfig, stopping: threading.Event) -> None:
        import grpc  # type: ignore[import-untyped]  # noqa: PLC0415 - only gRPC loads it

        self._grpc = grpc
        url = urllib.parse.urlsplit(
            config.endpoint if "://" in config.endpoint else f"//{config.endpoint}"
        )
        target = url.netloc or config.endpoint
        insecure = config.insecure or url.scheme == "http"
        if insecure:
            self._channel = grpc.insecure_channel(target)
        else:
            root = None
            if config.certificate is not None:
                with open(config.certificate, "rb") as handle:
                    root = handle.read()
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root))
        self._export = self._channel.unary_unary(self._METHOD)
        self._metadata = tuple((k.lower(), v) for k, v in config.headers)
        compression = grpc.Compression
        self._compression = (
            compression.Gzip if config.compression == "gzip" else compression.NoCompression
        )
        self._timeout = config.timeout_s
        self._stopping = stopping
        codes = grpc.StatusCode
        self._retryable = frozenset(
            {
                codes.CANCELLED,
                codes.DEADLINE_EXCEEDED,
                codes.RESOURCE_EXHAUSTED,
                codes.ABORTED,
                codes.OUT_OF_RANGE,
                codes.UNAVAILABLE,
                codes.DATA_LOSS,
            }
        )

    def send(self, payload: bytes) -> bool:
        deadline = time.monotonic() + self._timeout
        attempt = 0
        while True:
            try:
                self._export(
                    payload,
                    timeout=max(0.001, deadline - time.monotonic()),
                    metadata=self._metadata,
                    compression=self._compression,
                )
            except self._grpc.RpcError as error:
                code = error.code()
                if code not in self._retryable:
                    _log.warning("OTLP export refused: gRPC %s", code.name)
                    return False
            else:
                return True
            wait = _backoff(attempt, None)
            attempt += 1
            if time.monotonic() + wait > deadline or self._stopping.wait(wait):
                return False

    def close(self) -> None:
        self._channel.close()


def sender_of(config: TracingConfig, stopping: threading.Event) -> Sender:
    """The transport ``OTEL_EXPORTER_OTLP_PROTOCOL`` names."""
    if config.protocol == "grpc":
        return GrpcSender(config, stopping)
    return HttpSender(config, stopping)
