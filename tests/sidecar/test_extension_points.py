"""The three extension points through the real sidecar, driven by the official SDKs.

- request steps: a step that answers (a cache hit, a replay) stops the walk; steps it never
  reached get no response-side call, and the answer is not billed;
- stream transforms: one that holds back three chunks and flushes them at the end of the
  stream changes nothing the caller reads;
- attempt middlewares: one sees every attempt (retries and fallbacks included), and can put
  the caller's ``traceparent`` on this attempt's upstream headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import (
    Attempt,
    AttemptMiddleware,
    CallNext,
    Json,
    Phase,
    Plugin,
    RequestContext,
    RetryFallback,
    Services,
    SidecarServer,
    Stage,
    Step,
    StreamTransform,
    Upstream,
    default_steps,
)
from support.probes import Journal, Probe

from .conftest import (
    Gateway,
    backend,
    bundle_bytes,
    route,
    sidecar_settings,
    standard_docs,
    write_secrets,
)

WORDS = "one two three four five six seven"
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": WORDS}]
CANNED = "from the replay step"


class Outer(Probe):
    name = "probe-outer"
    phase = Phase.INSPECT


class Inner(Probe):
    name = "probe-inner"
    phase = Phase.ANSWER + 10


def _canned_chunks() -> AsyncIterator[list[Json]]:
    async def chunks() -> AsyncIterator[list[Json]]:
        base = {"id": "replay", "object": "chat.completion.chunk", "created": 0, "model": "chat"}
        for piece, finish in (("from the ", None), ("replay step", None), ("", "stop")):
            delta = {"content": piece} if piece else {}
            yield [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}]

    return chunks()


class Replay(Probe):
    """Answers requests carrying ``X-Test-Replay`` without calling upstream."""

    name = "replay"
    phase = Phase.ANSWER

    async def on_request(self, ctx: RequestContext) -> None:
        await super().on_request(ctx)
        if "X-Test-Replay" not in ctx.headers:
            return
        if ctx.stream:
            ctx.answer(self, chunks=_canned_chunks())
            return
        message = {"role": "assistant", "content": CANNED}
        ctx.answer(
            self,
            response={
                "id": "replay",
                "object": "chat.completion",
                "created": 0,
                "model": "chat",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            },
        )


class HoldBack(StreamTransform):
    """Keeps the last three chunks back, releasing older ones, and the rest at the end."""

    def __init__(self, journal: Journal) -> None:
        self.held: list[Json] = []
        self.journal = journal

    async def feed(self, batch: list[Json]) -> list[Json]:
        self.held.extend(batch)
        out, self.held = self.held[:-3], self.held[-3:]
        return out

    async def flush(self) -> list[Json]:
        self.journal.hooks.append(("hold", f"flush {len(self.held)}"))
        out, self.held = self.held, []
        return out


class Hold(Step):
    name = "hold"
    phase = Phase.INSPECT + 10

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        return HoldBack(self.journal) if "X-Test-Hold" in ctx.headers else None


class SeeAttempts(AttemptMiddleware):
    """Sees every attempt; forwards a caller's well-formed ``traceparent`` upstream."""

    name = "see-attempts"
    stage = Stage.CUSTOM

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def __call__(self, attempt: Attempt, call_next: CallNext) -> Upstream:
        self.journal.attempts.append((attempt.number, attempt.backend.name))
        traceparent = attempt.ctx.headers.get("traceparent")
        if traceparent is not None and len(traceparent) == 55:
            attempt.headers["traceparent"] = traceparent
        return await call_next(attempt)


@dataclass
class Rig:
    gateway: Gateway
    journal: Journal

    async def budget_used(self) -> int:
        status = await self.gateway.status()
        (row,) = [r for r in status["governance"]["counters"] if r["unit"] == "tokens"]
        used: int = row["used"]
        return used

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway.admin_url}/metrics") as response,
        ):
            return await response.text()


