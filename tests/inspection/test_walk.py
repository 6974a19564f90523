"""The answer walk: an unchanged answer is returned as it is (no copy), a changed one is a
copy with every text rewritten once and the original left alone (a cache may hold it)."""

from __future__ import annotations

import copy
import json

from aigw_sidecar.inspection import rewrite_answer

ANSWER = {
    "id": "x",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "mail bob@example.com"}},
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": ({"type": "text", "text": "part bob@example.com"},),
                "tool_calls": [
                    {"function": {"name": "f", "arguments": json.dumps({"a": "bob@example.com",
                                                                         "b": ["ok"]})}}
                ],
            },
        },
    ],
}  # fmt: skip


def test_an_unchanged_answer_is_the_same_object() -> None:
    seen: list[str] = []

    def keep(text: str, source: str) -> str | None:
        seen.append(text)
        return None

    assert rewrite_answer(ANSWER, keep) is ANSWER
    assert len(seen) == 4


def test_a_changed_answer_is_a_copy_with_each_text_rewritten_once() -> None:
    before = copy.deepcopy(ANSWER)
    calls: list[str] = []

    def mask(text: str, source: str) -> str | None:
        calls.append(text)
        return text.replace("bob@example.com", "[EMAIL_1]") if "@" in text else None

    out = rewrite_answer(ANSWER, mask)
    assert before == ANSWER
    assert len(calls) == 4
    assert "bob@" not in json.dumps(out)
    assert out["choices"][0]["message"]["content"] == "mail [EMAIL_1]"
    assert out["choices"][1]["message"]["content"][0]["text"] == "part [EMAIL_1]"
    arguments = json.loads(out["choices"][1]["message"]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"a": "[EMAIL_1]", "b": ["ok"]}
