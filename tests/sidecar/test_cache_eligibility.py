"""One cache eligibility rule: the cache step and ``aigw replay`` agree on every request.

A table of requests (chat, streamed, embeddings, Anthropic messages and count_tokens; every
data classification against the default and a narrowed exclusion list; ``Cache-Control:
no-store``; a use case without caching; one with only the semantic cache) goes through a
real sidecar with the official SDKs. Each call's audit record says whether the cache was
asked (``X-AIGW-Cache``); that must be the table's expectation, the answer of
:func:`aigw_sidecar.cache.eligibility.cache_eligible` on the record, and what ``aigw
replay`` computes for the record against the same bundle (no cache-eligibility change).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigw_contract import DataClassification
from aigw_contract.policy import CacheSettings
from aigw_fakeprovider import FakeProvider
from aigw_sidecar.cache.eligibility import ASKED_OUTCOMES, cache_eligible, cache_rule

from .auditing import aigw, audited_gateway, policy_doc, records
from .conftest import backend, route

ALL = ["public", "internal", "confidential", "restricted"]
EXACT = {"exact": {"enabled": True}}


def _docs(oai: FakeProvider, claude: FakeProvider) -> list[dict[str, Any]]:
    def use_case(name: str, cache: dict[str, Any] | None) -> dict[str, Any]:
        found: dict[str, Any] = {"name": name, "routes": ["chat", "embed", "claude"]}
        found["dataClassifications"] = ALL
        if cache is not None:
            found["cache"] = cache
        return found

    semantic = {"semantic": {"enabled": True, "embeddingsRoute": "embed"}}
    return [
        route("chat", [backend("p", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")]),
        route(
            "embed",
            [backend("e", "openai", oai.openai_base_url, "text-embedding-3-small", key="openai")],
        ),
        route(
            "claude",
            [backend("s", "anthropic", claude.base_url, "claude-sonnet-4-5", key="anthropic")],
        ),
        policy_doc(
            {
                "useCases": [
                    use_case("exact", EXACT),
                    use_case("loose", {**EXACT, "excludedClassifications": ["restricted"]}),
                    use_case("off", None),
                    use_case("semantic", semantic),
                ]
            }
        ),
    ]


# (use case, what, classification, no-store) -> the cache is asked
TABLE: list[tuple[str, str, str, bool, bool]] = [
    ("exact", "chat", "internal", False, True),
    ("exact", "stream", "internal", False, True),
    ("exact", "chat", "public", False, True),
    ("exact", "chat", "restricted", False, False),
    ("exact", "stream", "restricted", False, False),
    ("exact", "chat", "confidential", False, False),  # excluded by default
    ("loose", "chat", "confidential", False, True),  # not in its narrowed list
    ("loose", "chat", "restricted", False, False),  # always excluded
    ("exact", "embeddings", "internal", False, True),
    ("exact", "messages", "internal", False, True),  # Anthropic API: a chat
    ("exact", "count_tokens", "internal", False, False),  # not an answer: never cached
    ("exact", "chat", "internal", True, False),  # Cache-Control: no-store
    ("off", "chat", "internal", False, False),
    ("off", "embeddings", "internal", False, False),
    ("semantic", "chat", "internal", False, True),
    ("semantic", "embeddings", "internal", False, False),  # the semantic cache: chat only
]


async def _call(gw: Any, use_case: str, what: str, classification: str, no_store: bool) -> str:
    headers = {"X-AIGW-Use-Case": use_case, "X-AIGW-Data-Classification": classification}
    if no_store:
        headers["Cache-Control"] = "no-store"
    text = f"eligibility {use_case} {what} {classification} {no_store}"
    messages: Any = [{"role": "user", "content": text}]
    if what in ("messages", "count_tokens"):
        async with gw.anthropic(default_headers=headers) as claude:
            if what == "messages":
                raw = await claude.messages.with_raw_response.create(
                    model="claude", max_tokens=20, messages=messages
                )
            else:
                raw = await claude.messages.with_raw_response.count_tokens(
                    model="claude", messages=messages
                )
            return str(raw.headers["X-AIGW-Request-Id"])
    async with gw.openai(default_headers=headers) as client:
        if what == "embeddings":
            done = await client.embeddings.with_raw_response.create(model="embed", input=text)
        else:
            done = await client.chat.completions.with_raw_response.create(
                model="chat", messages=messages, stream=what == "stream"
            )
            if what == "stream":
                async for _ in done.parse():
                    pass
        return str(done.headers["X-AIGW-Request-Id"])


async def test_the_cache_step_and_replay_share_one_eligibility_rule(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    docs = _docs(oai_fake, claude_fake)
    async with audited_gateway(tmp_path, docs, oai_fake, claude_fake) as (gw, path):
        ids = [await _call(gw, *row[:4]) for row in TABLE]
    by_id = {r["id"]: r for r in records(path)}
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    use_cases = {u["name"]: u for u in bundle["policies"][0]["useCases"]}
    for request_id, row in zip(ids, TABLE, strict=True):
        record = by_id[request_id]
        assert record["status"] == 200, (row, record["error_type"])
        assert (record["cache"] in ASKED_OUTCOMES) is row[4], (row, record["cache"])
        settings = CacheSettings.model_validate(use_cases[row[0]].get("cache", {}))
        classification = DataClassification(row[2])
        assert (
            cache_eligible(settings, record["operation"], classification, no_store=row[3])
            is (row[4])
        ), row
    replayed = aigw(
        "replay", "--audit", path, "--bundle", tmp_path / "bundle.json", "--format", "json"
    )
    assert replayed.returncode == 0, replayed.stderr
    result = json.loads(replayed.stdout)
    assert result["calls"] == len(by_id)
    assert result["not_evaluated"] == 0
    assert result["cache_eligibility"] == {}
    assert not result["newly_blocked"]
    assert not result["newly_allowed"]


@pytest.mark.parametrize(
    ("cache", "operation", "classification", "no_store", "reason"),
    [
        ({}, "chat", "internal", False, None),  # caching off: no rule at all
        (EXACT, "chat", "internal", False, ""),
        (EXACT, "embeddings", "public", False, ""),
        (EXACT, "count_tokens", "internal", False, "operation"),
        (EXACT, "chat", "restricted", False, "classification"),
        (EXACT, "chat", "confidential", False, "classification"),
        (EXACT, "chat", "internal", True, "no_store"),
        ({**EXACT, "excludedClassifications": ["restricted"]}, "chat", "confidential", False, ""),
        ({"semantic": {"enabled": True, "embeddingsRoute": "e"}}, "chat", "internal", False, ""),
        (
            {"semantic": {"enabled": True, "embeddingsRoute": "e"}},
            "embeddings",
            "internal",
            False,
            "semantic_only",
        ),
    ],
)
def test_the_rule_says_why(
    cache: dict[str, Any], operation: str, classification: str, no_store: bool, reason: str | None
) -> None:
    rule = cache_rule(CacheSettings.model_validate(cache))
    if reason is None:
        assert rule is None
        return
    assert rule is not None
    assert rule.check(operation, DataClassification(classification), no_store=no_store) == reason
