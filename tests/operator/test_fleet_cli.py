"""``aigw status`` as a person reads it, and ``aigw rollout history``'s change summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aigw_cli.status_cmd import render_table
from aigw_contract import compile_bundle, load_paths
from aigw_operator.history import changes

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_status_table_names_each_pod_its_state_revision_and_drift() -> None:
    status = {
        "namespace": "team-a",
        "revision": 8,
        "contentHash": "sha256:abc",
        "rollback": {"toRevision": 8, "by": "alice", "at": "2026-12-01T22:00:00Z", "reason": "x"},
        "summary": {"synced": "1/3"},
        "pods": [
            {"name": "app-1", "state": "Updated", "revision": 8, "loadedAt": 0, "drift": 0},
            {
                "name": "app-2",
                "state": "Refused",
                "revision": 7,
                "loadedAt": 0,
                "drift": 1,
                "detail": "UnsupportedBundleFormat: bundle formatVersion 99 is not supported",
            },
            {"name": "app-3", "state": "Unknown", "revision": None, "drift": None, "detail": "z"},
        ],
    }
    text = render_table(status)
    lines = text.splitlines()
    assert lines[0] == "namespace team-a: revision 8 in force (sha256:abc), 1/3 pods serve it"
    assert "rolled back to 8 by alice" in lines[1]
    assert lines[2].split() == ["POD", "STATE", "REVISION", "SINCE", "DRIFT", "DETAIL"]
    assert lines[3].split()[:5] == ["app-1", "Updated", "8", "1970-01-01T00:00:00Z", "0"]
    assert lines[4].split()[:5] == ["app-2", "Refused", "7", "1970-01-01T00:00:00Z", "1"]
    assert "formatVersion 99" in lines[4]
    assert lines[5].split()[:5] == ["app-3", "Unknown", "-", "-", "-"]
    empty = render_table({**status, "revision": None})
    assert empty == "namespace team-a: no bundle published yet\n"


def test_history_changes_name_added_removed_and_changed_resources() -> None:
    docs = [d.resource for d in load_paths([QUICKSTART])]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    full = compile_bundle(docs, namespace="team-a", generated_at=when)
    fewer = compile_bundle(
        [d for d in docs if d.metadata.name != "report-summarizer"],
        namespace="team-a",
        generated_at=when,
    )
    assert changes(None, full)["added"] == [
        "AIPolicy/report-summarizer",
        "AIPolicy/support-assistant",
        "ModelRoute/chat",
        "ModelRoute/chat-economy",
    ]
    assert changes(full, fewer) == {
        "added": [],
        "removed": ["AIPolicy/report-summarizer"],
        "changed": [],
    }
    assert changes(full, full) == {"added": [], "removed": [], "changed": []}
