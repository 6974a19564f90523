"""A Collector outage never fails or holds up a request, and every span is accounted for.

The real ``aigw sidecar`` process and the real Collector: the Collector is stopped in the
middle of the load; then an exporter that hangs (a listener that accepts and never answers).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from aigw_e2e import Collector
from aigw_fakeprovider import FakeProvider

from .conftest import HELLO_BODY, bundle_bytes, standard_docs, write_secrets
from .tracing import Process, spans, traced_sidecar

pytestmark = pytest.mark.k8s  # the Collector is one of the Go-built tools

CALLS = 128


async def _load(process: Process, calls: int) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(
                f"{process.url}/v1/chat/completions", json=HELLO_BODY
            ) as response:
                await response.read()
                return response.status

        statuses: list[int] = []
        for _ in range(calls // 8):  # 8 at a time
            statuses += await asyncio.gather(*(one() for _ in range(8)))
        return statuses


def _accounted(samples: dict[str, float]) -> tuple[float, float, float]:
    exported = samples.get("aigw_trace_spans_exported_total", 0.0)
    dropped = sum(v for k, v in samples.items() if k.startswith("aigw_trace_spans_dropped_total"))
    return exported, dropped, samples.get("aigw_trace_queue_spans", 0.0)


async def test_a_stopped_collector_loses_spans_it_counts_and_no_request(
    tmp_path: Path, otel_collector: Collector, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otel_collector.otlp_http_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "20",
        "OTEL_BSP_MAX_QUEUE_SIZE": "40",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "500",
    }
    async with traced_sidecar(bundle, write_secrets(tmp_path), env) as sidecar:
        before = await _load(sidecar, CALLS // 2)
        otel_collector.stop()  # flushes what it received to its file, then it is gone
        after = await _load(sidecar, CALLS // 2)
        assert before + after == [200] * CALLS
        for _ in range(200):  # the exporter gives up on what it holds within its timeout
            exported, dropped, queued = _accounted(await sidecar.metrics())
            if queued == 0 and exported + dropped == 2 * CALLS:
                break
            await asyncio.sleep(0.1)
        samples = await sidecar.metrics()
    exported, dropped, queued = _accounted(samples)
    # Two spans a call: each one either reached the Collector or is counted as lost.
    assert exported + dropped == 2 * CALLS
    assert dropped >= 1
    assert (
        samples['aigw_trace_spans_dropped_total{reason="export_failed"}']
        + samples['aigw_trace_spans_dropped_total{reason="queue_full"}']
        == dropped
    )
    # What the sidecar counts as exported is what the Collector wrote.
    assert len(spans(otel_collector.read("traces"))) == exported


async def test_a_collector_that_never_answers_holds_up_no_request(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    """The exporter waits up to 10 minutes for an answer (in its own thread); every call is
    answered meanwhile, the queue overflows into the drop counter, and SIGTERM still exits."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)  # accepts connections, never reads or answers
        port = hole.getsockname()[1]
        bundle = tmp_path / "bundle.json"
        bundle.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_BSP_SCHEDULE_DELAY": "10",
            "OTEL_BSP_MAX_QUEUE_SIZE": "16",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "600000",
        }
        async with traced_sidecar(bundle, write_secrets(tmp_path), env) as sidecar:
            async with asyncio.timeout(60):  # a bound on the mechanism, not a speed figure
                statuses = await _load(sidecar, CALLS)
            assert statuses == [200] * CALLS
            samples = await sidecar.metrics()
        assert samples['aigw_trace_spans_dropped_total{reason="queue_full"}'] >= 2 * CALLS - 20
        assert samples.get("aigw_trace_spans_exported_total", 0.0) == 0
