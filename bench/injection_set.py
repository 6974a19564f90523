"""Print the prompt-injection rules' precision, recall and benign false-positive rate on the
committed labelled set: ``python bench/injection_set.py [path]``."""

from __future__ import annotations

import sys
from pathlib import Path

from aigw_sidecar.inspection.evaluate import evaluate, load_set, table

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "data" / "injection" / "labelled.jsonl"


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    print(table(evaluate(load_set(path))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
