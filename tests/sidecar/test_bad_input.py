"""Bad input of every kind gets a typed 4xx: never a 5xx, never a traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from .conftest import Gateway

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
MESSAGES = "/v1/messages"
USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> bytes:
    body: dict[str, Any] = {"model": "chat", "messages": USER}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def embed(**fields: Any) -> bytes:
    return json.dumps({"model": "embed", **fields}).encode()


def anth(**fields: Any) -> bytes:
    body: dict[str, Any] = {"model": "chat", "max_tokens": 5, "messages": USER}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


NON_UTF8 = b'{"model": "chat\xff\xfe", "messages": []}'
HUGE = chat(messages=[{"role": "user", "content": "x" * 200_000}])

# (id, method, path, body bytes, expected status, expected error code or None)
CASES: list[tuple[str, str, str, bytes, int, str | None]] = [
    ("malformed-json", "POST", CHAT, b'{"model": "chat", "messages": [', 400, "invalid_json"),
    ("empty-body", "POST", CHAT, b"", 400, "invalid_json"),
    ("json-array", "POST", CHAT, b"[1, 2, 3]", 400, "invalid_json"),
    ("json-string", "POST", CHAT, b'"hello"', 400, "invalid_json"),
    ("nan-literal", "POST", CHAT, b'{"model": "chat", "temperature": NaN}', 400, "invalid_json"),
    ("non-utf8", "POST", CHAT, NON_UTF8, 400, "invalid_encoding"),
    ("deep-nesting", "POST", CHAT, b"[" * 5000 + b"]" * 5000, 400, "invalid_json"),
    ("missing-model", "POST", CHAT, chat(model=...), 400, "missing_field"),
    ("model-not-string", "POST", CHAT, chat(model=123), 400, "invalid_field"),
    ("model-empty", "POST", CHAT, chat(model=""), 400, "invalid_field"),
    ("model-too-long", "POST", CHAT, chat(model="m" * 300), 400, "invalid_field"),
    ("unknown-route", "POST", CHAT, chat(model="gpt-5-turbo"), 404, "model_not_found"),
    ("missing-messages", "POST", CHAT, chat(messages=...), 400, "missing_field"),
    ("messages-not-list", "POST", CHAT, chat(messages="hi"), 400, "invalid_field"),
    ("messages-empty", "POST", CHAT, chat(messages=[]), 400, "invalid_field"),
    ("message-not-object", "POST", CHAT, chat(messages=["hi"]), 400, "invalid_field"),
    ("bad-role", "POST", CHAT, chat(messages=[{"role": "wizard", "content": "x"}]), 400, None),
    ("content-number", "POST", CHAT, chat(messages=[{"role": "user", "content": 7}]), 400, None),
    (
        "part-without-type",
        "POST",
        CHAT,
        chat(messages=[{"role": "user", "content": [{"text": "x"}]}]),
        400,
        None,
    ),
    ("tool-without-id", "POST", CHAT, chat(messages=[{"role": "tool", "content": "x"}]), 400, None),
    (
        "tool-calls-not-list",
        "POST",
        CHAT,
        chat(messages=[{"role": "assistant", "tool_calls": "x"}]),
        400,
        None,
    ),
    ("stream-not-bool", "POST", CHAT, chat(stream="yes"), 400, "invalid_field"),
    ("max-tokens-negative", "POST", CHAT, chat(max_tokens=-5), 400, "invalid_field"),
    ("max-tokens-bool", "POST", CHAT, chat(max_tokens=True), 400, "invalid_field"),
    ("max-tokens-float", "POST", CHAT, chat(max_tokens=1.5), 400, "invalid_field"),
    ("temperature-range", "POST", CHAT, chat(temperature=7), 400, "invalid_field"),
    ("temperature-string", "POST", CHAT, chat(temperature="hot"), 400, "invalid_field"),
    ("tools-shape", "POST", CHAT, chat(tools=[{"type": "function"}]), 400, "invalid_field"),
    ("tool-choice", "POST", CHAT, chat(tool_choice="maybe"), 400, "invalid_field"),
    ("stop-too-many", "POST", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, "invalid_field"),
    ("huge-body", "POST", CHAT, HUGE, 413, "body_too_large"),
    (
        "bad-tool-arguments-to-anthropic",
        "POST",
        CHAT,
        chat(
            model="claude",
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{nope"}}],
                }
            ],
        ),
        400,
        "invalid_tool_call",
    ),
    ("n-to-anthropic", "POST", CHAT, chat(model="claude", n=2), 400, "invalid_n"),
    ("embed-missing-input", "POST", EMBED, embed(), 400, "missing_field"),
    ("embed-mixed-input", "POST", EMBED, embed(input=["a", 1]), 400, None),
    ("embed-empty-list", "POST", EMBED, embed(input=[]), 400, None),
    ("embed-encoding", "POST", EMBED, embed(input="a", encoding_format="hex"), 400, None),
    ("messages-missing-max-tokens", "POST", MESSAGES, anth(max_tokens=...), 400, "missing_field"),
    (
        "messages-system-role",
        "POST",
        MESSAGES,
        anth(messages=[{"role": "system", "content": "x"}]),
        400,
        None,
    ),
    (
        "messages-block-no-type",
        "POST",
        MESSAGES,
        anth(messages=[{"role": "user", "content": [{"text": "x"}]}]),
        400,
        None,
    ),
    ("messages-unknown-route", "POST", MESSAGES, anth(model="nope"), 404, "model_not_found"),
    ("get-on-post-endpoint", "GET", CHAT, b"", 405, "method_not_allowed"),
    ("unknown-path", "POST", "/v2/chat", chat(), 404, "unknown_endpoint"),
    ("models-post", "POST", "/v1/models", b"{}", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_input_table(
    gateway: Gateway, method: str, path: str, body: bytes, status: int, code: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    before = len(gateway.oai_fake.recorder) + len(gateway.claude_fake.recorder)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{gateway.url}{path}", data=body, headers=headers) as response,
    ):
        text = await response.text()
        assert response.status == status, text
        assert "Traceback" not in text
        payload = json.loads(text)
        assert response.headers["X-AIGW-Request-Id"]
    if path == MESSAGES:
        assert payload["type"] == "error"
        error = payload["error"]
        assert error["aigw_type"] == "invalid_request"
    else:
        error = payload["error"]
        assert error["type"] == "invalid_request"
        assert error["request_id"] == response.headers["X-AIGW-Request-Id"]
    if code is not None:
        assert error["code"] == code
    assert error["message"]
    after = len(gateway.oai_fake.recorder) + len(gateway.claude_fake.recorder)
    assert after == before, "a bad request never reaches a provider"


async def _raw(gateway: Gateway, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.api_port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()  # the sidecar closes the connection after a malformed request
    writer.close()
    await writer.wait_closed()
    return data


def _request(header_lines: list[bytes], body: bytes = b'{"model": "chat"}') -> bytes:
    head = [b"POST /v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1", *header_lines]
    head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "header_lines",
    [
        [b"X-AIGW-Tenant: acme\rInjected: yes"],  # bare CR inside a header value
        [b"X-AIGW-Tenant: acme\nInjected: yes\n"],  # bare LF line ending
        [b"X-AIGW-Tenant: acme\x00evil"],  # NUL in a header value
        [b"X-AIGW-User: " + b"u" * 20_000],  # a header larger than the limit
        [f"X-Many-{i}: x".encode() for i in range(150)],  # too many headers
        [b"Bad Header Name: x"],  # space in a header name
    ],
    ids=["bare-cr", "bare-lf", "nul", "huge-header", "too-many-headers", "bad-name"],
)
async def test_malformed_http_is_a_4xx_without_detail(
    gateway: Gateway, header_lines: list[bytes]
) -> None:
    data = await _raw(gateway, _request(header_lines))
    status_line, _, rest = data.partition(b"\r\n")
    status = int(status_line.split()[1])
    assert 400 <= status < 500, data[:300]
    assert b"Traceback" not in rest
    assert len(gateway.oai_fake.recorder) == 0


async def test_crlf_in_header_values_never_reaches_upstream(gateway: Gateway) -> None:
    """Caller headers are not forwarded upstream at all, so they cannot inject anything."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}{CHAT}",
            data=chat(),
            headers={"X-Custom": "value", "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 200
    assert gateway.oai_fake.recorder.last.header("x-custom") is None


async def test_chunked_body_over_the_limit_is_413(gateway: Gateway) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 10_000
        yield b'"}]}'

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}{CHAT}", data=body()) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "body_too_large"


async def test_the_models_endpoint_answers_head_without_a_body(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.head(f"{gateway.url}/v1/models") as response,
    ):
        assert response.status == 200
        assert response.headers["Server"] == "aigw"
        assert await response.read() == b""


async def test_no_software_versions_in_headers(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        for url in (
            f"{gateway.url}/v1/models",
            f"{gateway.url}/nope",
            f"{gateway.admin_url}/metrics",
        ):
            async with session.get(url) as response:
                assert response.headers["Server"] == "aigw"
