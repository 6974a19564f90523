"""Where sealed audit lines go: a rotated JSON-lines file, standard output, OTLP logs.

The writer (:mod:`.log`) hands every sink the same batch of sealed lines. A sink either takes
the whole batch or raises :class:`SinkError`; the writer then keeps the batch and retries it
(so the queue fills and the use case's ``onQueueFull`` applies), except for the OTLP sink,
which keeps its own bounded backlog so that a Collector outage never stalls the calls (the
file is the durable copy; the chain shows what the Collector missed).

**The file** (the default in a pod: an ``emptyDir`` the injector mounts, which a log agent
tails): written unbuffered with one ``write`` per batch (readable by the agent at once),
fsynced on close. Before a batch would take it past ``file_max_bytes`` it is renamed to
``<stem>-<UTC time>-r<days>.jsonl`` (``<days>``: the longest ``retention_days`` of its
records) and a new one is opened; the chain goes on across files. Rotated files are removed
once older (by modification time) than their ``<days>``, and the oldest beyond
``file_keep`` are removed first; each removal is counted by reason. A file found at start
(a restarted container) is rotated first, its retention read from its records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiohttp
import orjson

__all__ = ["FileSink", "OtlpSink", "Sink", "SinkError", "StdoutSink"]

_log = logging.getLogger("aigw.audit")
_RETENTION = re.compile(rb'"retention_days":(\d{1,4})')
_DAY = 86_400.0


class SinkError(Exception):
    """A sink could not take a batch (it is kept and retried)."""


class Sink(Protocol):
    name: str

    def open(self) -> None: ...

    async def write(self, lines: Sequence[bytes], retention_days: int) -> None: ...

    async def close(self) -> None: ...


class FileSink:
    """The rotated JSON-lines file (see the module docstring)."""

    name = "file"

    def __init__(self, path: Path, *, max_bytes: int, keep: int, on_remove: RemovalCounter) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._on_remove = on_remove
        self._fd: int | None = None
        self._size = 0
        self._retention = 0
        """Longest retention of the records in the current file."""
        self._swept = 0.0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            found = [int(m) for m in _RETENTION.findall(self.path.read_bytes())]
            self._retention = max(found, default=30)
            self._rotate()
        self._open()
        self.sweep()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}"
        target = self.path.with_name(
            f"{self.path.stem}-{stamp}Z-r{max(1, self._retention)}{self.path.suffix}"
        )
        os.replace(self.path, target)
        self._retention = 0

    def rotated(self) -> list[tuple[Path, int]]:
        """The rotated files of this sink and their retention days, oldest first."""
        pattern = re.compile(
            re.escape(self.path.stem) + r"-\d{8}T\d{12}Z-r(\d{1,4})" + re.escape(self.path.suffix)
        )
        found = []
        for entry in self.path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match:
                found.append((entry, int(match.group(1))))
        found.sort(key=lambda item: item[0].name)
        return found

    def sweep(self) -> None:
        """Apply retention and ``file_keep`` to the rotated files."""
        self._swept = time.monotonic()
        now = time.time()
        files = self.rotated()
        for path, _days in files[: max(0, len(files) - self.keep)]:
            self._remove(path, "count")
        for path, days in files[max(0, len(files) - self.keep) :]:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime + days * _DAY < now:
                    self._remove(path, "retention")

    def _remove(self, path: Path, reason: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            self._on_remove(reason)
            if reason == "count":
                _log.warning("audit file %s removed before its retention (file_keep)", path.name)

    async def write(self, lines: Sequence[bytes], retention_days: int) -> None:
        data = b"".join(lines)
        try:
            if self._fd is None:
                self._open()
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
                self._open()
                self.sweep()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._size += written
        except OSError as exc:
            raise SinkError(f"{self.path}: {exc.strerror or exc}") from exc
        self._retention = max(self._retention, retention_days)
        if time.monotonic() - self._swept > 3600:
            self.sweep()

    async def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


def _write_out(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


class RemovalCounter(Protocol):
    def __call__(self, reason: str) -> None: ...


class StdoutSink:
    """One line per record on standard output (the sidecar logs on standard error)."""

    name = "stdout"

    def open(self) -> None:
        pass

    async def write(self, lines: Sequence[bytes], retention_days: int) -> None:
        # In a thread: a reader that stops reading (a stalled log agent) fills the pipe and
        # blocks the write, which must block the writer (the queue fills, onQueueFull
        # applies), never the event loop.
        try:
            await asyncio.to_thread(_write_out, b"".join(lines))
        except (OSError, ValueError) as exc:
            raise SinkError(f"stdout: {exc}") from exc

    async def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.buffer.flush()


class OtlpSink:
    """OTLP/HTTP JSON logs (``POST <endpoint>/v1/logs``): one log record per audit record,
    its body the sealed line as it is (so the shipped copy verifies), with the request id,
    tenant and use case as attributes. A failed export is kept (bounded backlog, oldest
    dropped and counted) and retried with the next batch."""

    name = "otlp"

    def __init__(
        self, endpoint: str, *, resource: dict[str, str], backlog: int, on_drop: RemovalCounter
    ) -> None:
        self.url = endpoint.rstrip("/") + "/v1/logs"
        self._resource = [
            {"key": k, "value": {"stringValue": v}} for k, v in sorted(resource.items()) if v
        ]
        self._backlog: list[bytes] = []
        self._max = backlog
        self._on_drop = on_drop
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        pass

    def _payload(self, lines: Sequence[bytes]) -> bytes:
        records = []
        for line in lines:
            text = line.rstrip(b"\n")
            head = orjson.loads(text)
            nanos = str(time.time_ns())
            attributes = [
                {"key": f"aigw.{k}", "value": {"stringValue": str(head[k])}}
                for k in ("id", "kind", "tenant", "use_case", "chain")
                if head.get(k) is not None
            ]
            records.append(
                {
                    "timeUnixNano": nanos,
                    "observedTimeUnixNano": nanos,
                    "severityNumber": 9,
                    "severityText": "INFO",
                    "body": {"stringValue": text.decode()},
                    "attributes": attributes,
                }
            )
        return orjson.dumps(
            {
                "resourceLogs": [
                    {
                        "resource": {"attributes": self._resource},
                        "scopeLogs": [{"scope": {"name": "aigw.audit"}, "logRecords": records}],
                    }
                ]
            }
        )

    async def write(self, lines: Sequence[bytes], retention_days: int) -> None:
        self._backlog.extend(lines)
        if len(self._backlog) > self._max:
            lost = len(self._backlog) - self._max
            del self._backlog[:lost]
            for _ in range(lost):
                self._on_drop("otlp")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        pending = self._backlog
        try:
            async with self._session.post(
                self.url,
                data=self._payload(pending),
                headers={"Content-Type": "application/json"},
            ) as response:
                if response.status >= 300:
                    _log.warning("OTLP audit export refused: HTTP %d", response.status)
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            _log.warning("OTLP audit export failed (%s): %d record(s) kept", exc, len(pending))
            return
        self._backlog = self._backlog[len(pending) :]

    async def close(self) -> None:
        if self._backlog and self._session is not None:
            await self.write([], 0)
        if self._backlog:  # the Collector is still unreachable: the file keeps them
            _log.warning("OTLP audit export: %d record(s) not sent at exit", len(self._backlog))
            for _ in self._backlog:
                self._on_drop("otlp")
            self._backlog = []
        if self._session is not None:
            await self._session.close()
            self._session = None
