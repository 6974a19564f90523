"""OpenAI <-> Anthropic translation, field by field (pure functions, no servers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aigw_sidecar.adapters.anthropic_stream import AnthropicToOpenAI
from aigw_sidecar.adapters.anthropic_translate import (
    anthropic_response_to_openai,
    anthropic_unsupported,
    anthropic_usage_to_openai,
    openai_request_to_anthropic,
    openai_usage_to_anthropic,
)
from aigw_sidecar.errors import UpstreamUnavailable
from aigw_sidecar.frontends.anthropic_request import (
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)
from aigw_sidecar.frontends.anthropic_stream import OpenAIToAnthropic
from aigw_sidecar.governance import format_usd
from aigw_sidecar.settings import parse_downward_labels


def test_openai_request_to_anthropic_maps_every_part() -> None:
    body = {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "rule one"},
            {"role": "developer", "content": [{"type": "text", "text": "rule two"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                    {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "thanks"},
        ],
        "max_completion_tokens": 77,
        "temperature": 0.5,
        "stop": "END",
        "user": "u-1",
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
    }
    out = openai_request_to_anthropic(body, "claude-x", stream=True)
    assert out["model"] == "claude-x"
    assert out["system"] == [
        {"type": "text", "text": "rule one"},
        {"type": "text", "text": "rule two"},
    ]
    assert out["max_tokens"] == 77
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-1"}
    assert out["stream"] is True
    assert out["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}
    assert out["tools"] == [{"name": "f", "description": "", "input_schema": {"type": "object"}}]
    user, assistant, results = out["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"},
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://example.test/a.png"}
    assert [b["type"] for b in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert assistant["content"][2]["input"] == {}
    # Consecutive tool results merge into one user turn, then the next user text joins it.
    assert results["role"] == "user"
    assert [b["tool_use_id"] for b in results["content"] if b["type"] == "tool_result"] == [
        "c1",
        "c2",
    ]
    assert results["content"][-1] == {"type": "text", "text": "thanks"}


def test_openai_request_defaults_and_choices() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": "required",
    }
    out = openai_request_to_anthropic(body, "c", stream=False)
    assert out["max_tokens"] == 4096
    assert "tool_choice" not in out  # no tools: no choice
    assert "stream" not in out
    # A part an Anthropic backend cannot take is named (the upstream call refuses it under
    # enforce and warns otherwise), and left out of the translation.
    audio = {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}
    assert anthropic_unsupported(audio) == ["content type input_audio"]
    assert openai_request_to_anthropic(audio, "c", stream=False)["messages"][0]["content"] == []


def test_anthropic_response_to_openai() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "a"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    }
    out = anthropic_response_to_openai(message)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "a"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    assert out["usage"]["prompt_tokens"] == 14
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert out["usage"]["total_tokens"] == 19


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    out = anthropic_response_to_openai({"content": [], "stop_reason": stop})
    assert out["choices"][0]["finish_reason"] == finish


def test_anthropic_request_to_openai_and_back() -> None:
    body = {
        "model": "chat",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "sys"}],
        "stop_sequences": ["X"],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "metadata": {"user_id": "u"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                    },
                    {"type": "text", "text": "what?"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "ok"}],
                    }
                ],
            },
        ],
    }
    out, _ = anthropic_request_to_openai(body)
    assert out["messages"][0] == {"role": "system", "content": "sys"}
    assert out["messages"][1]["content"][0]["image_url"]["url"] == "data:image/png;base64,AA"
    assert out["messages"][2]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "t", "content": "ok"}
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False
    assert out["stop"] == ["X"]
    assert out["user"] == "u"
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "not json"}}],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    back = openai_response_to_anthropic(completion, "chat")
    assert back["id"] == "msg_chatcmpl-1"
    assert back["stop_reason"] == "max_tokens"
    assert back["content"][1]["input"] == {}
    assert back["usage"] == {"input_tokens": 3, "output_tokens": 2}


def test_anthropic_stream_to_openai_chunks() -> None:
    translate = AnthropicToOpenAI("fallback-model")
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"id": "m", "model": "claude", "usage": {"input_tokens": 7}},
        },
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "f"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ": 1}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    chunks = [c for e in events for c in translate.feed(e["type"], e)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["model"] == "claude"
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"] == "t"
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[2:5]
    )
    assert json.loads(arguments) == {"a": 1}
    assert chunks[5]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[6]["choices"] == []
    assert chunks[6]["usage"]["prompt_tokens"] == 7
    assert chunks[6]["usage"]["completion_tokens"] == 9
    with pytest.raises(UpstreamUnavailable):  # a 529 in the stream: retryable by default
        translate.feed("error", {"type": "error", "error": {"type": "overloaded_error"}})


def test_openai_chunks_to_anthropic_events() -> None:
    translate = OpenAIToAnthropic("chat")
    chunks: list[dict[str, Any]] = [
        {"id": "c", "choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"id": "c", "choices": [{"delta": {"content": "Hel"}}]},
        {"id": "c", "choices": [{"delta": {"content": "lo"}}]},
        {
            "id": "c",
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}
                        ]
                    }
                }
            ],
        },
        {
            "id": "c",
            "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}],
        },
        {"id": "c", "choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6}},
    ]
    events = [e for c in chunks for e in translate.feed(c)] + translate.finish()
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "t",
        "name": "f",
        "input": {},
    }
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"
    assert events[8][1]["usage"] == {"input_tokens": 4, "output_tokens": 6}


def test_empty_stream_still_closes_properly() -> None:
    names = [name for name, _ in OpenAIToAnthropic("chat").finish()]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_money_and_labels() -> None:
    # One money unit (nano-USD) and one formatter for headers, metrics and budgets.
    assert format_usd(0) == "0.000000000"
    assert format_usd(1_500) == "0.000001500"
    assert format_usd(3 * 10**9 + 1) == "3.000000001"
    labels = parse_downward_labels('app="support"\napp.kubernetes.io/name="a\\"b"\nbroken\n')
    assert labels == {"app": "support", "app.kubernetes.io/name": 'a"b'}


def test_cache_token_usage_round_trips() -> None:
    anthropic_usage = {
        "input_tokens": 10,
        "output_tokens": 3,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
    }
    openai_usage = anthropic_usage_to_openai(anthropic_usage)
    assert openai_usage["prompt_tokens"] == 160
    assert openai_usage_to_anthropic(openai_usage) == anthropic_usage
    assert openai_usage_to_anthropic({"prompt_tokens": 5, "completion_tokens": 1}) == {
        "input_tokens": 5,
        "output_tokens": 1,
    }
