"""Client disconnects cancel upstream calls; credentials never leave the upstream request."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from .conftest import (
    APP_KEY,
    CANARY_ANTHROPIC,
    CANARY_OPENAI,
    HELLO_BODY,
    Gateway,
)


@pytest.mark.parametrize(
    ("path", "model"), [("/v1/chat/completions", "chat"), ("/v1/messages", "claude")]
)
async def test_client_disconnect_mid_stream_cancels_upstream(
    gateway: Gateway, path: str, model: str
) -> None:
    fake = gateway.oai_fake if model == "chat" else gateway.claude_fake
    fake.queue_fault(chunk_latency_ms=200, reply=" ".join(["word"] * 50))
    body = {**HELLO_BODY, "model": model, "stream": True, "max_tokens": 100}
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{gateway.url}{path}", json=body)
        assert response.status == 200
        first = await response.content.readline()
        assert first.startswith((b"data:", b"event:"))
        response.close()  # the caller goes away mid-stream
    exchanges = await fake.recorder.wait_for(lambda ex: bool(ex) and ex[-1].disconnected)
    assert exchanges[-1].stream
    assert not exchanges[-1].completed


async def test_client_disconnect_while_waiting_cancels_upstream(gateway: Gateway) -> None:
    """A non-streaming caller that gives up while the provider thinks cancels that call."""
    gateway.oai_fake.queue_fault(latency_ms=5000)
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(
            session.post(f"{gateway.url}/v1/chat/completions", json=HELLO_BODY)
        )
        await gateway.oai_fake.recorder.wait_for(bool)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    exchanges = await gateway.oai_fake.recorder.wait_for(lambda ex: ex[-1].disconnected)
    assert not exchanges[-1].completed


async def test_credentials_appear_nowhere_but_upstream(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    gateway.oai_fake.queue_fault(status=401, error_message=f"bad key {CANARY_OPENAI}")
    gateway.claude_fake.queue_fault(
        status=400, error_message=f"key {CANARY_ANTHROPIC} at http://10.0.0.1/v1"
    )
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {APP_KEY}"}) as session:
        for model in ("chat", "claude", "chat", "claude"):
            for stream in (False, True):
                body = {**HELLO_BODY, "model": model, "stream": stream}
                async with session.post(f"{gateway.url}/v1/chat/completions", json=body) as r:
                    seen.append(str(r.headers) + await r.text())
        for path in ("/aigw/status", "/metrics", "/readyz"):
            async with session.get(f"{gateway.admin_url}{path}") as r:
                seen.append(str(r.headers) + await r.text())
    everything = "\n".join(seen) + caplog.text
    assert CANARY_OPENAI not in everything
    assert CANARY_ANTHROPIC not in everything
    assert "10.0.0.1" not in everything
    assert "[credential]" in everything  # the provider's echo of the key was scrubbed
    assert repr(gateway.server.store.current).count("sk-") == 0
    for fake in (gateway.oai_fake, gateway.claude_fake):
        for exchange in fake.recorder.exchanges:
            assert APP_KEY not in str(exchange.headers)