@pytest.fixture
async def rig(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[Rig]:
    journal = Journal()

    def plugins(services: Services) -> Sequence[Plugin]:
        return [
            *default_steps(services),
            Outer(journal),
            Replay(journal),
            Inner(journal),
            Hold(journal),
            RetryFallback(services.rng),
            SeeAttempts(journal),
        ]

    docs = standard_docs(oai_fake, claude_fake)
    docs.insert(
        0,
        route(
            "resilient",
            [
                backend("first", "openai", oai_fake.openai_base_url, "gpt-4o", key="openai"),
                backend("second", "openai", oai_fake.openai_base_url, "gpt-4.1", key="openai",
                        weight=0),
            ],
            fallback=["second"],
            retry={"attempts": 3, "retryOn": ["upstream_error"], "backoffBaseMs": 1,
                   "backoffMaxMs": 5},
        ),
    )  # fmt: skip
    docs[-1]["spec"]["useCases"][0]["routes"].append("resilient")
    docs[-1]["spec"]["useCases"][0]["budgets"] = [
        {"name": "daily", "period": "day", "tokens": 1_000_000}
    ]
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(docs))
    settings = sidecar_settings(path, write_secrets(tmp_path))
    async with SidecarServer(settings, steps=plugins) as server:
        yield Rig(Gateway(server, oai_fake, claude_fake, path, docs), journal)


async def test_a_step_that_answers_unwinds_only_what_ran_and_is_not_billed(rig: Rig) -> None:
    replay = {"X-Test-Replay": "1"}
    async with rig.gateway.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=PROMPT, extra_headers=replay
        )
        assert raw.parse().choices[0].message.content == CANNED
        stream = await client.chat.completions.create(
            model="chat", messages=PROMPT, stream=True, extra_headers=replay
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == CANNED
    journal = rig.journal
    assert journal.of("probe-inner") == []  # never reached: not one hook, not even on_finish
    assert journal.of("probe-outer") == [
        "on_request", "on_response", "on_finish",
        "on_request", "stream_transform", "on_response", "on_finish",
    ]  # fmt: skip
    assert journal.of("replay").count("on_response") == 2  # the answering step unwinds too
    assert journal.answered_by == ["replay"] * 4
    assert journal.records == [[]] * 4  # no upstream attempt, seen by both probes
    assert len(rig.gateway.oai_fake.recorder) == 0
    assert "X-AIGW-Cost-USD" not in raw.headers
    assert await rig.budget_used() == 0  # the reservation was released, nothing charged
    assert 'aigw_tokens_total{backend="primary"' not in await rig.metrics()

    async with rig.gateway.openai() as client:  # without the header: a normal, billed call
        await client.chat.completions.create(model="chat", messages=PROMPT)
    assert journal.of("probe-inner") == ["on_request", "on_response", "on_finish"]
    assert await rig.budget_used() > 0


@pytest.mark.parametrize("route_name", ["chat", "claude"])
async def test_a_transform_holding_back_three_chunks_keeps_the_text(
    rig: Rig, route_name: str
) -> None:
    hold = {"X-Test-Hold": "1"}
    async with rig.gateway.openai() as client:
        texts = []
        for headers in ({}, hold):
            stream = await client.chat.completions.create(
                model=route_name, messages=PROMPT, stream=True, extra_headers=headers
            )
            texts.append("".join([c.choices[0].delta.content or "" async for c in stream
                                  if c.choices]))  # fmt: skip
    async with rig.gateway.anthropic() as claude:
        for headers in ({}, hold):
            texts.append(await _claude_text(claude, route_name, headers))
    assert texts == ["Echo: " + WORDS] * 4
    assert rig.journal.hooks.count(("hold", "flush 3")) == 2


async def test_an_attempt_middleware_sees_every_attempt(rig: Rig) -> None:
    fake = rig.gateway.oai_fake
    fake.queue_fault(status=500)
    fake.queue_fault(status=500)
    async with rig.gateway.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="resilient", messages=PROMPT
        )
    assert raw.headers["X-AIGW-Backend"] == "second"
    assert rig.journal.attempts == [(1, "first"), (2, "second"), (3, "second")]
    assert rig.journal.records[-1] == [
        ("first", "upstream_error"), ("second", "upstream_error"), ("second", "ok"),
    ]  # fmt: skip
    assert [x.body["model"] for x in fake.recorder.exchanges] == ["gpt-4o", "gpt-4.1", "gpt-4.1"]

    # A stream that fails right after its 200 fails inside the attempt: it is retried too.
    rig.journal.attempts.clear()
    fake.queue_fault(error_after_chunks=0)
    async with rig.gateway.openai() as client:
        stream = await client.chat.completions.create(
            model="resilient", messages=PROMPT, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: " + WORDS
    assert rig.journal.attempts == [(1, "first"), (2, "second")]
    metrics = await rig.metrics()
    assert (
        'aigw_upstream_attempts_total{backend="first",outcome="upstream_error",route="resilient"}'
        " 2.0" in metrics
    )


async def test_an_attempt_middleware_can_forward_the_callers_traceparent(rig: Rig) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with rig.gateway.openai() as client:
        await client.chat.completions.create(
            model="chat", messages=PROMPT, extra_headers={"traceparent": traceparent}
        )
        await client.chat.completions.create(model="chat", messages=PROMPT)
    first, second = rig.gateway.oai_fake.recorder.exchanges
    assert first.header("traceparent") == traceparent
    assert second.header("traceparent") is None  # each attempt has its own copy of headers
    assert first.header("authorization") == second.header("authorization")


async def _collect(stream: AsyncIterator[Any], pieces: list[str]) -> None:
    async for chunk in stream:
        pieces.extend(c.delta.content or "" for c in chunk.choices)


async def _claude_text(
    claude: anthropic.AsyncAnthropic, model: str, headers: dict[str, str]
) -> str:
    async with claude.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": WORDS}],
        extra_headers=headers,
    ) as events:  # fmt: skip
        return "".join([t async for t in events.text_stream])


