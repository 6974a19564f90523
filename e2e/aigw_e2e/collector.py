"""A real OpenTelemetry Collector (the pinned otelcol-aigw build) for telemetry tests.

It receives OTLP over gRPC and HTTP on free loopback ports and writes everything it gets as
OTLP JSON lines to files (``traces.jsonl``, ``metrics.jsonl``, ``logs.jsonl``), which tests
read back with :meth:`Collector.read`. Its own telemetry is switched off so that several
collectors never fight over the default metrics port.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aigw_e2e.errors import ControlPlaneError
from aigw_e2e.processes import Process, free_ports, start_process
from aigw_e2e.tools import Tools

__all__ = ["Collector"]

SIGNALS = ("traces", "metrics", "logs")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Collector:
    """One collector process; use as a context manager or call start() and stop()."""

    def __init__(self, tools: Tools, root: Path, *, start_timeout: float = 60.0) -> None:
        self.tools = tools
        self.root = root
        self.grpc_port, self.http_port = free_ports(2)
        self.start_timeout = start_timeout
        self.process: Process | None = None

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL for OTLP/HTTP exporters (they append /v1/traces and so on)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self, signal: str) -> Path:
        return self.root / f"{signal}.jsonl"

    def config(self) -> dict[str, Any]:
        exporters = {f"file/{s}": {"path": str(self.output(s))} for s in SIGNALS}
        return {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": self.otlp_grpc_endpoint},
                        "http": {"endpoint": f"127.0.0.1:{self.http_port}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": exporters,
            "service": {
                "telemetry": {"metrics": {"level": "none"}},
                "pipelines": {
                    s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": [f"file/{s}"]}
                    for s in SIGNALS
                },
            },
        }

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "otelcol.json"
        config.write_text(json.dumps(self.config(), indent=2))
        self.process = start_process(
            "otelcol",
            [self.tools.path("otelcol"), f"--config=file:{config}"],
            self.root / "otelcol.log",
        )
        try:
            self.process.wait_ready(
                lambda: _port_open(self.http_port) and _port_open(self.grpc_port),
                self.start_timeout,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def read(self, signal: str) -> list[dict[str, Any]]:
        """Every OTLP JSON document written so far for ``signal`` (traces, metrics or logs)."""
        path = self.output(signal)
        if not path.exists():
            return []
        text = path.read_text()
        # The file exporter writes through a buffer: a line may be caught half written. Only
        # complete lines count; the rest is read on the next call.
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_for(
        self, signal: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Poll :meth:`read` until ``predicate(documents)`` is true; raise if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            documents = self.read(signal)
            if predicate(documents):
                return documents
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"the collector never wrote the expected {signal}; got {documents!r}"
                )
            time.sleep(0.1)
