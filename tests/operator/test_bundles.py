"""Revisions, no-op writes and garbage collection of the bundle ConfigMaps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aigw_contract import compile_bundle, load_paths, parse_bundle
from aigw_operator.bundles import (
    configmap_revision,
    gc_victims,
    history_configmap,
    plan_publish,
    pointer_configmap,
)

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def bundle(revision: int = 0) -> Any:
    docs = load_paths([QUICKSTART])
    return compile_bundle(
        [d.resource for d in docs], namespace="team-a", generated_at=WHEN, revision=revision
    )


def test_first_publish_and_configmaps_hold_a_loadable_bundle() -> None:
    b = bundle()
    plan = plan_publish(b, None, [])
    assert (plan.revision, plan.current_revision) == (1, None)
    assert plan.revision is not None
    published = b.with_revision(plan.revision)
    data = published.to_json_bytes()
    history = history_configmap(published, data)
    pointer = pointer_configmap(published, data, resource_version=None)
    assert history["metadata"]["name"] == "aigw-bundle-1"
    assert history["immutable"] is True
    assert pointer["metadata"]["name"] == "aigw-bundle"
    assert pointer["metadata"]["annotations"]["aigw.dev/bundle-configmap"] == "aigw-bundle-1"
    assert "resourceVersion" not in pointer["metadata"]
    loaded = parse_bundle(pointer["data"]["bundle.json"])
    assert loaded.revision == 1
    assert loaded == parse_bundle(history["data"]["bundle.json"])
    assert configmap_revision(pointer) == configmap_revision(history) == 1


def test_unchanged_content_writes_nothing() -> None:
    b = bundle(3)
    pointer = pointer_configmap(b, b.to_json_bytes(), resource_version="7")
    plan = plan_publish(b, pointer, [])
    assert (plan.revision, plan.current_revision) == (None, 3)
    # The next compile comes at revision 0: still the same content, still nothing to write.
    assert plan_publish(bundle(0), pointer, []).revision is None


def test_revisions_never_go_back() -> None:
    b = bundle(4)
    pointer = pointer_configmap(b, b.to_json_bytes(), resource_version="7")
    history = [history_configmap(bundle(r), b"") for r in (2, 9, 4)]
    other = b.model_copy(update={"routes": b.routes[:1]})
    assert plan_publish(other, pointer, history).revision == 10
    # A deleted pointer does not reuse revisions that history still remembers.
    assert plan_publish(other, None, history).revision == 10


def test_gc_keeps_the_newest_and_the_one_in_force() -> None:
    history = [history_configmap(bundle(r), b"") for r in range(1, 11)]
    assert gc_victims(history, keep=3, in_force=10) == [f"aigw-bundle-{r}" for r in range(7, 0, -1)]
    # After a rollback to 2, revision 2 survives although it is old.
    assert "aigw-bundle-2" not in gc_victims(history, keep=3, in_force=2)
    assert gc_victims(history, keep=20, in_force=10) == []
