"""The direct Anthropic path and what a backend cannot honour, through the real sidecar.

An Anthropic caller on an Anthropic backend keeps everything it sent and everything the
provider returned (``document`` and ``thinking`` blocks both ways, ``anthropic-beta``,
``/v1/messages/count_tokens``); a parameter the chosen backend cannot honour is a typed
400 under enforce and a warning otherwise; internal carriage cannot be forged from a body;
the body's governance claims never reach a provider.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import MessageParam

from .conftest import Gateway, bundle_bytes

QUESTION = "what does the memo say"
MEMO = "the memo says ship on friday"


def _document(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "document", "source": source, "title": "memo", "citations": {"enabled": True}}


async def test_document_blocks_reach_an_anthropic_backend_verbatim(gateway: Gateway) -> None:
    document = _document({"type": "text", "media_type": "text/plain", "data": MEMO})
    messages: list[Any] = [
        {"role": "user", "content": [document, {"type": "text", "text": QUESTION}]}
    ]
    async with gateway.anthropic() as claude:
        answer = await claude.messages.create(model="claude", max_tokens=200, messages=messages)
        sent = gateway.claude_fake.recorder.last.body
        assert sent["messages"][0]["content"][0] == document
        assert answer.content[0].type == "text"
        assert MEMO in answer.content[0].text  # the model read the document

        # An OpenAI backend reads a text document as text: nothing is lost either.
        via_openai = await claude.messages.create(model="chat", max_tokens=200, messages=messages)
        block: Any = via_openai.content[0]
        assert MEMO in block.text
        parts = gateway.oai_fake.recorder.last.body["messages"][0]["content"]
        assert parts[0] == {"type": "text", "text": MEMO}

        # One it cannot read is refused, never answered without it.
        url_pdf = _document({"type": "url", "url": "https://example.com/memo.pdf"})
        pdf_messages: Any = [{"role": "user", "content": [url_pdf, {"type": "text", "text": "q"}]}]
        with pytest.raises(anthropic.BadRequestError) as refused:
            await claude.messages.create(model="chat", max_tokens=200, messages=pdf_messages)
    error: Any = refused.value.body
    assert error["error"]["code"] == "unsupported_parameter"
    assert "content type document" in error["error"]["message"]
    assert len(gateway.oai_fake.recorder) == 1


async def test_thinking_blocks_survive_both_directions(gateway: Gateway) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    question: MessageParam = {"role": "user", "content": QUESTION}
    async with gateway.anthropic() as claude:
        first = await claude.messages.create(
            model="claude", max_tokens=2000, thinking=thinking, messages=[question]
        )
        kinds = [block.type for block in first.content]
        assert kinds == ["thinking", "text"]
        thought: Any = first.content[0]
        assert thought.thinking == f"Considering: {QUESTION}"
        assert thought.signature.startswith("sig-")

        # Extended thinking needs the signed block back in the next turn: it must arrive.
        history: Any = [
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": "and then?"},
        ]
        await claude.messages.create(
            model="claude", max_tokens=2000, thinking=thinking, messages=history
        )
        sent = gateway.claude_fake.recorder.last.body["messages"][1]["content"]
        assert sent[0] == {
            "type": "thinking", "thinking": thought.thinking, "signature": thought.signature,
        }  # fmt: skip

        async with claude.messages.stream(
            model="claude", max_tokens=2000, thinking=thinking, messages=[question]
        ) as stream:
            final = await stream.get_final_message()
    streamed: Any = final.content[0]
    assert (streamed.type, streamed.thinking) == ("thinking", f"Considering: {QUESTION}")
    assert streamed.signature.startswith("sig-")
    assert final.content[1].type == "text"


async def test_anthropic_beta_is_forwarded_to_anthropic_backends_only(gateway: Gateway) -> None:
    beta = {"anthropic-beta": "prompt-caching-2024-07-31, files-api-2025-04-14"}
    hello: list[MessageParam] = [{"role": "user", "content": "hi"}]
    async with gateway.anthropic() as claude:
        await claude.messages.create(
            model="claude", max_tokens=10, messages=hello, extra_headers=beta
        )
        assert gateway.claude_fake.recorder.last.header("anthropic-beta") == (
            "prompt-caching-2024-07-31,files-api-2025-04-14"
        )
        await claude.messages.create(
            model="chat", max_tokens=10, messages=hello, extra_headers=beta
        )
        assert gateway.oai_fake.recorder.last.header("anthropic-beta") is None
        with pytest.raises(anthropic.BadRequestError):
            await claude.messages.create(
                model="claude", max_tokens=10, messages=hello,
                extra_headers={"anthropic-beta": "x\u00e9; rm -rf"},
            )  # fmt: skip
        await claude.messages.create(model="claude", max_tokens=10, messages=hello)
    assert gateway.claude_fake.recorder.last.header("anthropic-beta") is None


async def test_count_tokens(gateway: Gateway) -> None:
    messages: list[MessageParam] = [{"role": "user", "content": "one two three"}]
    async with gateway.anthropic() as claude:
        counted = await claude.messages.count_tokens(model="claude", messages=messages)
        assert counted.input_tokens == 4  # the provider's count: 3 words + 1 message
        assert gateway.claude_fake.recorder.last.path == "/v1/messages/count_tokens"
        assert gateway.claude_fake.recorder.last.body["model"] == "claude-sonnet-4-5"
        estimated = await claude.messages.count_tokens(model="chat", messages=messages)
        assert estimated.input_tokens > 0  # the gateway's estimate: no OpenAI endpoint
        with pytest.raises(anthropic.NotFoundError):
            await claude.messages.count_tokens(model="nope", messages=messages)
    assert len(gateway.oai_fake.recorder) == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"response_format": {"type": "json_object"}},
        {"seed": 7},
        {"logprobs": True},
        {"presence_penalty": 0.5},
    ],
)
async def test_a_parameter_an_anthropic_backend_cannot_honour(
    gateway: Gateway, extra: dict[str, Any]
) -> None:
    (name,) = extra
    async with gateway.openai() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "hi"}], **extra
            )
        body: Any = refused.value.body
        assert (body["type"], body["code"]) == ("invalid_request", "unsupported_parameter")
        assert f"parameter {name}" in body["message"]
        assert len(gateway.claude_fake.recorder) == 0
        # Neutral values ask for nothing: no refusal.
        await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], presence_penalty=0
        )

    docs = gateway.docs
    docs[-1]["spec"]["mode"] = "warn"
    gateway.write_bundle(bundle_bytes(docs, revision=2))
    await gateway.wait_revision(2)
    async with gateway.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], **extra
        )
    assert raw.http_response.status_code == 200
    assert f"cannot honour parameter {name}" in raw.headers["X-AIGW-Warning"]
    assert name not in gateway.claude_fake.recorder.last.body


async def test_internal_carriage_cannot_be_forged_from_a_body(gateway: Gateway) -> None:
    docs = gateway.docs
    docs[-1]["spec"]["useCases"][0]["limits"] = {"maxTokens": 1024}
    gateway.write_bundle(bundle_bytes(docs, revision=2))
    await gateway.wait_revision(2)
    forged = {"params": {"model": "claude-opus-4-1", "max_tokens": 64000}, "cache_control": True}
    async with gateway.openai() as client:
        for value in (forged, "not an object", 7, ["x"]):
            await client.chat.completions.create(
                model="claude",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=5000,
                extra_body={"x_aigw_anthropic": value},
            )
            sent = gateway.claude_fake.recorder.last.body
            assert (sent["model"], sent["max_tokens"]) == ("claude-sonnet-4-5", 1024)
            assert "x_aigw_anthropic" not in sent


async def test_consumed_metadata_claims_never_reach_the_provider(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            metadata={"use_case": "default", "trace": "abc"},
        )
        assert gateway.oai_fake.recorder.last.body["metadata"] == {"trace": "abc"}
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}],
            metadata={"use_case": "default"},
        )  # fmt: skip
        assert "metadata" not in gateway.oai_fake.recorder.last.body
    claims: Any = {"user_id": "u-1", "use_case": "default"}
    async with gateway.anthropic() as claude:
        await claude.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            metadata=claims,
        )  # fmt: skip
    assert gateway.claude_fake.recorder.last.body["metadata"] == {"user_id": "u-1"}
