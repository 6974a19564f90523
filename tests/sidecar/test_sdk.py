"""The official SDKs against the real sidecar, with the fake provider upstream."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from anthropic.types import (
    CacheControlEphemeralParam,
    MessageParam,
    TextBlockParam,
    ToolParam,
)
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from .conftest import APP_KEY, CANARY_ANTHROPIC, CANARY_OPENAI, Gateway, bundle_bytes, policy

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
CLAUDE_HELLO: list[MessageParam] = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def test_chat_non_streaming(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    headers = raw.headers
    assert headers["x-aigw-route"] == "chat"
    assert headers["x-aigw-backend"] == "primary"
    assert headers["x-aigw-policy-version"].startswith("1.")
    assert headers["x-aigw-request-id"]
    expected = (
        completion.usage.prompt_tokens * 1_500_000_000
        + completion.usage.completion_tokens * 6_000_000_000
    )
    assert headers["x-aigw-cost-usd"] == f"0.{expected // 10**6:09d}"
    sent = gateway.oai_fake.recorder.last
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.header("authorization") == f"Bearer {CANARY_OPENAI}"
    assert APP_KEY not in json.dumps(sent.headers)


async def test_chat_streaming_with_and_without_usage(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Echo: hello there"
        assert all(c.choices for c in chunks), "no usage chunk unless asked for"
        assert gateway.oai_fake.recorder.last.body["stream_options"] == {"include_usage": True}

        stream = await client.chat.completions.create(
            model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_embeddings(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        result = await client.embeddings.create(model="embed", input=["one", "two"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) > 10
    assert gateway.oai_fake.recorder.last.body["model"] == "text-embedding-3-small"


async def test_embeddings_on_anthropic_route_is_a_clear_400(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model="claude", input="x")
    assert caught.value.code == "unsupported_operation"


async def test_models_list_in_both_shapes(gateway: Gateway) -> None:
    names = ["azure", "canary", "chat", "claude", "embed", "local", "slow"]
    async with gateway.openai() as client:
        models = [m.id async for m in client.models.list()]
    assert models == names
    async with gateway.anthropic() as claude:
        page = await claude.models.list()
    assert [m.id for m in page.data] == names


async def test_azure_backend(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        completion = await client.chat.completions.create(model="azure", messages=HELLO)
    assert completion.choices[0].message.content == "Echo: hello there"
    sent = gateway.oai_fake.recorder.last
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.header("api-key") == CANARY_OPENAI
    assert sent.header("authorization") is None


async def test_anthropic_sdk_served_by_openai_backend(gateway: Gateway) -> None:
    async with gateway.anthropic() as claude:
        message = await claude.messages.create(
            model="chat",
            max_tokens=100,
            system="be brief",
            messages=[{"role": "user", "content": "hello there"}],
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == "Echo: hello there"
        assert message.stop_reason == "end_turn"
        assert message.usage.output_tokens == 3
        sent = gateway.oai_fake.recorder.last.body
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["max_tokens"] == 100

        async with claude.messages.stream(
            model="chat", max_tokens=100, messages=[{"role": "user", "content": "stream me"}]
        ) as stream:
            text = await stream.get_final_text()
            final = await stream.get_final_message()
    assert text == "Echo: stream me"
    assert final.usage.output_tokens == 3
    assert final.stop_reason == "end_turn"


async def test_openai_sdk_served_by_anthropic_backend(gateway: Gateway) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    async with gateway.openai() as client:
        completion = await client.chat.completions.create(model="claude", messages=messages)
        assert completion.choices[0].message.content == "Echo: hello there"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert completion.usage.completion_tokens == 3
        sent = gateway.claude_fake.recorder.last
        assert sent.path == "/v1/messages"
        assert sent.header("x-api-key") == CANARY_ANTHROPIC
        assert sent.body["system"] == [{"type": "text", "text": "be brief"}]
        assert sent.body["model"] == "claude-sonnet-4-5"

        stream = await client.chat.completions.create(
            model="claude", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello there"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_openai_tool_calls_round_trip_through_anthropic(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        first = await client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather in Paris?"}],
            tools=[WEATHER_TOOL],
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls
        call = choice.message.tool_calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        assert call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments), dict)
        sent_tools = gateway.claude_fake.recorder.last.body["tools"]
        assert sent_tools[0]["name"] == "get_weather"
        assert sent_tools[0]["input_schema"]["required"] == ["city"]

        second = await client.chat.completions.create(
            model="claude",
            messages=[
                {"role": "user", "content": "weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.function.name,
                                "arguments": call.function.arguments,
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
            tools=[WEATHER_TOOL],
        )
        assert second.choices[0].message.content == "Echo: sunny"
        sent = gateway.claude_fake.recorder.last.body["messages"]
        assert sent[1]["content"][0]["type"] == "tool_use"
        assert sent[1]["content"][0]["id"] == call.id
        assert sent[2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": "sunny",
        }

        stream = await client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather in Paris?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert json.loads(arguments) == json.loads(call.function.arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_anthropic_tool_use_round_trip_through_openai(gateway: Gateway) -> None:
    tool: ToolParam = {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    async with gateway.anthropic() as claude:
        first = await claude.messages.create(
            model="chat",
            max_tokens=200,
            tools=[tool],
            messages=[{"role": "user", "content": "weather in Paris?"}],
        )
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        assert use.name == "get_weather"
        assert isinstance(use.input, dict)
        second = await claude.messages.create(
            model="chat",
            max_tokens=200,
            tools=[tool],
            messages=[
                {"role": "user", "content": "weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}],
                },
            ],
        )
        assert second.content[0].type == "text"
        assert second.content[0].text == "Echo: rain"
        sent = gateway.oai_fake.recorder.last.body["messages"]
        assert sent[1]["tool_calls"][0]["id"] == use.id
        assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "rain"}

        async with claude.messages.stream(
            model="chat",
            max_tokens=200,
            tools=[tool],
            messages=[{"role": "user", "content": "weather in Paris?"}],
        ) as stream:
            final = await stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert streamed.name == "get_weather"
    assert streamed.input == use.input
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("status", "openai_error", "anthropic_error"),
    [
        (429, openai.RateLimitError, anthropic.RateLimitError),
        (400, openai.BadRequestError, anthropic.BadRequestError),
        (500, openai.InternalServerError, anthropic.InternalServerError),
        (503, openai.InternalServerError, anthropic.ServiceUnavailableError),
        (401, openai.InternalServerError, anthropic.InternalServerError),
    ],
)
async def test_provider_errors_surface_as_sdk_exceptions(
    gateway: Gateway,
    status: int,
    openai_error: type[openai.APIStatusError],
    anthropic_error: type[anthropic.APIStatusError],
) -> None:
    for fake in (gateway.oai_fake, gateway.claude_fake):
        fake.queue_fault(status=status, retry_after="7", count=4)
    for route in ("chat", "claude"):
        async with gateway.openai() as client:
            with pytest.raises(openai_error) as caught:
                await client.chat.completions.create(model=route, messages=HELLO)
        body = caught.value.body
        assert isinstance(body, dict)
        assert set(body) >= {"type", "code", "message", "request_id"}
        if status == 429:
            assert caught.value.response.headers["retry-after"] == "7"
            assert body["type"] == "rate_limited"
        async with gateway.anthropic() as claude:
            with pytest.raises(anthropic_error) as caught_a:
                await claude.messages.create(model=route, max_tokens=10, messages=CLAUDE_HELLO)
        assert CANARY_OPENAI not in caught_a.value.message
        assert CANARY_ANTHROPIC not in caught_a.value.message
        assert "127.0.0.1" not in caught_a.value.message


async def test_unknown_route_and_timeout(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="gpt-5", messages=HELLO)
        assert missing.value.code == "model_not_found"
        gateway.oai_fake.queue_fault(latency_ms=1000)
        with pytest.raises(openai.InternalServerError) as slow:
            await client.chat.completions.create(model="slow", messages=HELLO)
        assert slow.value.status_code == 504
        assert slow.value.code == "upstream_timeout"
    async with gateway.anthropic() as claude:
        gateway.oai_fake.queue_fault(latency_ms=1000)
        with pytest.raises(anthropic.GatewayTimeoutError):
            await claude.messages.create(model="slow", max_tokens=10, messages=CLAUDE_HELLO)


async def test_stream_cut_by_provider_surfaces_as_error(gateway: Gateway) -> None:
    gateway.oai_fake.queue_fault(cut_after_chunks=2)
    async with gateway.openai() as client:
        stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_stream_cut_surfaces_in_the_anthropic_sdk(gateway: Gateway) -> None:
    gateway.oai_fake.queue_fault(cut_after_chunks=2)
    async with gateway.anthropic() as claude:
        with pytest.raises(anthropic.APIError):
            async with claude.messages.stream(
                model="chat", max_tokens=50, messages=CLAUDE_HELLO
            ) as stream:
                await stream.get_final_message()


async def test_missing_stream_usage_is_estimated(gateway: Gateway) -> None:
    gateway.oai_fake.queue_fault(omit_usage=True)
    async with gateway.openai() as client:
        stream = await client.chat.completions.create(
            model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)  # nothing invented for the caller
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.admin_url}/metrics") as response,
    ):
        text = await response.text()
    # "Echo: hello there" is 17 bytes: 6 tokens by the one estimator (ceil(bytes / 3), the
    # governance one), counted although unreported.
    assert 'aigw_tokens_total{backend="primary",kind="completion",route="chat"} 6.0' in text


async def test_openai_compatible_backend_without_credential(gateway: Gateway) -> None:
    """No credential configured: nothing is sent (here the fake wants one, so it refuses)."""
    async with gateway.openai() as client:
        with pytest.raises(openai.InternalServerError) as refused:
            await client.chat.completions.create(model="local", messages=HELLO)
    assert refused.value.status_code == 502
    assert refused.value.code == "upstream_credential_rejected"
    sent = gateway.oai_fake.recorder.last
    assert sent.header("authorization") is None
    assert sent.body["model"] == "llama-3.1-8b"


async def test_weighted_backends_never_pick_weight_zero(gateway: Gateway) -> None:
    picked: dict[str, int] = {}
    async with gateway.openai() as client:
        for _ in range(80):
            raw = await client.chat.completions.with_raw_response.create(
                model="canary", messages=HELLO
            )
            name = raw.headers["x-aigw-backend"]
            picked[name] = picked.get(name, 0) + 1
    assert set(picked) == {"stable", "next"}
    assert picked["stable"] > picked["next"]
    models = {e.body["model"] for e in gateway.oai_fake.recorder.exchanges}
    assert models == {"gpt-4o", "gpt-4.1"}


async def test_stream_metrics(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
        _ = [chunk async for chunk in stream]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.admin_url}/metrics") as response,
    ):
        text = await response.text()
    assert 'aigw_time_to_first_token_seconds_count{route="chat"} 1.0' in text
    assert 'aigw_requests_total{error_type="",route="chat",status="200"} 1.0' in text
    assert 'aigw_tokens_total{backend="primary",kind="completion",route="chat"} 3.0' in text


async def test_prompt_caching_marks_and_anthropic_params_survive_the_round_trip(
    gateway: Gateway,
) -> None:
    cache: CacheControlEphemeralParam = {"type": "ephemeral"}
    tool: ToolParam = {
        "name": "lookup",
        "description": "Look up",
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": cache,
    }
    system: list[TextBlockParam] = [
        {"type": "text", "text": "long policy text", "cache_control": cache}
    ]
    messages: list[MessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "big document", "cache_control": cache},
                {"type": "text", "text": "question"},
            ],
        }
    ]
    async with gateway.anthropic() as claude:
        await claude.messages.create(
            model="claude",
            max_tokens=2000,
            system=system,
            messages=messages,
            tools=[tool],
            tool_choice={"type": "none"},
            thinking={"type": "enabled", "budget_tokens": 1024},
            extra_body={"top_k": 5},
        )
        # An OpenAI backend cannot honour thinking or top_k: under enforce that is a typed
        # 400, never a silent drop (issue 12); the cache marks alone change no answer.
        with pytest.raises(anthropic.BadRequestError) as refused:
            await claude.messages.create(
                model="chat", max_tokens=2000, system=system, messages=messages,
                tools=[tool], tool_choice={"type": "none"},
                thinking={"type": "enabled", "budget_tokens": 1024}, extra_body={"top_k": 5},
            )  # fmt: skip
        await claude.messages.create(
            model="chat", max_tokens=2000, system=system, messages=messages, tools=[tool],
            tool_choice={"type": "none"},
        )  # fmt: skip
    error: Any = refused.value.body
    assert error["error"]["code"] == "unsupported_parameter"
    assert "parameter thinking" in error["error"]["message"]
    assert "parameter top_k" in error["error"]["message"]
    sent = gateway.claude_fake.recorder.last.body
    assert sent["system"] == [{"type": "text", "text": "long policy text", "cache_control": cache}]
    assert sent["messages"][0]["content"][0]["cache_control"] == cache
    assert "cache_control" not in sent["messages"][0]["content"][1]
    assert sent["tools"][0]["cache_control"] == cache
    assert sent["top_k"] == 5
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    to_openai = json.dumps(gateway.oai_fake.recorder.last.body)
    assert "cache_control" not in to_openai
    assert "x_aigw" not in to_openai
    assert "thinking" not in to_openai


async def test_models_list_is_what_the_governing_policy_grants(gateway: Gateway) -> None:
    docs = [*gateway.docs[:-1], policy(["claude", "chat"])]
    gateway.write_bundle(bundle_bytes(docs, revision=2))
    await gateway.wait_revision(2)
    async with gateway.openai() as client:
        assert [m.id async for m in client.models.list()] == ["chat", "claude"]
    async with gateway.anthropic() as claude:
        assert [m.id for m in (await claude.models.list()).data] == ["chat", "claude"]
