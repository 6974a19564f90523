"""Packaging rules from DESIGN: no stdlib shadowing, enforced import layers, one console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_stdlib_operator_and_asyncio_import_from_the_repository_root() -> None:
    code = "import asyncio, operator; print(operator.__file__); asyncio.run(asyncio.sleep(0))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert str(REPO) not in result.stdout  # the standard library's operator, not ./operator


def test_no_top_level_package_shadows_the_standard_library() -> None:
    for folder in ("operator", "sidecar", "contract", "cli", "fakeprovider", "e2e"):
        assert not (REPO / folder / "__init__.py").exists(), folder


def test_import_layers_hold() -> None:
    result = subprocess.run(
        [str(BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout
    assert " 0 broken" in result.stdout


def test_console_script_lists_subcommands() -> None:
    result = subprocess.run(
        [str(BIN / "aigw"), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("compile", "validate", "crds"):
        assert command in result.stdout
