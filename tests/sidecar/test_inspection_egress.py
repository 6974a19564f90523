"""Inspection of the answer through the real sidecar: a secret the provider plants never
reaches the caller, whole or split across any chunk boundary (OpenAI JSON and SSE,
Anthropic JSON and events); tool calls outside the allowlist are refused in all three wire
forms; placeholders come back to the caller only when the policy says so."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from aigw_fakeprovider import FakeProvider

from .conftest import Gateway
from .inspecting import CARD, EMAIL, GITHUB, IBAN, Recorder, inspecting_gateway

STRICT_MASK = {"redaction": {"profile": "strict", "mode": "mask"}}
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
SPLIT_VALUES = [(GITHUB, "[TOKEN_1]"), (EMAIL, "[EMAIL_1]"), (CARD, "[CARD_1]"), (IBAN, "[IBAN_1]")]


async def _openai_stream(client: openai.AsyncOpenAI, model: str = "chat") -> str:
    stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def _anthropic_stream(claude: anthropic.AsyncAnthropic, model: str = "claude") -> str:
    async with claude.messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return await stream.get_final_text()


@pytest.mark.parametrize(("value", "placeholder"), SPLIT_VALUES)
async def test_a_planted_secret_split_at_every_boundary_never_reaches_the_caller(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, value: str, placeholder: str
) -> None:
    text = f"Here it is: {value} - keep it safe."
    start = text.index(value)
    expected = text.replace(value, placeholder)
    async with (
        inspecting_gateway(tmp_path, oai_fake, claude_fake, STRICT_MASK) as gw,
        gw.openai() as client,
        gw.anthropic() as claude,
    ):
        for cut in range(start + 1, start + len(value)):
            pieces = (text[:cut], text[cut:])
            oai_fake.queue_fault(reply_pieces=pieces)
            assert await _openai_stream(client) == expected, cut
            claude_fake.queue_fault(reply_pieces=pieces)
            assert await _anthropic_stream(claude) == expected, cut
        one_char_each = tuple(text)
        oai_fake.queue_fault(reply_pieces=one_char_each)
        assert await _openai_stream(client) == expected
        claude_fake.queue_fault(reply_pieces=one_char_each)
        assert await _anthropic_stream(claude) == expected
        # across caller APIs: Anthropic events from an OpenAI backend, and the other way
        oai_fake.queue_fault(reply_pieces=(text[: start + 3], text[start + 3 :]))
        assert await _anthropic_stream(claude, "chat") == expected
        claude_fake.queue_fault(reply_pieces=(text[: start + 5], text[start + 5 :]))
        assert await _openai_stream(client, "claude") == expected
        # complete answers (JSON), both caller APIs
        for fake in (oai_fake, claude_fake):
            fake.queue_fault(reply=text)
        completion = await client.chat.completions.create(model="chat", messages=HI)
        assert completion.choices[0].message.content == expected
        message = await claude.messages.create(
            model="claude", max_tokens=200, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == expected


async def test_raw_sse_bytes_hold_no_secret_and_the_stream_ends_well(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    text = f"token {GITHUB} and mail {EMAIL}."
    async with inspecting_gateway(tmp_path, oai_fake, claude_fake, STRICT_MASK) as gw:
        async with gw.openai() as client:
            oai_fake.queue_fault(
                reply_pieces=tuple(text[i : i + 3] for i in range(0, len(text), 3))
            )
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=HI, stream=True, stream_options={"include_usage": True}
            )
            body = await raw.http_response.aread()
        assert GITHUB.encode() not in body
        assert EMAIL.encode() not in body
        events = [json.loads(line[6:]) for line in body.decode().splitlines()
                  if line.startswith("data: {")]  # fmt: skip
        assert events[-1]["usage"]["completion_tokens"] > 0  # usage counted before redaction
        finishes = [c["choices"][0]["finish_reason"] for c in events if c["choices"]]
        assert finishes[-1] == "stop"
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in events
                          if c["choices"])  # fmt: skip
        assert content == "token [TOKEN_1] and mail [EMAIL_1]."


@pytest.mark.parametrize("stream", [False, True])
async def test_restore_in_answer_gives_the_caller_its_own_values_back(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, stream: bool
) -> None:
    prompt: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"mail {EMAIL} now"}]
    for restore, expected in (
        (True, f"Echo: mail {EMAIL} now"),
        (False, "Echo: mail [EMAIL_1] now"),
    ):
        settings = {"redaction": {"profile": "pii", "mode": "mask", "restoreInAnswer": restore}}
        async with (
            inspecting_gateway(tmp_path / str(restore), oai_fake, claude_fake, settings) as gw,
            gw.openai() as client,
        ):
            if stream:
                chunks = await client.chat.completions.create(
                    model="chat", messages=prompt, stream=True
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                )
            else:
                completion = await client.chat.completions.create(model="chat", messages=prompt)
                text = completion.choices[0].message.content or ""
        assert text == expected
        assert EMAIL not in json.dumps(oai_fake.recorder.last.body)


async def test_a_new_value_in_the_answer_is_masked_not_restored(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    other = "someone.else@example.org"
    settings = {"redaction": {"profile": "pii", "mode": "mask", "restoreInAnswer": True}}
    async with (
        inspecting_gateway(tmp_path, oai_fake, claude_fake, settings) as gw,
        gw.openai() as client,
    ):
        oai_fake.queue_fault(reply=f"[EMAIL_1] and {other}")
        completion = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"mail {EMAIL}"}]
        )
    assert completion.choices[0].message.content == f"{EMAIL} and [EMAIL_2]"


async def test_block_mode_refuses_an_answer_with_a_secret(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    settings = {"redaction": {"profile": "secrets", "mode": "block"}}
    async with (
        inspecting_gateway(tmp_path, oai_fake, claude_fake, settings) as gw,
        gw.openai() as client,
    ):
        oai_fake.queue_fault(reply=f"the token is {GITHUB}")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="chat", messages=HI)
        assert caught.value.code == "sensitive_data_in_answer"
        assert GITHUB not in str(caught.value.body)
        words = ["Fine", " so", " far", " then", f" {GITHUB}", " oops"]
        oai_fake.queue_fault(reply_pieces=tuple(words), chunk_latency_ms=5)
        received: list[str] = []

        async def read() -> None:
            stream = await client.chat.completions.create(model="chat", messages=HI, stream=True)
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")

        with pytest.raises(openai.APIError) as mid_stream:
            await read()
        assert "sensitive data" in str(mid_stream.value)
        assert GITHUB not in "".join(received)


TOOLS = {"tools": ["get_weather"], "redaction": {"profile": "secrets"}}


async def _openai_call(gw: Gateway, stream: bool) -> str:
    async with gw.openai() as client:
        if not stream:
            completion = await client.chat.completions.create(model="chat", messages=HI)
            return completion.choices[0].finish_reason
        chunks = await client.chat.completions.create(model="chat", messages=HI, stream=True)
        return [c.choices[0].finish_reason async for c in chunks if c.choices][-1] or ""


async def _anthropic_call(gw: Gateway, stream: bool) -> str:
    async with gw.anthropic() as claude:
        if not stream:
            message = await claude.messages.create(
                model="claude", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
            return message.stop_reason or ""
        async with claude.messages.stream(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as events:
            final = await events.get_final_message()
            return final.stop_reason or ""


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("form", ["tool_calls", "function_call", "tool_use"])
async def test_a_tool_outside_the_allowlist_is_blocked_in_every_wire_form(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, form: str, stream: bool
) -> None:
    recorder = Recorder()
    async with inspecting_gateway(tmp_path, oai_fake, claude_fake, TOOLS, recorder=recorder) as gw:
        fake = claude_fake if form == "tool_use" else oai_fake
        call = _anthropic_call if form == "tool_use" else _openai_call
        legacy = form == "function_call"
        fake.queue_fault(call_tool="get_weather", tool_arguments='{"city":"Paris"}',
                         legacy_function_call=legacy)  # fmt: skip
        assert await call(gw, stream) in ("tool_calls", "function_call", "tool_use")
        fake.queue_fault(call_tool="rm_rf", tool_arguments='{"path":"/"}',
                         legacy_function_call=legacy)  # fmt: skip
        error = anthropic.APIError if form == "tool_use" else openai.APIError
        with pytest.raises(error) as caught:
            await call(gw, stream)
        assert "tool the use case does not allow: rm_rf" in str(caught.value)
    blocked = [e for e in recorder.events() if e["kind"] == "tool_call"]
    assert blocked == [
        {"direction": "response", "kind": "tool_call", "category": "tool_not_allowed",
         "detector": "tools_allowlist", "action": "blocked",
         "source": "function_call" if legacy and stream else "tool_calls", "count": 1}
    ]  # fmt: skip


async def test_a_tool_outside_the_allowlist_is_only_flagged_under_warn(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        inspecting_gateway(tmp_path, oai_fake, claude_fake, TOOLS, mode="warn") as gw,
        gw.openai() as client,
    ):
        oai_fake.queue_fault(call_tool="rm_rf")
        raw = await client.chat.completions.with_raw_response.create(model="chat", messages=HI)
    assert raw.parse().choices[0].finish_reason == "tool_calls"
    assert "not allowed: rm_rf" in raw.headers["x-aigw-warning"]


async def test_tool_arguments_in_an_answer_are_redacted_in_streams(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        inspecting_gateway(tmp_path, oai_fake, claude_fake, {"tools": None, **STRICT_MASK}) as gw,
        gw.openai() as client,
    ):
        oai_fake.queue_fault(call_tool="notify", tool_arguments=json.dumps({"to": EMAIL}))
        chunks = await client.chat.completions.create(model="chat", messages=HI, stream=True)
        arguments = ""
        async for chunk in chunks:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                arguments += call.function.arguments or "" if call.function else ""
    assert json.loads(arguments) == {"to": "[EMAIL_1]"}
