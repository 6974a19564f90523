"""Planted answers: exact stream pieces and tool calls the request never offered, read back
with the official SDKs (what the inspection tests rely on)."""

from __future__ import annotations

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageFunctionToolCall, ChatCompletionMessageParam

from aigw_fakeprovider import FakeProvider
from aigw_fakeprovider.faults import Fault

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
CLAUDE_HI: list[MessageParam] = [{"role": "user", "content": "hi"}]


async def test_reply_pieces_are_the_stream_chunks(
    openai_fake: FakeProvider, oai: openai.AsyncOpenAI
) -> None:
    openai_fake.queue_fault(reply_pieces=("ab", "c", "de f"))
    stream = await oai.chat.completions.create(model="m", messages=HI, stream=True)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    assert [p for p in pieces if p] == ["ab", "c", "de f"]
    openai_fake.queue_fault(reply_pieces=("ab", "c"))
    completion = await oai.chat.completions.create(model="m", messages=HI)
    assert completion.choices[0].message.content == "abc"


async def test_reply_pieces_on_anthropic(
    anthropic_fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    anthropic_fake.queue_fault(reply_pieces=("x", "yz"))
    texts = []
    async with claude.messages.stream(model="m", max_tokens=50, messages=CLAUDE_HI) as stream:
        async for text in stream.text_stream:
            texts.append(text)
    assert texts == ["x", "yz"]


@pytest.mark.parametrize("stream", [False, True])
async def test_planted_tool_call_in_both_openai_forms(
    openai_fake: FakeProvider, oai: openai.AsyncOpenAI, stream: bool
) -> None:
    openai_fake.queue_fault(call_tool="rm_rf", tool_arguments='{"path":"/"}')
    if stream:
        chunks = [
            c async for c in await oai.chat.completions.create(model="m", messages=HI, stream=True)
        ]
        first = chunks[0].choices[0].delta.tool_calls
        assert first is not None
        assert first[0].function is not None
        assert first[0].function.name == "rm_rf"
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    else:
        message = (await oai.chat.completions.create(model="m", messages=HI)).choices[0].message
        assert message.tool_calls is not None
        call = message.tool_calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        assert call.function.name == "rm_rf"
        assert call.function.arguments == '{"path":"/"}'
    openai_fake.queue_fault(call_tool="rm_rf", legacy_function_call=True)
    completion = await oai.chat.completions.create(model="m", messages=HI)
    legacy = completion.choices[0].message.function_call
    assert legacy is not None
    assert legacy.name == "rm_rf"
    assert completion.choices[0].finish_reason == "function_call"


async def test_planted_tool_use_on_anthropic(
    anthropic_fake: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    anthropic_fake.queue_fault(call_tool="rm_rf", tool_arguments='{"path":"/"}')
    message = await claude.messages.create(model="m", max_tokens=50, messages=CLAUDE_HI)
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "rm_rf"
    assert block.input == {"path": "/"}


def test_pieces_from_the_control_api_json() -> None:
    fault = Fault.from_json({"reply_pieces": ["a", "b"], "call_tool": None})
    assert fault.reply_pieces == ("a", "b")
    assert Fault.from_json(fault.to_json()) == fault
    assert Fault().with_headers({"x-fake-reply-pieces": '["p", "q"]'}).reply_pieces == ("p", "q")
    with pytest.raises(ValueError, match="list of strings"):
        Fault.from_json({"reply_pieces": [1]})
