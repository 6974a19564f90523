"""Fixtures of the operator tests: applying the webhook's JSONPatch, and golden files.

Set AIGW_UPDATE_GOLDEN=1 to rewrite golden files from the current output (then review the diff).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden"


def apply_json_patch(doc: Any, patch: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 ``add`` operations (the only kind the webhook emits)."""
    doc = json.loads(json.dumps(doc))
    for op in patch:
        assert op["op"] == "add", op
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key = parts[-1]
        if isinstance(node, list):
            node.insert(len(node) if key == "-" else int(key), op["value"])
        else:
            assert key not in node, f"add would replace {op['path']}"
            node[key] = op["value"]
    return doc


def check_golden(name: str, value: Any) -> None:
    """Compare ``value`` with golden/<name>.json (rewrite it when AIGW_UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.json"
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    if os.environ.get("AIGW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with AIGW_UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == json.loads(text), f"differs from {path}"


JsonPatcher = Callable[[Any, list[dict[str, Any]]], Any]
GoldenChecker = Callable[[str, Any], None]


@pytest.fixture
def json_patch() -> JsonPatcher:
    """apply_json_patch, as a fixture (test modules cannot import each other)."""
    return apply_json_patch


@pytest.fixture
def golden() -> GoldenChecker:
    """check_golden, as a fixture."""
    return check_golden
