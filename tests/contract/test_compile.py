"""Compiling the examples, determinism, and the bundle round trip."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aigw_contract import (
    InvalidBundle,
    UnsupportedBundleFormat,
    compile_bundle,
    load_paths,
    parse_bundle,
    parse_documents,
)

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_examples_compile() -> None:
    docs = load_paths([QUICKSTART])
    bundle = compile_bundle([d.resource for d in docs], namespace="team-a", generated_at=WHEN)
    assert [p.name for p in bundle.policies] == ["report-summarizer", "support-assistant"]
    assert [r.name for r in bundle.routes] == ["chat", "chat-economy"]
    support = bundle.policies[1]
    assert support.tenant == "acme"
    assert bundle.policies[0].tenant == "team-a"  # defaults to the namespace
    assert bundle.policies[0].default_use_case == "summarize"  # defaults to the first
    chat = bundle.route("chat")
    assert chat is not None
    assert [b.weight for b in chat.backends] == [99, 1, 0]


def test_compile_is_deterministic_in_any_order() -> None:
    docs = load_paths([QUICKSTART])
    resources = [d.resource for d in docs]
    expected = compile_bundle(resources, namespace="team-a", generated_at=WHEN).to_json_bytes()
    rng = random.Random(7)
    for _ in range(5):
        shuffled = resources[:]
        rng.shuffle(shuffled)
        again = compile_bundle(shuffled, namespace="team-a", generated_at=WHEN)
        assert again.to_json_bytes() == expected


def test_bundle_round_trips_through_parse() -> None:
    docs = load_paths([QUICKSTART])
    bundle = compile_bundle([d.resource for d in docs], namespace="team-a", generated_at=WHEN)
    assert parse_bundle(bundle.to_json_bytes()) == bundle


def test_parse_refuses_unknown_format_and_tampering() -> None:
    docs = load_paths([QUICKSTART])
    data = compile_bundle([d.resource for d in docs], namespace="team-a", generated_at=WHEN)
    text = data.to_json_bytes().decode()
    with pytest.raises(UnsupportedBundleFormat):
        parse_bundle(text.replace('"formatVersion":1', '"formatVersion":2'))
    with pytest.raises(InvalidBundle, match="contentHash"):
        parse_bundle(text.replace('"maxTokens":1024', '"maxTokens":1025'))
    with pytest.raises(InvalidBundle, match="not JSON"):
        parse_bundle(text[:-20])


def test_documents_report_file_and_index() -> None:
    data = (QUICKSTART / "policies.yaml").read_bytes().replace(b"mode: warn", b"mode: loud", 1)
    resources, problems = parse_documents(data, "policies.yaml")
    assert len(resources) == 1
    assert [str(p) for p in problems] == [
        "policies.yaml: document 2: AIPolicy/report-summarizer: spec.mode: "
        "Input should be 'observe', 'warn' or 'enforce'"
    ]
