"""Memory of the real ``aigw sidecar`` process under maximum-size bodies (issue 11).

Sixteen concurrent bodies at the default limit (8 MiB), refused with
``cost_limit_exceeded``, three bursts in a row over kept-alive connections: the peak stays
under the injected memory limit (256 MiB) and, once they are answered, RSS comes back to
within a few MB of idle. Before the fix each idle keep-alive connection kept its last
request (and aiohttp's copy of its body) reachable, and freed heap pages were never given
back, so RSS stayed at ~350 MB while idle.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider

from .conftest import bundle_bytes, standard_docs, write_secrets

AIGW = Path(sys.executable).with_name("aigw")
LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+) \(admin 127\.0\.0\.1:(\d+)\)")
MAX_BODY = 8 * 1024 * 1024  # the sidecar's default --max-body-bytes
MEMORY_LIMIT_MB = 256  # what the operator injects
SETTLED_MB = 8  # "within a few MB of idle"


def _memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (the peak) of a process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


async def _settles(pid: int, ceiling: float) -> float:
    """RSS once it is at most ``ceiling`` (bounded wait: the trim follows the last answer)."""
    rss = _memory(pid)["VmRSS"]
    async with asyncio.timeout(10):
        while rss > ceiling:
            await asyncio.sleep(0.1)
            rss = _memory(pid)["VmRSS"]
    return rss


@pytest.mark.slow
async def test_rss_returns_to_idle_after_concurrent_maximum_size_bodies(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    docs = standard_docs(oai_fake, claude_fake)
    docs[-1]["spec"]["useCases"][0]["limits"] = {"maxCostUSD": "0.000000001"}
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(docs))
    process = await asyncio.create_subprocess_exec(
        str(AIGW), "sidecar", "--bundle", str(bundle), "--port", "0", "--admin-port", "0",
        "--admin-host", "127.0.0.1", "--secrets-dir", str(write_secrets(tmp_path)),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    text = "ab " * ((MAX_BODY - 100) // 3)
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": text}]}).encode()
    assert MAX_BODY - 200 < len(body) <= MAX_BODY
    try:
        log = b""
        async with asyncio.timeout(30):
            while (match := LISTENING.search(log)) is None:
                line = await process.stderr.readline()
                assert line, log.decode()
                log += line
        url = f"http://127.0.0.1:{int(match.group(1))}/v1/chat/completions"
        connector = aiohttp.TCPConnector(limit=16)  # 16 connections, kept alive between bursts
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(data: bytes) -> tuple[int, str]:
                headers = {"Content-Type": "application/json"}
                payload = io.BytesIO(data)  # (aiohttp warns about large raw bytes)
                async with session.post(url, data=payload, headers=headers) as response:
                    return response.status, (await response.json())["error"]["type"]

            small = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}]})
            await post(small.encode())  # warm up: every import and cache of a normal call
            idle = _memory(process.pid)["VmRSS"]
            for _ in range(3):
                answers = await asyncio.gather(*[post(body) for _ in range(16)])
                assert set(answers) == {(400, "cost_limit_exceeded")}
                settled = await _settles(process.pid, idle + SETTLED_MB)
            peak = _memory(process.pid)["VmHWM"]
        assert peak < MEMORY_LIMIT_MB, f"peak RSS {peak:.0f} MB"
        assert settled <= idle + SETTLED_MB
    finally:
        if process.returncode is None:
            process.terminate()
            async with asyncio.timeout(30):
                await process.wait()
