"""Policy fields whose effect no other test proved: the connect and idle timeouts of a route,
and a use case's maxLatencyMs, each through the real sidecar (aigw_contract.field_status
points at these tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from .conftest import Gateway, backend, bundle_bytes, route

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


def reload_with(gateway: Gateway, routes: list[dict[str, Any]], **use_case: Any) -> Any:
    """The gateway's resources plus ``routes``, its policy granting them and ``use_case``."""
    *resources, policy = gateway.docs
    names = [d["metadata"]["name"] for d in [*resources, *routes]]
    policy = {
        **policy,
        "spec": {"useCases": [{"name": "default", "routes": names, **use_case}]},
    }
    gateway.write_bundle(bundle_bytes([*resources, *routes, policy], revision=2))
    return gateway.wait_revision(2)


@pytest.fixture
def unconnectable() -> Iterator[str]:
    """A loopback port whose accept queue is full: the kernel drops new SYNs, so connecting
    hangs (as for a firewalled or overloaded host) instead of being refused."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # it connects in the background
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}/v1"
    for sock in (*fillers, server):
        sock.close()


async def test_connect_timeout_bounds_connecting(gateway: Gateway, unconnectable: str) -> None:
    # requestMs is an hour: only connectMs can end this call.
    hung = route(
        "hung",
        [backend("nowhere", "openai", unconnectable, "gpt-4o-mini")],
        timeouts={"connectMs": 200, "requestMs": 3_600_000},
    )
    await reload_with(gateway, [hung])
    async with gateway.openai() as client, asyncio.timeout(30):
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(model="hung", messages=HELLO)
    assert failed.value.status_code == 504
    assert failed.value.code == "upstream_timeout"


async def test_idle_timeout_ends_a_stalled_stream(gateway: Gateway) -> None:
    base = gateway.oai_fake.openai_base_url
    routes = [
        route(
            name,
            [backend("primary", "openai", base, "gpt-4o-mini", key="openai")],
            timeouts={"idleMs": idle_ms, "requestMs": 3_600_000},
        )
        for name, idle_ms in (("impatient", 100), ("patient", 5_000))
    ]
    await reload_with(gateway, routes)
    async with gateway.openai() as client, asyncio.timeout(30):
        gateway.oai_fake.queue_fault(chunk_latency_ms=400)
        stream = await client.chat.completions.create(
            model="impatient", messages=HELLO, stream=True
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
        # The same pauses within idleMs: the whole answer arrives.
        gateway.oai_fake.queue_fault(chunk_latency_ms=400)
        stream = await client.chat.completions.create(model="patient", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: hello there"


async def test_max_latency_bounds_the_upstream_call(gateway: Gateway) -> None:
    # The route would wait a minute (requestMs default); the use case allows 300 ms.
    await reload_with(gateway, [], limits={"maxLatencyMs": 300})
    gateway.oai_fake.queue_fault(latency_ms=3_000)
    async with gateway.openai() as client, asyncio.timeout(30):
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(model="chat", messages=HELLO)
    assert (failed.value.status_code, failed.value.code) == (504, "upstream_timeout")