def _counter(metrics: str, outcome: str, route_name: str = "slow") -> float:
    for line in metrics.splitlines():
        if line.startswith("aigw_upstream_attempts_total{") and (
            f'outcome="{outcome}"' in line and f'route="{route_name}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        # (paced, so the failure comes after the 200 rather than inside the first batch)
        ({"cut_after_chunks": 3, "chunk_latency_ms": 60}, "upstream_unavailable"),
        ({"error_after_chunks": 3, "chunk_latency_ms": 60}, "upstream_error"),
        ({"chunk_latency_ms": 400}, "timeout"),  # the slow route's idleMs is 200
    ],
)
async def test_a_stream_failing_midway_is_not_an_ok_attempt(
    rig: Rig, fault: dict[str, Any], outcome: str
) -> None:
    rig.gateway.oai_fake.queue_fault(**fault)
    async with rig.gateway.openai() as client:
        stream = await client.chat.completions.create(model="slow", messages=PROMPT, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    metrics = await rig.metrics()
    assert _counter(metrics, outcome) == 1.0
    assert _counter(metrics, "ok") == 0.0
    assert rig.journal.records[-1] == [("primary", outcome)]


async def test_the_deadline_bounds_the_whole_stream(rig: Rig) -> None:
    rig.gateway.oai_fake.queue_fault(chunk_latency_ms=150)
    rig.gateway.claude_fake.queue_fault(chunk_latency_ms=150)
    limit = {"X-AIGW-Max-Latency-Ms": "500"}
    async with rig.gateway.openai() as client:
        stream = await client.chat.completions.create(
            model="chat", messages=PROMPT, stream=True, extra_headers=limit
        )
        pieces: list[str] = []
        with pytest.raises(openai.APIError) as failed:
            await _collect(stream, pieces)
    assert 0 < len(pieces) < len(WORDS.split()) + 1  # it started, and it was cut short
    body: Any = failed.value.body
    assert body["type"] == "timeout"
    assert body["code"] == "deadline_exceeded"
    async with rig.gateway.anthropic() as claude:
        with pytest.raises(anthropic.APIStatusError) as cut:
            await _claude_text(claude, "claude", limit)
    error: Any = cut.value.body
    assert error["error"]["aigw_type"] == "timeout"


async def test_an_unenforced_latency_limit_is_recorded(rig: Rig) -> None:
    docs = rig.gateway.docs
    docs[-1]["spec"]["mode"] = "warn"
    docs[-1]["spec"]["useCases"][0]["limits"] = {"maxLatencyMs": 300}
    rig.gateway.write_bundle(bundle_bytes(docs, revision=2))
    await rig.gateway.wait_revision(2)
    rig.gateway.oai_fake.queue_fault(chunk_latency_ms=100)
    async with rig.gateway.openai() as client:
        stream = await client.chat.completions.create(model="chat", messages=PROMPT, stream=True)
        pieces: list[str] = []
        await _collect(stream, pieces)
    assert "".join(pieces) == "Echo: " + WORDS  # warn mode cuts nothing...
    metrics = await rig.metrics()
    assert (  # ...and records what enforce would have done
        'aigw_policy_decisions_total{code="latency_limit_exceeded",step="constrain",'
        'verdict="warned"} 1.0' in metrics
    )
