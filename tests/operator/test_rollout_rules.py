"""The rollout poller's rules as pure functions: pod states, the summary, leadership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aigw_operator.leader import leads
from aigw_operator.rollout import PodState, _row, classify, summarize

PUBLISHED = (5, "sha256:five")


def pod(report: dict[str, object] | None, last_ok: float | None = 100.0) -> PodState:
    return PodState("ns", "app-1", "uid-1", "127.0.0.1", 15401, 90.0, last_ok, report)


def serving(revision: int, digest: str, loaded: float = 50.0) -> dict[str, object]:
    return {"revision": revision, "contentHash": digest, "loadedAt": loaded}


def test_states() -> None:
    now = 101.0
    updated = pod({"serving": serving(5, "sha256:five"), "lastRefused": None})
    assert classify(updated, PUBLISHED, now, 10) == ("Updated", "")
    stale = pod({"serving": serving(4, "sha256:four"), "lastRefused": None})
    assert classify(stale, PUBLISHED, now, 10)[0] == "Stale"
    # Same revision number, other content (a hand-edited pointer): not Updated.
    forged = pod({"serving": serving(5, "sha256:other"), "lastRefused": None})
    assert classify(forged, PUBLISHED, now, 10)[0] == "Stale"
    refusal = {"revision": 5, "contentHash": "sha256:five", "reason": "formatVersion 9", "at": 60}
    refused = pod({"serving": serving(4, "sha256:four"), "lastRefused": refusal})
    assert classify(refused, PUBLISHED, now, 10) == ("Refused", "formatVersion 9")
    # Fed something else while serving the revision in force: still an alarm.
    odd = pod({"serving": serving(5, "sha256:five"), "lastRefused": refusal})
    assert classify(odd, PUBLISHED, now, 10)[0] == "Refused"
    # A refusal older than the last good load is history, not the current state.
    recovered = pod({"serving": serving(4, "sha256:four", loaded=70), "lastRefused": refusal})
    assert classify(recovered, PUBLISHED, now, 10)[0] == "Stale"
    silent = pod({"serving": serving(5, "sha256:five")}, last_ok=80.0)
    state, detail = classify(silent, PUBLISHED, now, 10)
    assert state == "Unknown"
    assert "no answer since" in detail
    assert classify(pod(None, last_ok=None), PUBLISHED, 95.0, 10)[0] == "Unknown"


def test_rows_and_summary() -> None:
    now = 101.0
    pods = [
        pod({"serving": serving(5, "sha256:five")}),
        pod({"serving": serving(3, "sha256:three")}),
        pod(None, last_ok=None),
    ]
    rows = [_row(p, *classify(p, PUBLISHED, now, 10), PUBLISHED) for p in pods]
    assert [r["drift"] for r in rows] == [0, 2, None]
    assert summarize(rows, PUBLISHED) == {
        "revision": 5,
        "synced": "1/3",
        "total": 3,
        "updated": 1,
        "stale": 1,
        "refused": 0,
        "unknown": 1,
    }


def test_leadership_follows_kopfs_rule() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    fresh = (now - timedelta(seconds=5)).isoformat()
    old = (now - timedelta(seconds=120)).isoformat()
    status = {
        "a": {"priority": 100, "lifetime": 60, "lastseen": fresh},
        "b": {"priority": 50, "lifetime": 60, "lastseen": fresh},
        "c": {"priority": 200, "lifetime": 60, "lastseen": old},  # dead: ignored
    }
    assert leads(status, "a", now)
    assert not leads(status, "b", now)
    assert not leads(status, "c", now)
    assert not leads(status, "missing", now)
    tie = {**status, "b": {"priority": 100, "lifetime": 60, "lastseen": fresh}}
    assert not leads(tie, "a", now)  # equal priorities pause everyone, as in kopf
