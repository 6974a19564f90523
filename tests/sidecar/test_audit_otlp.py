"""Audit records as OTLP logs to the real (Go-built) OpenTelemetry Collector: every record
arrives, its body the sealed line unchanged (so the shipped copy verifies like the file);
a Collector that is down never stalls the calls (the file is the durable copy)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from aigw_e2e import Collector
from aigw_e2e.processes import free_port
from aigw_fakeprovider import FakeProvider

from .auditing import aigw, audited_gateway, policy_doc, priced, records
from .conftest import route

pytestmark = pytest.mark.k8s  # needs the pinned Go-built tools (otelcol)


def docs(oai: FakeProvider) -> list[dict[str, Any]]:
    spec = {"useCases": [{"name": "default", "routes": ["chat"]}]}
    return [
        route("chat", [priced("primary", oai.openai_base_url, "gpt-4o-mini", "1.50", "6.00")]),
        policy_doc(spec),
    ]


def _documents(collector: Collector) -> list[dict[str, Any]]:
    """The complete lines of the Collector's logs file (it may be writing the last one)."""
    path = collector.output("logs")
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _bodies(collector: Collector) -> list[tuple[str, dict[str, str]]]:
    found = []
    for document in _documents(collector):
        for resource in document.get("resourceLogs", []):
            for scope in resource.get("scopeLogs", []):
                for log in scope.get("logRecords", []):
                    attributes = {a["key"]: a["value"]["stringValue"] for a in log["attributes"]}
                    found.append((log["body"]["stringValue"], attributes))
    return found


async def test_records_reach_the_collector_as_otlp_logs_byte_for_byte(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, otel_collector: Collector
) -> None:
    async with audited_gateway(
        tmp_path,
        docs(oai_fake),
        oai_fake,
        claude_fake,
        otlp_endpoint=otel_collector.otlp_http_endpoint,
    ) as (gateway, path):
        client = gateway.openai()
        for i in range(5):
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"hello {i}"}]
            )
        await client.close()
    lines = path.read_bytes().splitlines()
    async with asyncio.timeout(30):
        while len(_bodies(otel_collector)) < len(lines):  # noqa: ASYNC110 - a file, polled
            await asyncio.sleep(0.1)
    shipped = _bodies(otel_collector)
    assert sorted(body.encode() for body, _ in shipped) == sorted(lines)  # each one, unchanged
    ids = {r["id"] for r in records(path)}
    assert {a.get("aigw.id") for _, a in shipped if a["aigw.kind"] == "call"} == ids
    copy = tmp_path / "shipped.jsonl"
    copy.write_bytes(b"".join(body.encode() + b"\n" for body, _ in shipped))
    verified = aigw("audit", "verify", "--strict", copy)
    assert verified.returncode == 0, verified.stdout


async def test_a_collector_that_is_down_never_stalls_the_calls(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    async with audited_gateway(
        tmp_path, docs(oai_fake), oai_fake, claude_fake, otlp_endpoint=nobody
    ) as (gateway, path):
        client = gateway.openai()
        for i in range(5):
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"hello {i}"}]
            )
        await client.close()
    assert len(records(path)) == 5  # the file has every record
    assert aigw("audit", "verify", "--strict", path).returncode == 0
