"""The audit log of one sidecar: a bounded queue off the hot path, one writer, the chain.

A finished call hands its record to :meth:`AuditLog.offer`, which appends it to an
in-memory queue and returns at once (the common case: no I/O, no serialisation, no hashing
on the request's path). One writer task takes the queue in batches, seals each record into
the hash chain (:mod:`.chain`: ``seq``, ``prev``, ``hash``), and hands the batch to every
sink (:mod:`.sinks`). A record is taken off the queue only once written, so a sink that
fails (a full disk) keeps it and is retried every second.

**Full queue** (``queue_size`` records waiting): the use case's ``audit.onQueueFull`` says
what happens. ``backpressure``: the call waits for room before it ends (and if the wait is
cancelled, e.g. by the drain, the record is still queued: a bound is worth less than a
lost record). ``drop``: the record is dropped, counted in ``aigw_audit_records_total
{outcome="dropped"}`` and in the ``dropped`` member of the next record written, so the
chain says how many are missing.

**Shutdown** (:meth:`close`, after the drain ended every call): the queue is written out,
an ``end`` record closes the chain, the file is fsynced. ``aigw audit verify`` reports a
chain without its end record as open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from aigw_contract import AuditQueueFull

from .chain import Chainer
from .record import SCHEMA, PodInfo
from .sinks import Sink, SinkError

__all__ = ["AuditLog"]

_log = logging.getLogger("aigw.audit")
_BATCH = 512
_LINGER_S = 0.005
"""The writer waits this long after a wake-up, so that the records of a burst share one
batch (one write call, one wake-up) instead of one each; shutdown does not wait."""
_RETRY_S = 1.0
_CLOSE_RETRIES = 5
Json = dict[str, Any]


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.critical("the audit writer stopped: no more records", exc_info=task.exception())


class AuditLog:
    """The queue, the writer task and the chain of one sidecar (see the module docstring)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        registry: CollectorRegistry,
        *,
        queue_size: int = 10_000,
        chain: str | None = None,
        pod: PodInfo | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.pod = pod or PodInfo({})
        """The pod identity every record states."""
        self.size = max(1, queue_size)
        self.chainer = Chainer(chain or "aud_" + secrets.token_hex(8))
        self._queue: deque[Json] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._dropped = 0
        """Records dropped since the last one written (goes into the next record)."""
        self.dropped_total = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.records = Counter(
            "aigw_audit_records",
            "Audit records, by outcome (written, dropped: queue full under onQueueFull drop).",
            ["outcome"],
            registry=registry,
        )
        self._written = self.records.labels("written")
        self._dropped_metric = self.records.labels("dropped")
        self.depth = Gauge(
            "aigw_audit_queue_depth", "Audit records waiting for the writer.", registry=registry
        )
        self.depth.set_function(lambda: len(self._queue))
        self.sink_errors = Counter(
            "aigw_audit_sink_errors",
            "Failed writes of audit batches, by sink (retried).",
            ["sink"],
            registry=registry,
        )
        self.removed = Counter(
            "aigw_audit_removed",
            "Audit files removed (retention, file_keep) and OTLP records given up, by reason.",
            ["reason"],
            registry=registry,
        )

    def count_removed(self, reason: str) -> None:
        self.removed.labels(reason).inc()

    @property
    def chain(self) -> str:
        return self.chainer.chain

    def status(self) -> dict[str, Any]:
        """For ``/aigw/status``: the chain, the sinks, the queue, what was written and dropped."""
        return {
            "chain": self.chain,
            "sinks": [sink.name for sink in self.sinks],
            "queued": len(self._queue),
            "queueSize": self.size,
            "written": self.chainer.seq,
            "dropped": self.dropped_total,
        }

    def start(self) -> None:
        """Open the sinks (a file found from an earlier run is rotated) and start writing."""
        for sink in self.sinks:
            sink.open()
        self._task = asyncio.create_task(self._run(), name="aigw-audit-writer")
        self._task.add_done_callback(_report_crash)

    def offer(self, record: Json, on_full: AuditQueueFull) -> asyncio.Future[None] | None:
        """Queue ``record``; None when done, else a future to await (backpressure)."""
        if len(self._queue) < self.size or self._closing:
            self._put(record)
            return None
        if on_full is AuditQueueFull.DROP or (self._task is not None and self._task.done()):
            # A writer that died (logged as critical) would hold back-pressured calls forever.
            self._dropped += 1
            self.dropped_total += 1
            self._dropped_metric.inc()
            return None
        return asyncio.ensure_future(self._wait_put(record))

    def _put(self, record: Json) -> None:
        self._queue.append(record)
        self._idle.clear()
        self._wake.set()

    async def _wait_put(self, record: Json) -> None:
        try:
            while len(self._queue) >= self.size and not self._closing:
                self._room.clear()
                await self._room.wait()
        finally:  # cancelled or not: the call happened, its record is kept
            self._put(record)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing and len(self._queue) < _BATCH:
                await asyncio.sleep(_LINGER_S)
            self._wake.clear()
            queue = self._queue
            while queue:
                batch = list(itertools.islice(queue, _BATCH))
                await self._write(batch)
                for _ in batch:
                    queue.popleft()
                self._room.set()
            self._idle.set()
            if self._closing:
                return

    async def _write(self, batch: list[Json]) -> None:
        lines = []
        retention = 0
        seal = self.chainer.next
        for record in batch:
            if self._dropped:
                record["dropped"] = self._dropped
                self._dropped = 0
            retention = max(retention, record.get("retention_days") or 0)
            try:
                lines.append(seal(record))
            except TypeError as exc:  # a bug in a record builder: keep the call, say so
                _log.error("audit record of %s is not JSON: %s", record.get("id"), exc)
                stub = {k: record.get(k) for k in ("schema", "kind", "id", "time", "status")}
                lines.append(seal({**stub, "unserializable": True}))
        attempts = 0
        pending = list(self.sinks)
        while pending:
            failed = []
            for sink in pending:
                try:
                    await sink.write(lines, retention)
                except SinkError as exc:
                    self.sink_errors.labels(sink.name).inc()
                    _log.error(
                        "audit sink %s failed, retrying in %ss: %s", sink.name, _RETRY_S, exc
                    )
                    failed.append(sink)
            pending = failed
            if pending:
                attempts += 1
                if self._closing and attempts >= _CLOSE_RETRIES:
                    _log.error("audit: %d record(s) could not be written at shutdown", len(lines))
                    return
                await asyncio.sleep(_RETRY_S)
        self._written.inc(len(lines))

    async def flush(self) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Write out the queue, close the chain with its ``end`` record, close the sinks."""
        self._closing = True
        self._room.set()
        end: Json = {
            "schema": SCHEMA,
            "kind": "end",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "retention_days": 0,
        }
        self._put(end)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sink in self.sinks:
            try:
                await sink.close()
            except (OSError, SinkError) as exc:
                _log.error("closing audit sink %s failed: %s", sink.name, exc)
