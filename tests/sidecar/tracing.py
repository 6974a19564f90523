"""A real ``aigw sidecar`` process exporting traces to a real Collector, and span readers."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from aigw_e2e import Collector

AIGW = Path(sys.executable).with_name("aigw")
LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+) \(admin 127\.0\.0\.1:(\d+)\)")
SERVER, CLIENT = 2, 3  # OTLP span kinds


def _value(value: Mapping[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    return value


def attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    """An OTLP JSON span's (or event's, or resource's) attributes as plain values."""
    return {a["key"]: _value(a["value"]) for a in item.get("attributes", [])}


def spans(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every span of the Collector's OTLP JSON lines, its resource under ``"resource"``."""
    found = []
    for doc in documents:
        for resource in doc.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    found.append({**span, "resource": attributes(resource.get("resource", {}))})
    return found


def trace_of(collector: Collector, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The ``count`` spans of one trace, once the Collector wrote them all."""
    documents = collector.wait_for(
        "traces", lambda docs: len([s for s in spans(docs) if s["traceId"] == trace_id]) >= count
    )
    return [s for s in spans(documents) if s["traceId"] == trace_id]


@dataclass
class Process:
    api: int
    admin: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    async def metrics(self) -> dict[str, float]:
        """The admin port's samples, ``name{labels}`` -> value."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.admin}/metrics") as response,
        ):
            text = await response.text()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples


@asynccontextmanager
async def traced_sidecar(
    bundle: Path, secrets: Path, env: Mapping[str, str], *extra: str
) -> AsyncIterator[Process]:
    """``aigw sidecar`` with ``env`` (the OTEL_* settings); SIGTERM and a clean exit at the end."""
    process = await asyncio.create_subprocess_exec(
        *(str(AIGW), "sidecar", "--bundle", str(bundle), "--port", "0", "--admin-port", "0"),
        *("--admin-host", "127.0.0.1", "--secrets-dir", str(secrets), "--drain-timeout", "5"),
        *extra,
        env={"PATH": "/usr/bin:/bin", **env},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = b""
    try:
        async with asyncio.timeout(60):
            while (match := LISTENING.search(log)) is None:
                line = await process.stderr.readline()
                assert line, log.decode()
                log += line
        api, admin = (int(port) for port in match.groups())
        yield Process(api, admin, process)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            log += await process.stderr.read()
            assert await process.wait() == 0, log.decode()
        assert b"Traceback" not in log, log.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
