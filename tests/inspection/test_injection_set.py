"""The injection checks on the committed labelled set: figures printed, and held to bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigw_sidecar.inspection.evaluate import evaluate, load_set, table

SET = Path(__file__).parent.parent / "data" / "injection" / "labelled.jsonl"


def test_the_labelled_set_is_balanced_enough_to_measure_one_percent() -> None:
    rows = load_set(SET)
    benign = [r for r in rows if r["label"] == "benign"]
    assert len(benign) >= 200, "one false positive must stay under 1%"
    assert sum("ignor" in r["text"].lower() for r in benign) >= 40
    assert {r["source"] for r in rows} == {"user", "retrieved"}


def test_precision_recall_and_benign_false_positive_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figures = {f.split: f for f in evaluate(load_set(SET))}
    with capsys.disabled():
        print("\nprompt-injection rules on tests/data/injection/labelled.jsonl\n")
        print(table(figures.values()))
    overall = figures["all"]
    assert overall.benign_fpr < 0.01
    assert overall.precision >= 0.95
    assert overall.recall >= 0.9
    assert figures["held_out"].recall >= 0.7
