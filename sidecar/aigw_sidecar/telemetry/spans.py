"""Spans, W3C trace context and sampling: a lean tracer for a sidecar that traces every call.

The OpenTelemetry SDK made a traced call cost more than twice an untraced one (issue 20's
profiles: bounded-attribute dicts, locks, span processors and the protobuf object model of
its exporter, all on the proxy's one core). A span here is a slotted object with a plain
``dict`` of attributes; starting one is a sampling decision and two random numbers; ending
one appends it to the export queue (:mod:`.export`), whose thread encodes OTLP by hand
(:mod:`.otlp`). What the SDK did that matters is kept, the same way:

- **IDs**: 128-bit trace and 64-bit span ids from a random generator seeded by the OS (never
  zero). A new trace sets the W3C level-2 "random trace id" flag (``03``/``02``), as the SDK
  does; a joined trace keeps the caller's.
- **Samplers** (``OTEL_TRACES_SAMPLER``): ``always_on``, ``always_off``, ``traceidratio``
  (sampled when the trace id's low 64 bits are below ``round(ratio * 2**64)``: the same
  choice as the SDK's and every other SDK's for one trace id), and their ``parentbased_``
  forms, which follow the parent's sampled flag. An unsampled span records nothing and is
  not exported, but it has ids and propagates (flag ``00``).
- **W3C trace context**: ``traceparent`` as the spec's grammar says (version ``ff``, an all-zero
  trace or span id, extra fields on version ``00``: invalid, the request starts a new trace);
  ``tracestate`` kept only when every list member is well formed (at most 32), else dropped.

Every span is ended exactly once by the trace step; only the event loop touches a span until
it is queued.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "Parent",
    "Sampler",
    "Span",
    "SpanKind",
    "Tracer",
    "parse_traceparent",
    "parse_tracestate",
    "sampler_of",
]

Attributes = dict[str, Any]

_TRACEPARENT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\r\n]*)?[ \t]*"
)
_TRACESTATE_KEY = re.compile(
    r"[a-z][_0-9a-z\-\*\/]{0,255}|[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13}"
)
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_MAX_TRACESTATE_MEMBERS = 32
SAMPLED = 0x01
RANDOM = 0x02
"""W3C Trace Context level 2: the trace id's right 7 bytes are random."""


class SpanKind(IntEnum):
    """OTLP's span kinds (the values are the wire's)."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3


@dataclass(frozen=True, slots=True)
class Parent:
    """The context a span starts under: a caller's ``traceparent`` or a span of ours."""

    trace_id: int
    span_id: int
    flags: int
    trace_state: str = ""
    remote: bool = True

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def parse_traceparent(header: str | None, state: str | None) -> Parent | None:
    """The caller's trace context, or None (absent or invalid: a new trace starts)."""
    if not header:
        return None
    match = _TRACEPARENT.fullmatch(header)
    if match is None:
        return None
    version, trace, span, flags, extra = match.groups()
    if version == "ff" or (version == "00" and extra):
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if not trace_id or not span_id:
        return None
    return Parent(trace_id, span_id, int(flags, 16), parse_tracestate(state))


def parse_tracestate(header: str | None) -> str:
    """A well-formed ``tracestate`` as it will be propagated, else "" (dropped whole)."""
    if not header:
        return ""
    members: list[str] = []
    keys: set[str] = set()
    for raw in header.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, value = member.partition("=")
        if not sep or key in keys:
            return ""
        if _TRACESTATE_KEY.fullmatch(key) is None or _TRACESTATE_VALUE.fullmatch(value) is None:
            return ""
        keys.add(key)
        members.append(f"{key}={value}")
    return ",".join(members) if len(members) <= _MAX_TRACESTATE_MEMBERS else ""


class Sampler:
    """An ``OTEL_TRACES_SAMPLER`` decision, made once per span at its start."""

    __slots__ = ("_bound", "_parent_based")

    def __init__(self, ratio: float, *, parent_based: bool) -> None:
        self._bound = round(ratio * (1 << 64))
        self._parent_based = parent_based

    def sampled(self, trace_id: int, parent: Parent | None) -> bool:
        if self._parent_based and parent is not None:
            return parent.sampled
        return (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < self._bound


def sampler_of(name: str, ratio: float) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` (+ ``_ARG``) names."""
    root = name.removeprefix("parentbased_")
    share = 1.0 if root == "always_on" else 0.0 if root == "always_off" else ratio
    return Sampler(share, parent_based=name.startswith("parentbased_"))


class Span:
    """One span; unsampled ones (``recording`` False) keep only their ids."""

    __slots__ = (
        "attributes",
        "end_ns",
        "events",
        "flags",
        "kind",
        "name",
        "parent",
        "recording",
        "span_id",
        "start_ns",
        "status_code",
        "status_message",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        *,
        trace_id: int,
        span_id: int,
        flags: int,
        parent: Parent | None,
        start_ns: int,
        attributes: Attributes | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.parent = parent
        self.trace_state = parent.trace_state if parent is not None else ""
        self.start_ns = start_ns
        self.end_ns = 0
        self.recording = bool(flags & SAMPLED)
        self.attributes: Attributes = {}
        if attributes is not None and self.recording:
            self.attributes = attributes
        self.events: list[tuple[str, int, Attributes]] = []
        self.status_code = 0
        """OTLP's status code: 0 unset, 1 ok, 2 error."""
        self.status_message = ""

    def as_parent(self) -> Parent:
        """This span as the parent of a child span (in this process)."""
        return Parent(self.trace_id, self.span_id, self.flags, self.trace_state, remote=False)

    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"

    def error(self, message: str) -> None:
        self.status_code, self.status_message = 2, message


class Tracer:
    """Starts spans (ids, sampling) and hands ended sampled ones to ``on_end``."""

    __slots__ = ("_bits", "_on_end", "_sampler")

    def __init__(self, sampler: Sampler, on_end: Callable[[Span], None]) -> None:
        self._sampler = sampler
        self._on_end = on_end
        self._bits = random.Random(os.urandom(32)).getrandbits  # noqa: S311 - ids, not secrets

    def start(
        self,
        name: str,
        kind: SpanKind,
        parent: Parent | None,
        start_ns: int,
        attributes: Attributes | None = None,
    ) -> Span:
        bits = self._bits
        if parent is None:
            trace_id = bits(128) or 1
            random_flag = RANDOM
        else:
            trace_id = parent.trace_id
            random_flag = parent.flags & RANDOM
        flags = random_flag | (SAMPLED if self._sampler.sampled(trace_id, parent) else 0)
        return Span(
            name,
            kind,
            trace_id=trace_id,
            span_id=bits(64) or 1,
            flags=flags,
            parent=parent,
            start_ns=start_ns,
            attributes=attributes,
        )

    def end(self, span: Span, end_ns: int) -> None:
        span.end_ns = end_ns
        if span.recording:
            self._on_end(span)
