"""The README's main job, `aigw demo`, runs end to end: real processes, real SDKs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_every_step() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "aigw"), "demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout
    assert "all demo steps behaved as described" in result.stdout
    assert "revision 1 -> 2" in result.stdout
    assert "ok: 1 chain(s), " in result.stdout  # aigw audit verify on the demo's records
    assert "chat -> chat-economy" in result.stdout  # the replay of a spent budget
