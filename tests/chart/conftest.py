"""Fixtures of the chart tests: the pinned helm binary and a renderer of charts/aigw.

The helm binary is the one ``make tools`` builds (e2e/build-tools.sh, version pinned in
e2e/tools/versions.env), found through the script's own ``--print-bin-dir``; so golden files
are always compared with the output of one helm version. When it has not been built the tests
fail (never skip) and say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "aigw"
RELEASE = "aigw"
NAMESPACE = "aigw-system"

Values = Mapping[str, Any]
Render = Callable[..., str]


def helm_path() -> Path | None:
    """Where ``make tools`` puts helm for the pinned versions (built or not)."""
    printed = subprocess.run(
        ["bash", str(REPO / "e2e" / "build-tools.sh"), "--print-bin-dir"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout.strip()
    return Path(printed) / "helm" if printed.startswith("/") else None


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    path = helm_path()
    if path is None or not os.access(path, os.X_OK):
        pytest.fail(f"the pinned helm is not built ({path}): run `make tools`", pytrace=False)
    return path


HelmRun = Callable[..., subprocess.CompletedProcess[str]]


def run_helm(
    helm: Path, *args: str, values: Values | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run helm (offline) with ``values`` (if any) written to a values file."""
    with tempfile.TemporaryDirectory(prefix="aigw-chart-") as tmp:
        extra: list[str] = []
        if values is not None:
            path = Path(tmp) / "values.yaml"
            path.write_text(json.dumps(values))
            extra = ["--values", str(path)]
        result = subprocess.run(
            [str(helm), *args, *extra], capture_output=True, text=True, timeout=120, check=False
        )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def helm(helm_bin: Path) -> HelmRun:
    """``helm(*args, values=None, check=True)``: run the pinned helm offline."""

    def _helm(
        *args: str, values: Values | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_helm(helm_bin, *args, values=values, check=check)

    return _helm


@pytest.fixture(scope="session")
def render(helm_bin: Path) -> Render:
    """``render(values, *flags)``: the YAML of ``helm template aigw charts/aigw -n aigw-system``."""

    def _render(values: Values | None = None, *flags: str) -> str:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *flags]
        return run_helm(helm_bin, *args, values=values).stdout

    return _render
