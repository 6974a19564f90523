"""A full audit queue follows the use case's ``audit.onQueueFull``, in the real process.

The sink is standard output into a pipe this test does not read: once the pipe's buffer is
full the writer's write blocks (in a thread: the event loop keeps serving), the queue fills
up to ``--audit-queue-size``, and from then on the policy decides. ``backpressure``: calls
wait (seen as requests in flight with the queue full) and every record arrives once the
pipe is read. ``drop``: calls go on, the records that did not fit are dropped and counted
(metric, and the ``dropped`` member of the next record written), the chain stays intact.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from aigw_fakeprovider import FakeProvider

from .auditing import SidecarProcess, aigw, policy_doc, priced, sidecar_process
from .conftest import route

CALLS = 120
QUEUE = 4


def docs(oai: FakeProvider, on_full: str) -> list[dict[str, Any]]:
    spec = {
        "useCases": [{"name": "default", "routes": ["chat"], "audit": {"onQueueFull": on_full}}]
    }
    return [
        route("chat", [priced("primary", oai.openai_base_url, "gpt-4o-mini", "1.50", "6.00")]),
        policy_doc(spec),
    ]


async def _metric(session: aiohttp.ClientSession, sidecar: SidecarProcess, name: str) -> float:
    async with session.get(f"http://127.0.0.1:{sidecar.admin}/metrics") as response:
        text = await response.text()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def _call(session: aiohttp.ClientSession, url: str, i: int) -> str:
    body = {"model": "chat", "messages": [{"role": "user", "content": f"number {i} " * 20}]}
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        assert response.status == 200
        await response.read()
        return response.headers["X-AIGW-Request-Id"]


async def _wait(check: Any) -> None:
    async with asyncio.timeout(60):
        while not await check():  # noqa: ASYNC110 - polling another process's metrics
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("on_full", ["backpressure", "drop"])
async def test_a_full_queue_follows_on_queue_full(
    tmp_path: Path, oai_fake: FakeProvider, on_full: str
) -> None:
    async with sidecar_process(
        tmp_path,
        docs(oai_fake, on_full),
        "--audit-stdout",
        "--audit-queue-size",
        str(QUEUE),
        stdout=asyncio.subprocess.PIPE,
    ) as sidecar:
        assert sidecar.process.stdout is not None
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(connector=connector) as session:
            calls = [asyncio.ensure_future(_call(session, sidecar.url, i)) for i in range(CALLS)]
            if on_full == "backpressure":

                async def held() -> bool:
                    depth = await _metric(session, sidecar, "aigw_audit_queue_depth")
                    waiting = await _metric(session, sidecar, "aigw_requests_in_flight")
                    return depth >= QUEUE and waiting >= 1

                await _wait(held)  # calls wait for room: the pipe is not read
                assert not all(c.done() for c in calls)
                reader = asyncio.ensure_future(sidecar.process.stdout.read())
                ids = await asyncio.gather(*calls)
            else:
                ids = await asyncio.gather(*calls)  # never waited for the unread pipe
                dropped = await _metric(
                    session, sidecar, 'aigw_audit_records_total{outcome="dropped"}'
                )
                assert dropped >= 1
                reader = asyncio.ensure_future(sidecar.process.stdout.read())
        assert await sidecar.stop() == 0
        out = await reader
    lines = out.splitlines()
    records = [orjson.loads(line) for line in lines]
    calls_seen = [r for r in records if r["kind"] == "call"]
    (tmp_path / "out.jsonl").write_bytes(out)
    verified = aigw("audit", "verify", tmp_path / "out.jsonl")
    assert verified.returncode == 0, verified.stdout
    if on_full == "backpressure":
        assert sorted(r["id"] for r in calls_seen) == sorted(ids)
        assert not any(r.get("dropped") for r in records)
    else:
        counted = sum(r.get("dropped", 0) for r in records)
        assert counted == dropped
        assert len(calls_seen) + counted == CALLS
        assert {r["id"] for r in calls_seen} <= set(ids)
        assert "dropped" in verified.stdout
