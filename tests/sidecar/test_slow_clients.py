"""Slow and stalled callers are bounded by settings (issue 11): on main a silent connection,
one trickling its headers, an idle keep-alive one and a half-sent body were never closed,
and a caller that stopped reading held its answer forever.

Every wait here is bounded (asyncio.timeout) so a regression fails instead of hanging; none
asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import (
    HELLO_BODY,
    Gateway,
    bundle_bytes,
    sidecar_settings,
    standard_docs,
    write_secrets,
)

BOUND = 0.5
"""Every timeout of the gateway under test, in seconds."""
WAIT = 15
"""How long a test waits for the sidecar to act before it fails."""


@pytest.fixture
async def strict(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[Gateway]:
    secrets = write_secrets(tmp_path)
    docs = standard_docs(oai_fake, claude_fake)
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(docs))
    settings = sidecar_settings(
        bundle, secrets, idle_timeout_s=BOUND, body_timeout_s=BOUND, send_timeout_s=BOUND
    )
    async with SidecarServer(settings) as server:
        yield Gateway(server, oai_fake, claude_fake, bundle, docs)


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    data = b""
    async with asyncio.timeout(WAIT):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _connect(gateway: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", gateway.server.api_port)


async def _serves(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        answer = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "still there?"}]
        )
    assert answer.choices[0].message.content


async def test_a_silent_connection_is_closed(strict: Gateway) -> None:
    reader, writer = await _connect(strict)
    assert await _closed_by_server(reader) == b""
    await _close(writer)
    await _serves(strict)


async def test_a_request_head_sent_byte_by_byte_is_closed(strict: Gateway) -> None:
    reader, writer = await _connect(strict)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-AIGW-User: " + b"u" * 200

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)  # the whole head would take longer than WAIT

    sender = asyncio.create_task(trickle())
    try:
        assert await _closed_by_server(reader) == b""
    finally:
        sender.cancel()
        await _close(writer)
    await _serves(strict)


async def test_an_idle_keep_alive_connection_is_closed(strict: Gateway) -> None:
    reader, writer = await _connect(strict)
    body = json.dumps(HELLO_BODY).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    await writer.drain()
    answer = await _closed_by_server(reader)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    await _close(writer)


async def test_a_body_that_stalls_is_408(strict: Gateway) -> None:
    reader, writer = await _connect(strict)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"model": "chat",'
    )
    await writer.drain()
    answer = await _closed_by_server(reader)
    await _close(writer)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body)["error"]["code"] == "body_timeout"
    assert len(strict.oai_fake.recorder) == 0
    await _serves(strict)


async def _in_flight(gateway: Gateway) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.admin_url}/metrics") as response,
    ):
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("aigw_requests_in_flight "))
    return float(line.split()[1])


async def test_a_caller_that_stops_reading_an_answer_is_dropped(strict: Gateway) -> None:
    """A 12 MB embeddings answer to a caller that reads nothing: the write is bounded by
    send_timeout_s, then the connection is dropped and the call ends."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", strict.server.api_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    body = json.dumps({"model": "embed", "input": [f"text {i}" for i in range(400)]}).encode()
    writer.write(
        b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    await writer.drain()
    await strict.oai_fake.recorder.wait_for(bool, within=WAIT)
    async with asyncio.timeout(WAIT):
        while True:
            if await _in_flight(strict) == 0:
                break
            await asyncio.sleep(0.05)
    with contextlib.suppress(ConnectionError):  # what the kernel held, then EOF or a reset
        await _closed_by_server(reader)
    await _close(writer)
    await _serves(strict)


async def test_a_caller_that_stops_reading_a_stream_is_dropped(strict: Gateway) -> None:
    """On main the upstream stream and the call stayed open as long as the caller did not
    read (idleMs bounds only the upstream side)."""
    strict.oai_fake.queue_fault(reply="word " * 400_000)  # 400,000 events, about 60 MB
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", strict.server.api_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    body = json.dumps({**HELLO_BODY, "stream": True}).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    await writer.drain()
    await strict.oai_fake.recorder.wait_for(bool, within=WAIT)
    async with asyncio.timeout(WAIT):
        while True:
            if await _in_flight(strict) == 0:
                break
            await asyncio.sleep(0.05)
    with contextlib.suppress(ConnectionError):
        received = await _closed_by_server(reader)
        assert b"data: [DONE]" not in received, "the caller never got the whole answer"
    await _close(writer)
    await _serves(strict)
