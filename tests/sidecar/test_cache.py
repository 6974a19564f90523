"""The exact cache through the real sidecar, driven by the official SDKs: a repeated request
is a hit the provider never sees, any output-affecting change is a miss, no entry crosses a
tenant or use case unless the policy's scope says so, and what must never be cached is not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from aigw_fakeprovider import FakeProvider

from .caching import Decisions, cache_gateway, cached_use_case, metric, metrics_text

PROMPT: Any = [{"role": "user", "content": "what is the capital of france"}]


async def _chat(client: openai.AsyncOpenAI, **kwargs: Any) -> tuple[str, dict[str, str], str]:
    body: dict[str, Any] = {"model": "chat", "messages": PROMPT, **kwargs}
    raw = await client.chat.completions.with_raw_response.create(**body)
    completion = raw.parse()
    text = completion.choices[0].message.content or ""
    headers = {k.lower(): v for k, v in raw.headers.items()}
    return headers["x-aigw-cache"], headers, text


async def test_second_identical_request_is_a_hit_the_provider_never_sees(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    recorder = Decisions()
    async with (
        cache_gateway(
            tmp_path, oai_fake, claude_fake, [cached_use_case("default")], recorder=recorder
        ) as gw,
        gw.openai() as client,
    ):
        first, first_headers, first_text = await _chat(client)
        second, second_headers, second_text = await _chat(client)
        assert (first, second) == ("miss", "hit")
        assert len(oai_fake.recorder) == 1
        assert second_text == first_text == "Echo: what is the capital of france"
        assert float(first_headers["x-aigw-cost-usd"]) > 0
        assert float(second_headers["x-aigw-cost-usd"]) == 0
        assert "x-aigw-backend" not in second_headers  # no backend answered
        metrics = await metrics_text(gw.admin_url)
    assert metric(metrics, "aigw_cache_hits_total", route="chat", kind="exact") == 1
    assert metric(metrics, "aigw_cache_misses_total", route="chat", reason="absent") == 1
    assert metric(metrics, "aigw_cache_writes_total", outcome="stored") == 1
    assert metric(metrics, "aigw_cache_saved_usd_total", route="chat") == pytest.approx(
        float(first_headers["x-aigw-cost-usd"])
    )
    assert metric(metrics, "aigw_cache_bytes") > 0
    assert recorder.calls[0] == ("miss", [("miss", "cache_miss_absent")])
    assert recorder.calls[1] == ("hit", [("hit", "cache_hit")])


_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
CHANGES: dict[str, dict[str, Any]] = {
    "temperature": {"temperature": 0.3},
    "top_p": {"top_p": 0.5},
    "max_tokens": {"max_tokens": 3},
    "max_completion_tokens": {"max_completion_tokens": 3},
    "seed": {"seed": 42},
    "stop": {"stop": ["paris"]},
    "n": {"n": 2},
    "presence_penalty": {"presence_penalty": 0.5},
    "frequency_penalty": {"frequency_penalty": 0.5},
    "logit_bias": {"logit_bias": {"1234": 5}},
    "logprobs": {"logprobs": True},
    "response_format": {"response_format": {"type": "json_object"}},
    "reasoning_effort": {"reasoning_effort": "low"},
    "tools": {"tools": [_TOOL]},
    "tool_choice": {"tools": [_TOOL], "tool_choice": "none"},
    "messages": {"messages": [{"role": "system", "content": "be brief"}, *PROMPT]},
    "route": {"model": "chat-b"},
    "unknown field": {"extra_body": {"future_knob": 1}},
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_any_output_affecting_change_is_a_miss(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, change: str
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.openai() as client,
    ):
        baseline: dict[str, Any] = {}
        if change == "tool_choice":  # the same tools, only the choice differs
            baseline = {"tools": [_TOOL]}
        assert (await _chat(client, **baseline))[0] == "miss"
        assert (await _chat(client, **baseline))[0] == "hit"
        outcome, _, _ = await _chat(client, **CHANGES[change])
        assert outcome == "miss", change
        assert (await _chat(client, **CHANGES[change]))[0] == "hit"


async def test_fields_that_change_no_answer_share_the_entry(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.openai() as client,
    ):
        assert (await _chat(client))[0] == "miss"
        assert (await _chat(client, user="someone-else"))[0] == "hit"
        assert (await _chat(client, metadata={"k": "v"}, store=False))[0] == "hit"
        assert len(oai_fake.recorder) == 1


async def test_an_entry_is_served_for_its_ttl_only(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    short = cached_use_case("default", exact={"ttlSeconds": 1})
    async with cache_gateway(tmp_path, oai_fake, claude_fake, [short]) as gw, gw.openai() as client:
        assert (await _chat(client))[0] == "miss"
        assert (await _chat(client))[0] == "hit"
        await asyncio.sleep(1.1)  # past the TTL (not a timing assertion: the entry expired)
        assert (await _chat(client))[0] == "miss"
        assert len(oai_fake.recorder) == 2


async def test_a_disabled_cache_is_a_bypass_that_counts_nothing(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    off = cached_use_case("default", exact={"enabled": False})
    async with cache_gateway(tmp_path, oai_fake, claude_fake, [off]) as gw, gw.openai() as client:
        assert [(await _chat(client))[0] for _ in range(2)] == ["bypass", "bypass"]
        metrics = await metrics_text(gw.admin_url)
    assert len(oai_fake.recorder) == 2
    assert metric(metrics, "aigw_cache_bypasses_total") == 0
