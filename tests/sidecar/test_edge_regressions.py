"""Regression tests of issue 11's edge items, through a running sidecar on loopback.

Each one failed on main before the fix (a 500, or a request admitted that must not be);
they import nothing but the test fixtures, so they run against any revision.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDict

from .conftest import (
    CANARY_ANTHROPIC,
    CANARY_OPENAI,
    HELLO_BODY,
    Gateway,
    bundle_bytes,
    policy,
)

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
MESSAGES = "/v1/messages"
USER: Any = {"role": "user", "content": "hi"}


async def _post(gateway: Gateway, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}{CHAT}",
            data=json.dumps(HELLO_BODY),
            headers=CIMultiDict([("Content-Type", "application/json"), *headers]),
        ) as response,
    ):
        return response.status, json.loads(await response.text())


@pytest.mark.parametrize(
    ("first", "second", "alone"),
    [
        (
            ("X-AIGW-Data-Classification", "public"),
            ("X-AIGW-Data-Classification", "restricted"),
            403,
        ),
        (("X-AIGW-Max-Cost-USD", "1"), ("X-AIGW-Max-Cost-USD", "0.0000000001"), 400),
        (("X-AIGW-Tenant", "team-a"), ("X-AIGW-Tenant", "evil-corp"), 403),
    ],
    ids=["classification", "max-cost", "tenant"],
)
async def test_repeated_headers_through_the_sidecar(
    gateway: Gateway, first: tuple[str, str], second: tuple[str, str], alone: int
) -> None:
    """Main admitted each pair on its first copy; the second copy alone is refused."""
    assert (await _post(gateway, [first]))[0] == 200
    status, body = await _post(gateway, [second])
    assert status == alone, body
    status, body = await _post(gateway, [first, second])
    assert status == 400, body
    assert body["error"]["code"] == "duplicate_header"
    assert len(gateway.oai_fake.recorder) == 1, "only the first, well-formed call went out"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-AIGW-Max-Latency-Ms", "²"),
        ("X-AIGW-Max-Latency-Ms", "9" * 5000),
        ("X-AIGW-Max-Latency-Ms", "100000000000000000000"),
        ("X-AIGW-Max-Cost-USD", "1e999999"),
    ],
    ids=["superscript-two", "5000-nines", "1e20", "cost-1e999999"],
)
async def test_number_headers_that_crashed_main_are_400(
    gateway: Gateway, header: str, value: str
) -> None:
    status, body = await _post(gateway, [(header, value)])
    assert status == 400, body
    assert body["error"]["code"] == "invalid_header"
    assert header in body["error"]["message"]
    assert value not in body["error"]["message"]
    assert len(gateway.oai_fake.recorder) == 0


async def _send(
    gateway: Gateway, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(
            f"{gateway.url}{path}",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response,
    ):
        text = await response.text()
        assert "Traceback" not in text
        return response.status, json.loads(text)


DEEP = "__deep__"


def _nested(depth: int) -> str:
    """JSON text of exactly ``depth`` nested containers (alternating list and object)."""
    opens = "".join("[" if level % 2 == 0 else '{"type":' for level in range(depth))
    closes = "".join("]" if level % 2 == 0 else "}" for level in reversed(range(depth)))
    return opens + '"leaf"' + closes


def _with_deep(body: bytes, depth: int) -> bytes:
    """``body`` with the string ``DEEP`` replaced by a value ``depth`` containers deep."""
    return body.replace(json.dumps(DEEP).encode(), _nested(depth).encode())


def _chat(**fields: Any) -> bytes:
    return json.dumps({**HELLO_BODY, **fields}).encode()


async def test_an_unhashable_role_is_400(gateway: Gateway) -> None:
    body = _chat(messages=[{"role": {}, "content": "hi"}])
    status, payload = await _send(gateway, CHAT, body)
    assert status == 400, payload
    assert payload["error"]["code"] == "invalid_field"
    assert "role" in payload["error"]["message"]


async def test_an_object_as_a_nested_type_is_served(gateway: Gateway) -> None:
    """``{"type": {...}}`` below a content part crashed the token counter on main."""
    part = {"type": "text", "text": "hi", "annotation": {"type": {"kind": "x"}}}
    status, payload = await _send(
        gateway, CHAT, _chat(messages=[{"role": "user", "content": [part]}])
    )
    assert status == 200, payload
    status, payload = await _send(gateway, CHAT, _chat(metadata={"note": {"type": ["image_url"]}}))
    assert status == 200, payload


async def test_the_positive_integer_message_reads_well(gateway: Gateway) -> None:
    status, payload = await _send(gateway, CHAT, _chat(n=0))
    assert status == 400
    assert payload["error"]["message"] == "'n' must be a positive integer"


# Depth: the body object is level 1, so a field holding _nested(d) makes the body d + 1 deep.
DEEP_PLACES = {
    "message-extra": _chat(messages=[{"role": "user", "content": "hi", "x": DEEP}]),
    "response-format": _chat(response_format={"type": "json_schema", "s": DEEP}),
    "tool-parameters": _chat(
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"p": DEEP}}}]
    ),
    "metadata": _chat(metadata={"m": DEEP}),
}


@pytest.mark.parametrize("place", list(DEEP_PLACES))
@pytest.mark.parametrize("depth", [255, 300, 1000])
async def test_deep_json_is_a_clear_400(gateway: Gateway, place: str, depth: int) -> None:
    status, payload = await _send(gateway, CHAT, _with_deep(DEEP_PLACES[place], depth))
    assert status == 400, payload
    assert payload["error"]["code"] in ("json_too_deep", "invalid_json")
    assert len(gateway.oai_fake.recorder) == 0


@pytest.mark.parametrize("depth", [255, 600])
async def test_deep_json_is_a_clear_400_on_every_endpoint(gateway: Gateway, depth: int) -> None:
    embed = json.dumps({"model": "embed", "input": "hi", "x": DEEP}).encode()
    status, payload = await _send(gateway, EMBED, _with_deep(embed, depth))
    assert status == 400, payload
    assert payload["error"]["code"] == "json_too_deep"
    anthropic = json.dumps(
        {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
         "metadata": {"user_id": "u", "x": DEEP}}
    ).encode()  # fmt: skip
    status, payload = await _send(gateway, MESSAGES, _with_deep(anthropic, depth))
    assert status == 400, payload
    assert payload["error"]["code"] == "json_too_deep"


async def test_json_at_the_depth_limit_is_served(gateway: Gateway) -> None:
    """64 levels in all (the body is one of them): served, the upstream body included."""
    at_limit = [
        _with_deep(_chat(metadata={"m": DEEP}), 62),  # body, metadata, 62 = 64
        _with_deep(_chat(messages=[{"role": "user", "content": "hi", "x": DEEP}]), 61),
        _with_deep(
            _chat(model="claude", messages=[{"role": "user", "content": "hi", "x": DEEP}]), 61
        ),
    ]
    for body in at_limit:
        status, payload = await _send(gateway, CHAT, body)
        assert status == 200, payload
    status, payload = await _send(gateway, CHAT, _with_deep(_chat(metadata={"m": DEEP}), 63))
    assert (status, payload["error"]["code"]) == (400, "json_too_deep")


async def _raw(gateway: Gateway, head: list[bytes], body: bytes) -> tuple[int, bytes, bytes]:
    """One request over a raw socket: (status, head, body) of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.api_port)
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1", *head]
    lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    try:
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    answer_head, _, answer_body = data.partition(b"\r\n\r\n")
    return int(answer_head.split()[1]), answer_head, answer_body


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br", b"zstd"])
async def test_a_content_encoding_that_does_not_match_the_body_is_400(
    gateway: Gateway, encoding: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    status, head, body = await _raw(
        gateway, [b"Content-Encoding: " + encoding, b"Connection: close"], _chat()
    )
    assert status == 400, head + body
    assert json.loads(body)["error"]["type"] == "invalid_request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no traceback logged"
    assert len(gateway.oai_fake.recorder) == 0


async def test_a_gzip_body_is_served(gateway: Gateway) -> None:
    status, head, body = await _raw(
        gateway, [b"Content-Encoding: gzip", b"Connection: close"], gzip.compress(_chat())
    )
    assert status == 200, head + body


@pytest.mark.parametrize(
    "line",
    [
        b"X-AIGW-Tenant: acme\x00evil",
        b"X-AIGW-Tenant: " + b"t" * 20_000,
        b"Bad Header: x",
        b"X-AIGW-Tenant: acme\rInjected: yes",
    ],
    ids=["nul", "huge", "space-in-name", "bare-cr"],
)
async def test_parser_level_400_names_no_software_and_echoes_nothing(
    gateway: Gateway, line: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    status, head, body = await _raw(gateway, [line], _chat())
    assert status == 400
    assert b"Server: aigw" in head
    for word in (b"aiohttp", b"Python"):
        assert word not in head + body
    for echoed in (b"acme", b"ttttt", b"Bad"):
        assert echoed not in body
    assert json.loads(body)["error"]["code"] == "malformed_http"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no traceback logged"


@pytest.mark.parametrize(
    "render",
    [
        lambda key: key[:14],
        lambda key: f"{key[:8]}****{key[-4:]}",
        lambda key: key.upper(),
        lambda key: base64.b64encode(key.encode()).decode(),
    ],
    ids=["prefix", "masked", "upper", "base64"],
)
async def test_provider_messages_lose_every_rendering_of_the_keys(
    gateway: Gateway, render: Any
) -> None:
    """The fake OpenAI provider quotes a rendering of its own key and of the Anthropic key."""
    leaks = [render(CANARY_OPENAI), render(CANARY_ANTHROPIC)]
    gateway.oai_fake.queue_fault(
        status=400, error_message=f"Incorrect API key provided: {leaks[0]}; also {leaks[1]}"
    )
    status, payload = await _send(gateway, CHAT, _chat())
    assert status == 400, payload
    message = payload["error"]["message"]
    assert "Incorrect API key provided" in message
    for leak in leaks:
        assert leak not in message
        assert leak.lower() not in message.lower()


async def test_a_pod_no_policy_selects_lists_no_models(gateway: Gateway) -> None:
    """Main listed every route to such a pod while refusing every call from it."""
    docs = [*gateway.docs[:-1], policy(["chat"])]
    docs[-1]["spec"]["selector"] = {"matchLabels": {"app": "someone-else"}}
    gateway.write_bundle(bundle_bytes(docs, revision=2))
    await gateway.wait_revision(2)
    async with gateway.openai() as client:
        assert [m.id async for m in client.models.list()] == []
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="chat", messages=[USER])
    async with gateway.anthropic() as claude:
        assert (await claude.models.list()).data == []


async def test_status_is_served_to_loopback_peers(gateway: Gateway) -> None:
    status = await gateway.status()
    assert status["bundle"]["revision"] == 1
