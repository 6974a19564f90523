"""The drain (SIGTERM) ends within its budget: what did not finish is cut, a stream with a
typed error event in the caller's format (issue 11). The real process: test_process.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import Gateway, bundle_bytes, sidecar_settings, standard_docs, write_secrets

DRAIN = 1.0
Tasks = list[asyncio.Task[None]]


@pytest.fixture
async def draining(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[Gateway]:
    docs = standard_docs(oai_fake, claude_fake)
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(docs))
    server = SidecarServer(sidecar_settings(bundle, write_secrets(tmp_path), drain_timeout_s=DRAIN))
    await server.start()
    try:
        yield Gateway(server, oai_fake, claude_fake, bundle, docs)
    finally:
        await server.stop()  # a second stop after the test's own is harmless


async def _read_openai(draining: Gateway, texts: list[str], stopping: Tasks) -> None:
    """Read a slow stream; start the drain after the second chunk."""
    async with draining.openai() as client:
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async with asyncio.timeout(30):
            async for chunk in stream:
                texts.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
                if len(texts) == 2:
                    stopping.append(asyncio.create_task(draining.server.stop()))


async def _read_anthropic(draining: Gateway, events: list[str], stopping: Tasks) -> None:
    async with (
        draining.anthropic() as client,
        asyncio.timeout(30),
        client.messages.stream(
            model="chat", max_tokens=500, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        async for event in stream:
            events.append(event.type)
            if len(events) == 3:
                stopping.append(asyncio.create_task(draining.server.stop()))


async def test_an_openai_stream_cut_by_the_drain_ends_with_a_typed_event(
    draining: Gateway,
) -> None:
    draining.oai_fake.queue_fault(chunk_latency_ms=200, reply="slow " * 200)
    texts: list[str] = []
    stopping: Tasks = []
    with pytest.raises(openai.APIError) as info:
        await _read_openai(draining, texts, stopping)
    await stopping.pop()
    assert len(texts) >= 2
    assert "shutting down" in str(info.value)


async def test_an_anthropic_stream_cut_by_the_drain_ends_with_a_typed_event(
    draining: Gateway,
) -> None:
    draining.oai_fake.queue_fault(chunk_latency_ms=200, reply="slow " * 200)
    events: list[str] = []
    stopping: Tasks = []
    with pytest.raises(anthropic.APIStatusError) as info:
        await _read_anthropic(draining, events, stopping)
    await stopping.pop()
    assert "message_start" in events
    assert "shutting down" in str(info.value)
