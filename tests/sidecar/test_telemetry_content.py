"""Prompt and answer content on spans (``telemetry.captureContent``), end to end and bounded.

The real ``aigw sidecar`` process exports to the real (Go-built) Collector. A use case that
opts in gets ``gen_ai.input.messages`` / ``gen_ai.output.messages`` on its inference spans,
as redaction left them: a secret in the prompt, a secret the provider plants in its answer
(whole, and split across stream chunks to the openai and the anthropic SDK) and a caller's
e-mail address given back to the caller by ``restoreInAnswer`` never reach the Collector,
only their placeholders do. A use case that does not opt in (the default) sends no content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from aigw_e2e import Collector
from aigw_fakeprovider import FakeProvider
from aigw_sidecar.telemetry.content import MAX_TEXT, input_messages, output_messages

from .conftest import APP_KEY, CANARY_OPENAI, NAMESPACE, backend, bundle_bytes, route, write_secrets
from .inspecting import EMAIL, github_token
from .tracing import CLIENT, SERVER, attributes, spans, trace_of, traced_sidecar

PROMPT_SECRET = github_token("promptsecret")
ANSWER_SECRET = github_token("answersecret")
NAMES = ("open", "planted", "stream", "closed", "anthropic")
TRACES = {name: f"{n:x}" * 32 for n, name in enumerate(NAMES, 1)}


def _docs(oai: FakeProvider) -> list[dict[str, Any]]:
    strict = {"profile": "strict", "mode": "mask", "restoreInAnswer": True}
    return [
        route(
            "chat", [backend("primary", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")]
        ),
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "AIPolicy",
            "metadata": {"name": "app", "namespace": NAMESPACE},
            "spec": {
                "tenant": "acme",
                "useCases": [
                    {
                        "name": "open",
                        "routes": ["chat"],
                        "redaction": strict,
                        "telemetry": {"captureContent": True},
                    },
                    {"name": "closed", "routes": ["chat"], "redaction": strict},
                ],
            },
        },
    ]


def _headers(use_case: str, trace: str) -> dict[str, str]:
    return {"X-AIGW-Use-Case": use_case, "traceparent": f"00-{TRACES[trace]}-{'1' * 16}-01"}


def _client_span(collector: Collector, trace: str) -> dict[str, Any]:
    found = trace_of(collector, TRACES[trace], 2)
    [client] = [s for s in found if s["kind"] == CLIENT]
    assert {s["kind"] for s in found} == {SERVER, CLIENT}
    return attributes(client)


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [p["content"] for m in messages for p in m["parts"] if p["type"] == "text"]


@pytest.mark.k8s  # the Collector is one of the Go-built tools
async def test_content_on_spans_only_when_the_policy_opts_in_and_always_redacted(
    tmp_path: Path, otel_collector: Collector, oai_fake: FakeProvider
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(_docs(oai_fake)))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otel_collector.otlp_http_endpoint}
    env["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    prompt = f"persimmon note for {EMAIL} with token {PROMPT_SECRET}"
    messages: Any = [
        {"role": "system", "content": "You are the lighthouse keeper."},
        {"role": "user", "content": prompt},
    ]
    async with (
        traced_sidecar(bundle, write_secrets(tmp_path), env) as sidecar,
        openai.AsyncOpenAI(base_url=f"{sidecar.url}/v1", api_key=APP_KEY, max_retries=0) as client,
    ):
        # 1. Opted in: the echoed answer names the caller's e-mail placeholder, which the
        # caller gets back as its own value (restoreInAnswer); the span keeps the placeholder.
        answer = await client.chat.completions.create(
            model="chat", messages=messages, extra_headers=_headers("open", "open")
        )
        assert EMAIL in (answer.choices[0].message.content or "")
        assert PROMPT_SECRET not in json.dumps(oai_fake.recorder.exchanges[-1].body)
        # 2. A secret the provider plants in a complete answer.
        oai_fake.queue_fault(reply=f"the vault token is {ANSWER_SECRET} ok")
        planted = await client.chat.completions.create(
            model="chat", messages=messages, extra_headers=_headers("open", "planted")
        )
        assert ANSWER_SECRET not in (planted.choices[0].message.content or "")
        # 3. The same, streamed and split inside the secret.
        cut = len("the vault token is ") + 9
        text = f"the vault token is {ANSWER_SECRET} ok"
        oai_fake.queue_fault(reply_pieces=(text[:cut], text[cut:]))
        stream = await client.chat.completions.create(
            model="chat",
            messages=messages,
            stream=True,
            extra_headers=_headers("open", "stream"),
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert ANSWER_SECRET not in streamed
        # 4. The Anthropic SDK (its system parameter; a streamed answer with a planted secret).
        oai_fake.queue_fault(reply_pieces=(text[:cut], text[cut:]))
        async with (
            anthropic.AsyncAnthropic(base_url=sidecar.url, api_key=APP_KEY, max_retries=0) as a,
            a.messages.stream(
                model="chat",
                max_tokens=100,
                system="You are the lighthouse keeper.",
                messages=[{"role": "user", "content": prompt}],
                extra_headers=_headers("open", "anthropic"),
            ) as events,
        ):
            assert ANSWER_SECRET not in await events.get_final_text()
        # 5. Not opted in (the default): no content.
        closed_prompt = f"quokka note for {EMAIL} with token {PROMPT_SECRET}"
        await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": closed_prompt}],
            extra_headers=_headers("closed", "closed"),
        )

    opened = _client_span(otel_collector, "open")
    inputs = json.loads(opened["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["system", "user"]
    [system, user] = _texts(inputs)
    assert system == "You are the lighthouse keeper."
    assert user == "persimmon note for [EMAIL_1] with token [TOKEN_1]"
    [output] = json.loads(opened["gen_ai.output.messages"])
    assert (output["role"], output["finish_reason"]) == ("assistant", "stop")
    assert _texts([output]) == [f"Echo: {user}"]  # before the caller's values were restored
    assert "aigw.content.truncated" not in opened

    for trace in ("planted", "stream", "anthropic"):
        found = _client_span(otel_collector, trace)
        [output] = json.loads(found["gen_ai.output.messages"])
        assert _texts([output]) == ["the vault token is [TOKEN_2] ok"], trace
        assert _texts(json.loads(found["gen_ai.input.messages"]))[1] == user

    closed = _client_span(otel_collector, "closed")
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in closed)

    raw = otel_collector.output("traces").read_text()
    for secret in (PROMPT_SECRET, ANSWER_SECRET, EMAIL, CANARY_OPENAI, APP_KEY, "quokka"):
        assert secret not in raw
    assert "persimmon" in raw  # the opted-in prompt, redacted, is there
    assert len(spans(otel_collector.read("traces"))) == 10


def test_content_is_bounded_keeps_the_latest_turns_and_never_copies_binary_parts() -> None:
    big = "x" * (MAX_TEXT * 2)
    image = "data:image/png;base64," + "A" * 100_000
    body = {
        "messages": [
            {"role": "user", "content": big},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "tide"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "high tide at noon"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [
                    {"type": "text", "text": "chart:"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and this picture?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
        ]
    }
    found = input_messages(body)
    assert found is not None
    assert found.truncated
    assert len(found.value) < MAX_TEXT + 1024
    assert "base64" not in found.value
    messages = json.loads(found.value)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert messages[1]["parts"] == [
        {"type": "tool_call", "name": "lookup", "id": "call_1", "arguments": '{"q": "tide"}'}
    ]
    assert messages[2]["parts"] == [
        {"type": "tool_call_response", "response": "high tide at noon", "id": "call_1"}
    ]
    assert messages[3]["parts"] == [
        {"type": "tool_call_response", "response": "chart:", "id": "call_2"}
    ]
    assert messages[4]["parts"] == [
        {"type": "text", "content": "and this picture?"},
        {"type": "image_url"},
    ]
    assert messages[0]["parts"][0]["content"] == "x" * len(messages[0]["parts"][0]["content"])
    # Many turns: the latest are kept, in order.
    turns = {"messages": [{"role": "user", "content": f"turn {i}"} for i in range(200)]}
    kept = json.loads((input_messages(turns) or pytest.fail("no messages")).value)
    assert _texts(kept) == [f"turn {i}" for i in range(136, 200)]
    # A hostile answer: odd shapes are skipped, never an error.
    odd = output_messages([None, {"message": "text"}, {"message": {"content": 5}}])
    assert odd is not None
    assert [m["parts"] for m in json.loads(odd.value)] == [[], []]
