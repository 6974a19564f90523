"""Injected faults surface in the real SDKs as the exceptions production code must handle."""

from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import openai
import pytest

from aigw_fakeprovider import Exchange, FakeProvider, Fault

MODEL = "gpt-4o-mini"
HI: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "a b c d"}]
CLAUDE = "claude-haiku-4-5"


def _disconnected(exchanges: list[Exchange]) -> bool:
    return any(e.disconnected for e in exchanges)


async def test_429_header_fault_has_retry_after_and_openai_body(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(
            model=MODEL,
            messages=HI,
            extra_headers={"X-Fake-Status": "429", "X-Fake-Retry-After": "7"},
        )
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "7"
    assert error.code == "rate_limit_exceeded"
    assert error.response.headers["x-request-id"].startswith("req_")


async def test_queued_faults_apply_to_the_next_requests_only(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    openai_fake.queue_fault(status=500, count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await oai.chat.completions.create(model=MODEL, messages=HI)
    completion = await oai.chat.completions.create(model=MODEL, messages=HI)
    assert completion.choices[0].message.content == "Echo: a b c d"
    assert [e.status for e in openai_fake.recorder.exchanges] == [500, 500, 200]


async def test_header_overrides_queued_fault_field_by_field(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    openai_fake.queue_fault(Fault(status=503, retry_after="3"))
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(
            model=MODEL, messages=HI, extra_headers={"X-Fake-Status": "429"}
        )
    assert caught.value.response.headers["retry-after"] == "3"


async def test_control_api_over_http(oai: openai.AsyncOpenAI, openai_fake: FakeProvider) -> None:
    async with aiohttp.ClientSession(openai_fake.base_url) as http:
        queued = await http.post(
            "/_fake/faults", json={"fault": {"status": 429, "retry_after": "0"}, "count": 1}
        )
        assert (await queued.json()) == {"queued": 1}
        bad = await http.post("/_fake/faults", json={"fault": {"colour": "red"}})
        assert bad.status == 400
        with pytest.raises(openai.RateLimitError):
            await oai.chat.completions.create(model=MODEL, messages=HI)
        await oai.chat.completions.create(model=MODEL, messages=HI)
        listed = await (await http.get("/_fake/requests")).json()
        assert [r["status"] for r in listed["requests"]] == [429, 200]
        assert listed["requests"][1]["body"]["messages"] == HI
        await http.post("/_fake/faults", json={"faults": [{"status": 500}]})
        await http.post("/_fake/reset")
        assert (await (await http.get("/_fake/requests")).json()) == {"requests": []}
        health = await (await http.get("/_fake/health")).json()
        assert health == {"status": "ok", "flavor": "openai"}
    # the reset also dropped the queued 500
    await oai.chat.completions.create(model=MODEL, messages=HI)


async def test_bad_fault_header_is_a_400(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(
            model=MODEL, messages=HI, extra_headers={"X-Fake-Latency-Ms": "soon"}
        )


async def test_cut_stream_is_a_connection_error(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    stream = await oai.chat.completions.create(
        model=MODEL, messages=HI, stream=True, extra_headers={"X-Fake-Cut-After-Chunks": "2"}
    )
    received: list[object] = []

    async def drain() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await drain()
    assert len(received) == 2
    exchange = openai_fake.recorder.last
    assert (exchange.cut, exchange.chunks_sent, exchange.completed) == (True, 2, False)


async def test_cut_before_answer_is_a_connection_error(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(
            model=MODEL, messages=HI, extra_headers={"X-Fake-Cut-After-Chunks": "0"}
        )


async def test_omitted_usage(oai: openai.AsyncOpenAI) -> None:
    headers = {"X-Fake-Omit-Usage": "true"}
    completion = await oai.chat.completions.create(model=MODEL, messages=HI, extra_headers=headers)
    assert completion.usage is None
    stream = await oai.chat.completions.create(
        model=MODEL,
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: a b c d"


async def test_reply_fault_sets_the_exact_answer(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    reply = "mail me at jane@example.com  now"
    openai_fake.queue_fault(reply=reply)
    completion = await oai.chat.completions.create(model=MODEL, messages=HI)
    assert completion.choices[0].message.content == reply
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5


async def test_client_timeout_during_latency_is_seen_as_a_disconnect(
    openai_fake: FakeProvider,
) -> None:
    client = openai.AsyncOpenAI(
        base_url=openai_fake.openai_base_url, api_key="sk-upstream-test", max_retries=0, timeout=0.2
    )
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(
            model=MODEL, messages=HI, extra_headers={"X-Fake-Latency-Ms": "5000"}
        )
    await client.close()
    [exchange] = await openai_fake.recorder.wait_for(_disconnected)
    assert exchange.status is None
    assert not exchange.completed


async def test_closing_a_stream_midway_is_seen_as_a_disconnect(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    stream = await oai.chat.completions.create(
        model=MODEL,
        messages=HI,
        stream=True,
        extra_headers={"X-Fake-Chunk-Latency-Ms": "50"},
    )
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 2:
            break
    await stream.close()
    [exchange] = await openai_fake.recorder.wait_for(_disconnected)
    assert exchange.stream
    assert not exchange.completed
    assert exchange.chunks_sent < 7


async def test_latency_delays_the_answer_without_failing_it(oai: openai.AsyncOpenAI) -> None:
    task = asyncio.create_task(
        oai.chat.completions.create(
            model=MODEL, messages=HI, extra_headers={"X-Fake-Latency-Ms": "150"}
        )
    )
    await asyncio.sleep(0.05)
    assert not task.done()
    completion = await task
    assert completion.choices[0].finish_reason == "stop"


async def test_anthropic_429_and_529_and_500(
    claude: anthropic.AsyncAnthropic, anthropic_fake: FakeProvider
) -> None:
    ask = {
        "model": CLAUDE,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
    }
    with pytest.raises(anthropic.RateLimitError) as limited:
        await claude.messages.create(**ask, extra_headers={"X-Fake-Status": "429"})  # type: ignore[call-overload]
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached for requests."},
        "request_id": limited.value.response.headers["request-id"],
    }
    anthropic_fake.queue_fault(status=529, retry_after="4")
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await claude.messages.create(**ask)  # type: ignore[call-overload]
    assert overloaded.value.response.headers["retry-after"] == "4"
    anthropic_fake.queue_fault(status=500, error_message="boom")
    with pytest.raises(anthropic.InternalServerError) as failed:
        await claude.messages.create(**ask)  # type: ignore[call-overload]
    assert not isinstance(failed.value, anthropic.OverloadedError)
    assert "boom" in str(failed.value)


async def test_anthropic_cut_stream_fails_the_iteration(
    claude: anthropic.AsyncAnthropic, anthropic_fake: FakeProvider
) -> None:
    anthropic_fake.queue_fault(cut_after_chunks=4)
    stream = await claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
    )
    kinds: list[str] = []

    async def drain() -> None:
        async for event in stream:
            kinds.append(event.type)

    # The SDK lets the transport error through unwrapped in the middle of a stream.
    with pytest.raises(Exception) as caught:  # noqa: PT011
        await drain()
    assert isinstance(caught.value, anthropic.APIConnectionError) or (
        type(caught.value).__name__ == "RemoteProtocolError"
    )
    # ping is consumed by the SDK: start, block start, (ping), first delta
    assert kinds == ["message_start", "content_block_start", "content_block_delta"]
    assert anthropic_fake.recorder.last.cut


async def test_anthropic_stream_without_usage(
    claude: anthropic.AsyncAnthropic, anthropic_fake: FakeProvider
) -> None:
    anthropic_fake.queue_fault(omit_usage=True)
    stream = await claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        messages=[{"role": "user", "content": "one two"}],
        stream=True,
    )
    deltas = [e async for e in stream if e.type == "message_delta"]
    assert len(deltas) == 1
    assert deltas[0].delta.stop_reason == "end_turn"
    assert getattr(deltas[0], "usage", None) is None


async def test_openai_in_stream_error_is_an_api_error(
    oai: openai.AsyncOpenAI, openai_fake: FakeProvider
) -> None:
    stream = await oai.chat.completions.create(
        model=MODEL, messages=HI, stream=True, extra_headers={"X-Fake-Error-After-Chunks": "2"}
    )
    received: list[object] = []

    async def drain() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIError) as caught:
        await drain()
    assert not isinstance(caught.value, openai.APIConnectionError)
    assert caught.value.type == "server_error"
    assert len(received) == 2
    exchange = openai_fake.recorder.last
    assert (exchange.stream_error, exchange.completed, exchange.cut) == (True, True, False)


async def test_anthropic_in_stream_overload_is_a_status_error_with_its_body(
    claude: anthropic.AsyncAnthropic, anthropic_fake: FakeProvider
) -> None:
    anthropic_fake.queue_fault(error_after_chunks=3)
    stream = await claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
    )
    kinds: list[str] = []

    async def drain() -> None:
        async for event in stream:
            kinds.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await drain()
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert kinds == ["message_start", "content_block_start"]
    assert anthropic_fake.recorder.last.stream_error
