"""The kind end-to-end script cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aigw_contract import load_paths

KIND = Path(__file__).resolve().parents[2] / "e2e" / "kind"


def test_the_demo_route_and_policy_are_valid() -> None:
    docs = load_paths([KIND / "demo" / "policy.yaml"])
    assert sorted(d.resource.kind for d in docs) == ["AIPolicy", "ModelRoute"]


def test_the_script_parses_and_passes_shellcheck() -> None:
    script = str(KIND / "run.sh")
    subprocess.run(["bash", "-n", script], check=True, timeout=30)
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run(
        [str(shellcheck), script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout
