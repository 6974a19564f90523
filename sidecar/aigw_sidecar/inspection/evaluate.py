"""Precision, recall and benign false-positive rate of the injection checks on a labelled set.

The set (``tests/data/injection/labelled.jsonl``) has one JSON object per line: ``text``,
``label`` (``attack`` or ``benign``), ``kind``, ``source`` (``user`` or ``retrieved``) and an
optional ``split`` (``held_out``: written after the rules were tuned on the rest, so its
figures say how the rules do on text they were not shaped by). Used by
``tests/inspection/test_injection_set.py`` and ``python bench/injection_set.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .injection import InjectionScanner, Source

__all__ = ["Figures", "evaluate", "load_set", "table"]


@dataclass(frozen=True, slots=True)
class Figures:
    """Confusion counts of one split and the rates they give."""

    split: str
    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def benign_fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0


def load_set(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def evaluate(
    rows: Iterable[dict[str, str]], scanner: InjectionScanner | None = None
) -> list[Figures]:
    """Figures per split (``tuning``, ``held_out``) and for ``all``."""
    scanner = scanner or InjectionScanner()
    counts: dict[str, list[int]] = {}
    for row in rows:
        source: Source = "retrieved" if row.get("source") == "retrieved" else "user"
        flagged = scanner.scan(row["text"], source) is not None
        attack = row["label"] == "attack"
        index = (0 if flagged else 1) if attack else (2 if flagged else 3)
        for split in (row.get("split", "tuning"), "all"):
            counts.setdefault(split, [0, 0, 0, 0])[index] += 1
    order = [s for s in ("tuning", "held_out", "all") if s in counts]
    return [Figures(s, *counts[s]) for s in order]


def table(figures: Iterable[Figures]) -> str:
    """A Markdown table of the figures."""
    lines = [
        "| split | attacks | benign | precision | recall | benign FPR |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.split} | {f.tp + f.fn} | {f.fp + f.tn} | {f.precision:.3f} | {f.recall:.3f} "
            f"| {f.benign_fpr:.2%} |"
        )
    return "\n".join(lines)
