"""The Anthropic flavor's Messages API, read by the real anthropic SDK: JSON, SSE, tools."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from aigw_fakeprovider import FakeProvider

from .conftest import KEY

MODEL = "claude-haiku-4-5"
HELLO: list[MessageParam] = [{"role": "user", "content": "hello there world"}]
TOOLS: list[ToolParam] = [
    {
        "name": "lookup",
        "description": "look something up",
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        },
    },
    {"name": "other", "input_schema": {"type": "object", "properties": {}}},
]


async def test_json_answer_with_usage_and_request_id(
    claude: anthropic.AsyncAnthropic, anthropic_fake: FakeProvider
) -> None:
    raw = await claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, system="be brief", messages=HELLO
    )
    message = await raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: hello there world"
    assert message.stop_reason == "end_turn"
    # input: 2 system words + 3 words + 1 message; output: 4 pieces
    assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 4)
    assert raw.headers["request-id"].startswith("req_")
    assert "anthropic-ratelimit-requests-remaining" in raw.headers
    exchange = anthropic_fake.recorder.last
    assert exchange.path == "/v1/messages"
    assert exchange.header("anthropic-version")
    assert exchange.body["system"] == "be brief"


async def test_max_tokens_stops_with_max_tokens(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model=MODEL, max_tokens=2, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: hello"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


async def test_stream_event_sequence(claude: anthropic.AsyncAnthropic) -> None:
    stream = await claude.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 4
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Echo: hello there world"
    final = events[-2]
    assert final.type == "message_delta"
    assert final.delta.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == 4


async def test_stream_helper_accumulates_the_final_message(
    claude: anthropic.AsyncAnthropic,
) -> None:
    async with claude.messages.stream(model=MODEL, max_tokens=3, messages=HELLO) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert texts == ["Echo:", " hello", " there"]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


async def test_ping_is_on_the_wire(anthropic_fake: FakeProvider) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{anthropic_fake.base_url}/v1/messages",
            json={"model": MODEL, "max_tokens": 5, "messages": HELLO, "stream": True},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        body = await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert 'event: ping\ndata: {"type":"ping"}\n\n' in body
    assert body.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')


async def test_tool_use_json_and_stream(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=TOOLS)
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "lookup"
    assert block.input == {"query": "hello there world", "limit": 1}
    async with claude.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=HELLO,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "other"},
    ) as stream:
        partial = [
            e.delta.partial_json
            async for e in stream
            if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
        ]
        final = await stream.get_final_message()
    assert "".join(partial) == "{}"
    assert final.content[0].type == "tool_use"
    assert final.content[0].name == "other"
    assert final.content[0].input == {}


async def test_tool_result_turn_answers_text(claude: anthropic.AsyncAnthropic) -> None:
    messages: list[MessageParam] = [
        *HELLO,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"}],
        },
    ]
    message = await claude.messages.create(
        model=MODEL, max_tokens=100, messages=messages, tools=TOOLS
    )
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: found it"


async def test_wrong_key_is_an_authentication_error(anthropic_fake: FakeProvider) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=anthropic_fake.base_url, api_key="app", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    await client.close()
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "authentication_error"


async def test_x_api_key_is_accepted_and_version_required(anthropic_fake: FakeProvider) -> None:
    payload = {"model": MODEL, "max_tokens": 5, "messages": HELLO}
    async with aiohttp.ClientSession(anthropic_fake.base_url) as http:
        ok = await http.post(
            "/v1/messages", json=payload, headers={"x-api-key": KEY, "anthropic-version": "v"}
        )
        assert ok.status == 200
        missing = await http.post("/v1/messages", json=payload, headers={"x-api-key": KEY})
        assert missing.status == 400
        error = await missing.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in error["error"]["message"]


async def test_max_tokens_is_required(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        await claude.post("/v1/messages", cast_to=object, body={"model": MODEL, "messages": HELLO})


async def test_models_list(claude: anthropic.AsyncAnthropic) -> None:
    models = [m.id async for m in claude.models.list()]
    assert models == ["claude-sonnet-4-5", "claude-haiku-4-5"]
