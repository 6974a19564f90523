"""Offline token estimates: conservative, deterministic, covering every part of a request."""

from __future__ import annotations

import pytest

from aigw_sidecar.governance import EstimateCounter, count_prompt
from aigw_sidecar.governance.tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING

EST = EstimateCounter()


def test_text_is_utf8_bytes_over_three_rounded_up() -> None:
    assert EST.count("") == 0
    assert EST.count("abc") == 1
    assert EST.count("abcd") == 2
    assert EST.count("日本語") == 3  # 9 bytes


def test_chat_messages_tools_and_images() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},  # 8 bytes -> 3
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},  # 13 bytes -> 5
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64," + "A" * 9000},
                    },
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    tools_json = '[{"type":"function","function":{"name":"f"}}]'
    expected = 2 * MESSAGE_OVERHEAD + 3 + 5 + IMAGE_TOKENS + REPLY_PRIMING + EST.count(tools_json)
    assert count_prompt(body, EST) == expected


def test_anthropic_system_and_embeddings_inputs() -> None:
    assert (
        count_prompt({"system": "abc", "messages": []}, EST) == MESSAGE_OVERHEAD + 1 + REPLY_PRIMING
    )
    assert count_prompt({"input": ["abc", "abcdef"]}, EST) == 3
    assert count_prompt({"input": [1, 2, 3, 4]}, EST) == 4  # token ids count as themselves


def test_estimate_over_counts_english_against_an_exact_tokenizer() -> None:
    bpe = pytest.importorskip("bpe_openai")
    encoding = bpe.get_encoding("o200k_base")
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert EST.count(text) >= len(encoding.encode_ordinary(text))
