"""docs/policy-reference.md is generated, complete and current."""

from __future__ import annotations

from pathlib import Path

from aigw_cli.main import main
from aigw_contract.field_status import FIELD_STATUS, Enforced
from aigw_contract.reference import COMMAND, render_policy_reference

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs/policy-reference.md"


def test_the_committed_reference_is_current() -> None:
    assert COMMITTED.read_text() == render_policy_reference(), f"stale: run `{COMMAND}`"


def test_the_command_writes_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "policy-reference.md"
    assert main(["docs", "policy-reference", "-o", str(out)]) == 0
    assert out.read_text() == render_policy_reference()


def test_every_field_is_a_row_with_its_enforcement_or_its_absence() -> None:
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in render_policy_reference().splitlines()
        if line.startswith("| `spec.")
    }
    for kind, table in FIELD_STATUS.items():
        for path, status in table.items():
            row = rows.pop(path)  # the two kinds share no path
            if isinstance(status, Enforced):
                assert f"`{status.by}`" in row, (kind, path)
                assert f"`{status.test}`" in row, (kind, path)
            else:
                assert "**not enforced yet**" in row, (kind, path)
    assert not rows, f"rows of no field: {sorted(rows)}"
