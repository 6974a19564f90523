"""The real ``aigw sidecar`` process: serves, and on SIGTERM drains in-flight requests."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider

from .conftest import CANARY_OPENAI, HELLO_BODY, bundle_bytes, standard_docs, write_secrets

AIGW = Path(sys.executable).with_name("aigw")
LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+) \(admin 127\.0\.0\.1:(\d+)\)")


async def test_sigterm_drains_in_flight_requests_and_exits_zero(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
    process = await asyncio.create_subprocess_exec(
        str(AIGW),
        "sidecar",
        "--bundle",
        str(bundle),
        "--port",
        "0",
        "--admin-port",
        "0",
        "--admin-host",
        "127.0.0.1",
        "--secrets-dir",
        str(write_secrets(tmp_path)),
        "--drain-timeout",
        "20",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = b""
    try:
        async with asyncio.timeout(30):
            while (match := LISTENING.search(log)) is None:
                line = await process.stderr.readline()
                assert line, log.decode()
                log += line
        api, admin = (int(port) for port in match.groups())
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{admin}/readyz") as ready:
                assert ready.status == 200
            oai_fake.queue_fault(latency_ms=1500)
            in_flight = asyncio.ensure_future(
                session.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=HELLO_BODY)
            )
            await oai_fake.recorder.wait_for(bool, within=10)
            process.send_signal(signal.SIGTERM)
            async with await in_flight as response:
                assert response.status == 200
                assert "Echo: hello there" in await response.text()
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=HELLO_BODY)
        async with asyncio.timeout(30):
            log += await process.stderr.read()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = log.decode()
    assert "shutting down" in text
    assert "Traceback" not in text
    assert CANARY_OPENAI not in text


async def test_sigterm_cuts_what_outlives_the_drain_within_it(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    """A call the upstream holds for a minute: main waited the drain twice (aiohttp waits its
    shutdown timeout before and after cancelling) and then dropped the connection; now it is
    cut at the drain with a typed 503 and the process is gone within the drain's budget."""
    drain = 3.0
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
    process = await asyncio.create_subprocess_exec(
        str(AIGW),
        "sidecar",
        "--bundle",
        str(bundle),
        "--port",
        "0",
        "--admin-port",
        "0",
        "--admin-host",
        "127.0.0.1",
        "--secrets-dir",
        str(write_secrets(tmp_path)),
        "--drain-timeout",
        str(drain),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = b""
    try:
        async with asyncio.timeout(30):
            while (match := LISTENING.search(log)) is None:
                line = await process.stderr.readline()
                assert line, log.decode()
                log += line
        api = int(match.group(1))
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            oai_fake.queue_fault(latency_ms=60_000)
            in_flight = asyncio.ensure_future(
                session.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=HELLO_BODY)
            )
            await oai_fake.recorder.wait_for(bool, within=10)
            process.send_signal(signal.SIGTERM)
            signalled = loop.time()
            async with asyncio.timeout(30), await in_flight as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
                error = (await response.json())["error"]
                assert (error["type"], error["code"]) == ("upstream_unavailable", "shutting_down")
        async with asyncio.timeout(30):
            log += await process.stderr.read()
            assert await process.wait() == 0
        took = loop.time() - signalled
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # Not a speed figure: the bound is the mechanism (one drain budget, not two).
    assert took < 2 * drain, f"exited {took:.1f}s after SIGTERM with a {drain}s drain"
    text = log.decode()
    assert "cut 1 request(s)" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTLP protocol 'http/json' is not supported"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote", "OTEL_TRACES_SAMPLER=jaeger_remote"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "'novalue' is not key=value"),
    ],
)
async def test_otel_settings_it_cannot_honour_are_refused_at_start(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    """A sidecar never runs with telemetry settings it silently ignores: exit 2, and why."""
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}")
    process = await asyncio.create_subprocess_exec(
        *(str(AIGW), "sidecar", "--bundle", str(bundle), "--port", "0", "--admin-port", "0"),
        env={
            "PATH": "/usr/bin:/bin",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            variable: value,
        },
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert message in err.decode()
