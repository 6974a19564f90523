"""Streams and the cache: a streamed miss is recorded as it passes and stored only when it
completed; a streamed hit replays the same chunks; either shape answers the other; errors
and cut streams are never stored; a hit counts against requests/min but costs nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar.app_keys import PIPELINE
from aigw_sidecar.steps import CacheAnswer

from .caching import Decisions, cache_gateway, cached_use_case, metric, metrics_text

PROMPT: Any = [{"role": "user", "content": "count the ways the river bends tonight"}]


async def _stream(client: openai.AsyncOpenAI, **kwargs: Any) -> tuple[str, list[str], str]:
    """(X-AIGW-Cache, the content of every chunk, the text)."""
    raw = await client.chat.completions.with_raw_response.create(
        model="chat", messages=PROMPT, stream=True, **kwargs
    )
    pieces: list[str] = []
    stream = raw.parse()
    assert isinstance(stream, openai.AsyncStream)
    async for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "" if chunk.choices else "<usage>")
    return raw.headers["x-aigw-cache"], pieces, "".join(p for p in pieces if p != "<usage>")


async def _complete(client: openai.AsyncOpenAI) -> tuple[str, str]:
    raw = await client.chat.completions.with_raw_response.create(model="chat", messages=PROMPT)
    return raw.headers["x-aigw-cache"], raw.parse().choices[0].message.content or ""


async def test_a_streamed_hit_replays_the_same_chunks(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.openai() as client,
    ):
        oai_fake.queue_fault(reply_pieces=["Twelve ", "ways, ", "give ", "or take ", "one."])
        first, first_chunks, first_text = await _stream(client)
        second, second_chunks, second_text = await _stream(client)
        assert (first, second) == ("miss", "hit")
        assert second_text == first_text == "Twelve ways, give or take one."
        assert second_chunks == first_chunks  # the same chunk boundaries, chunk for chunk
        assert len(oai_fake.recorder) == 1
        usage = await _stream(client, stream_options={"include_usage": True})
        assert usage[0] == "hit"
        assert usage[1][-1] == "<usage>"  # the recorded usage chunk


async def test_either_shape_answers_the_other(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.openai() as client,
    ):
        assert (await _stream(client))[0] == "miss"
        outcome, text = await _complete(client)
        assert (outcome, text) == ("hit", "Echo: count the ways the river bends tonight")
        other: Any = [{"role": "user", "content": "and the other way around"}]
        raw = await client.chat.completions.with_raw_response.create(model="chat", messages=other)
        assert raw.headers["x-aigw-cache"] == "miss"
        replayed = await client.chat.completions.with_raw_response.create(
            model="chat",
            messages=other,
            stream=True,
        )
        chunks = replayed.parse()
        assert isinstance(chunks, openai.AsyncStream)
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        assert replayed.headers["x-aigw-cache"] == "hit"
        assert text == "Echo: and the other way around"
        assert len(oai_fake.recorder) == 2


async def test_the_anthropic_sdk_streams_a_hit_with_the_same_events(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.anthropic() as client,
    ):
        runs = []
        for _ in range(2):
            async with client.messages.stream(
                model="claude",
                max_tokens=64,
                messages=PROMPT,
            ) as stream:
                events = [event.type async for event in stream]
                message = await stream.get_final_message()
            block = message.content[0]
            assert isinstance(block, anthropic.types.TextBlock)
            runs.append((events, block.text))
        assert runs[1] == runs[0]
        assert runs[0][1] == "Echo: count the ways the river bends tonight"
        assert len(claude_fake.recorder) == 1
        openai_caller = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
        async with openai_caller:
            raw = await openai_caller.chat.completions.with_raw_response.create(
                model="claude",
                messages=PROMPT,
                max_tokens=64,
            )
        assert raw.headers["x-aigw-cache"] == "miss"  # the caller API is part of the key


@pytest.mark.parametrize(
    "fault",
    [{"cut_after_chunks": 3}, {"error_after_chunks": 3}, {"status": 500}, {"status": 429}],
)
async def test_errors_and_cut_streams_are_never_stored(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, fault: dict[str, Any]
) -> None:
    recorder = Decisions()
    async with (
        cache_gateway(
            tmp_path, oai_fake, claude_fake,
            [cached_use_case("default")],
            recorder=recorder,
            spec={},
        ) as gw,
        gw.openai() as client,
    ):  # fmt: skip
        oai_fake.queue_fault(count=5, **fault)  # every retry fails the same way
        with pytest.raises((openai.APIError, openai.APIConnectionError)):
            await _stream(client)
        assert recorder.calls[-1][0] == "miss"
        if "status" not in fault:
            assert recorder.calls[-1][1][-1] == ("not_stored", "cache_not_stored_incomplete")
        oai_fake.faults.clear()
        calls = len(oai_fake.recorder)
        assert (await _stream(client))[0] == "miss"  # nothing was stored
        assert len(oai_fake.recorder) == calls + 1
        assert (await _stream(client))[0] == "hit"
        metrics = await metrics_text(gw.admin_url)
    if "status" not in fault:
        assert metric(metrics, "aigw_cache_writes_total", outcome="incomplete") == 1
    assert metric(metrics, "aigw_cache_writes_total", outcome="stored") == 1


async def test_a_hit_counts_against_requests_per_minute_and_costs_no_budget(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    limited = cached_use_case(
        "default",
        extra={
            "rateLimits": {"requestsPerMinute": 3},
            "budgets": [{"name": "day", "period": "day", "tokens": 100000}],
        },
    )
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [limited]) as gw,
        gw.openai() as client,
    ):
        assert (await _complete(client))[0] == "miss"
        spent = await gw.status()
        assert (await _complete(client))[0] == "hit"
        assert (await _complete(client))[0] == "hit"
        after = await gw.status()
        with pytest.raises(openai.RateLimitError):  # the hits counted as requests
            await _complete(client)
    assert len(oai_fake.recorder) == 1
    (budget,) = [r for r in spent["governance"]["counters"] if r["counter"] == "budget:day:tokens"]
    (later,) = [r for r in after["governance"]["counters"] if r["counter"] == "budget:day:tokens"]
    assert later["used"] == budget["used"] > 0  # the hits spent nothing


async def test_a_stream_past_the_entry_bound_is_let_go_mid_stream(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    """A caller that makes the answer long gets it whole, but the cache's recorder holds at
    most the entry bound and lets go of it as soon as the stream passes it (the recording
    budget's accounting), and the answer is not stored; a short stream still is."""
    bound = 64 << 10
    async with (
        cache_gateway(
            tmp_path, oai_fake, claude_fake, [cached_use_case("default")],
            cache_max_entry_bytes=bound,
        ) as gw,
        gw.openai() as client,
    ):  # fmt: skip
        (step,) = [s for s in gw.server.api[PIPELINE].steps if isinstance(s, CacheAnswer)]
        budget = step.recording
        oai_fake.queue_fault(reply_pieces=["Twelve ", "ways, ", "give ", "or take ", "one."])
        assert (await _stream(client))[0] == "miss"
        assert budget.peak > 0  # a short stream is recorded (and charged)
        assert (await _stream(client))[0] == "hit"
        words = "the river bends tonight " * 200
        oai_fake.queue_fault(reply_pieces=[words[:4096]] * 64)  # 256 KiB
        long_prompt: Any = [{"role": "user", "content": "the long one"}]
        stream = await client.chat.completions.create(
            model="chat", messages=long_prompt, stream=True
        )
        received, held = 0, []
        async for chunk in stream:
            received += len(chunk.choices[0].delta.content or "" if chunk.choices else "")
            if received > 2 * bound:  # recorded before it was sent
                held.append(budget.held)
        assert received == 64 * 4096
        assert held
        assert set(held) == {0}
        assert budget.peak <= bound  # (a batch past the bound is never taken)
        again = await client.chat.completions.with_raw_response.create(
            model="chat", messages=long_prompt, stream=True
        )
        assert again.headers["x-aigw-cache"] == "miss"  # not stored
        async for _ in again.parse():
            pass
        assert budget.held == 0
