"""The OpenAI flavor's chat completions, read by the real openai SDK: JSON, SSE, tools."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolUnionParam

from aigw_fakeprovider import FakeProvider

MODEL = "gpt-4o-mini"
HELLO: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there world"},
]
TOOLS: list[ChatCompletionToolUnionParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    },
]


async def test_json_answer_echoes_with_deterministic_usage(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    raw = await oai.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.content == "Echo: hello there world"
    assert choice.finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    # prompt: 2 + 3 words + 2 messages; completion: 4 pieces ("Echo:", " hello", ...)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 4)
    assert completion.usage.total_tokens == 11
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"].isdigit()
    exchange = openai_fake.recorder.last
    assert (exchange.method, exchange.path, exchange.status) == (
        "POST",
        "/v1/chat/completions",
        200,
    )
    assert exchange.body["messages"] == HELLO
    assert exchange.header("authorization") == "Bearer sk-upstream-test"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_truncates_with_finish_reason_length(
    oai: openai.AsyncOpenAI, field: str
) -> None:
    completion = await oai.chat.completions.create(
        model=MODEL, messages=HELLO, extra_body={field: 2}
    )
    assert completion.choices[0].message.content == "Echo: hello"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


async def test_stream_sends_one_piece_per_chunk_and_usage_last(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello there world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


async def test_stream_without_include_usage_has_no_usage_chunk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_tools_call_first_tool_with_schema_shaped_arguments(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model=MODEL, messages=HELLO, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "city": "hello there world",
        "unit": "celsius",
        "days": 1,
    }
    assert call.id.startswith("call_")


async def test_named_tool_choice_and_none(oai: openai.AsyncOpenAI) -> None:
    named = await oai.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = named.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_time"
    none = await oai.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=TOOLS,
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content == "Echo: hello there world"


async def test_tool_result_turn_answers_text(oai: openai.AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny 21C"},
    ]
    completion = await oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == "Echo: sunny 21C"


async def test_streamed_tool_call_deltas_assemble_to_the_arguments(
    oai: openai.AsyncOpenAI,
) -> None:
    stream = await oai.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    name, arguments, finish, pieces = "", "", None, 0
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0
                if delta.function and delta.function.name:
                    name = delta.function.name
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
                    pieces += 1
    assert name == "get_weather"
    assert json.loads(arguments)["city"] == "hello there world"
    assert finish == "tool_calls"
    assert usage is not None
    assert usage.completion_tokens == pieces > 1


async def test_content_parts_are_read_as_text(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "text", "text": "parts work"}]}],
    )
    assert completion.choices[0].message.content == "Echo: parts work"
