"""Revisions, no-op writes, shards and garbage collection of the bundle ConfigMaps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aigw_contract import compile_bundle, load_paths, parse_bundle
from aigw_contract.codec import decode_files, encode_bundle
from aigw_operator.bundles import (
    configmap_files,
    configmap_revision,
    gc_victims,
    history_configmaps,
    plan_publish,
    pointer_configmaps,
)

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def bundle(revision: int = 0, format_version: int = 2) -> Any:
    docs = load_paths([QUICKSTART])
    return compile_bundle(
        [d.resource for d in docs],
        namespace="team-a",
        generated_at=WHEN,
        revision=revision,
        format_version=format_version,
    )


def test_first_publish_and_configmaps_hold_a_loadable_bundle() -> None:
    b = bundle()
    plan = plan_publish(b, None, [])
    assert (plan.revision, plan.current_revision) == (1, None)
    assert plan.revision is not None
    published = encode_bundle(b.with_revision(plan.revision))
    [history] = history_configmaps(published, "team-a")
    [pointer] = pointer_configmaps(
        published, "team-a", resource_version=None, secrets=["provider-keys"]
    )
    assert history["metadata"]["name"] == "aigw-bundle-1"
    assert history["immutable"] is True
    assert pointer["metadata"]["name"] == "aigw-bundle"
    annotations = pointer["metadata"]["annotations"]
    assert annotations["aigw.dev/bundle-configmap"] == "aigw-bundle-1"
    assert annotations["aigw.dev/provider-secrets"] == "provider-keys"
    assert "resourceVersion" not in pointer["metadata"]
    assert set(pointer["binaryData"]) == {"part-0.gz"}
    loaded = decode_files(configmap_files(pointer))
    assert loaded.revision == 1
    assert loaded == decode_files(configmap_files(history))
    assert configmap_revision(pointer) == configmap_revision(history) == 1


def test_format_1_is_one_text_key() -> None:
    encoded = encode_bundle(bundle(2, format_version=1))
    [pointer] = pointer_configmaps(encoded, "team-a", resource_version="5")
    assert set(pointer["data"]) == {"bundle.json"}
    assert "binaryData" not in pointer
    assert pointer["metadata"]["resourceVersion"] == "5"
    assert parse_bundle(pointer["data"]["bundle.json"]).revision == 2


def test_a_sharded_bundle_puts_parts_in_their_own_configmaps_written_first() -> None:
    encoded = encode_bundle(bundle(3), part_bytes=400)
    assert len(encoded.parts) > 1
    bodies = pointer_configmaps(encoded, "team-a", resource_version=None)
    *parts, pointer = bodies
    assert pointer["metadata"]["name"] == "aigw-bundle"
    assert [p["metadata"]["name"] for p in parts] == [
        f"aigw-bundle-part-{i}" for i in range(1, len(encoded.parts))
    ]
    assert all(p["metadata"]["labels"]["aigw.dev/bundle"] == "pointer-part" for p in parts)
    assert decode_files(configmap_files(*bodies)).revision == 3
    history = history_configmaps(encoded, "team-a")
    assert history[-1]["metadata"]["name"] == "aigw-bundle-3"
    assert history[0]["metadata"]["name"] == "aigw-bundle-3-part-1"
    assert decode_files(configmap_files(*history)) == decode_files(configmap_files(*bodies))


def _pointer(revision: int) -> dict[str, Any]:
    return pointer_configmaps(encode_bundle(bundle(revision)), "team-a", resource_version="7")[-1]


def _history(*revisions: int, part_bytes: int = 900_000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in revisions:
        out += history_configmaps(encode_bundle(bundle(r), part_bytes=part_bytes), "team-a")
    return out


def test_unchanged_content_writes_nothing() -> None:
    b = bundle(3)
    pointer = _pointer(3)
    plan = plan_publish(b, pointer, [])
    assert (plan.revision, plan.current_revision) == (None, 3)
    # The next compile comes at revision 0: still the same content, still nothing to write.
    assert plan_publish(bundle(0), pointer, []).revision is None


def test_revisions_never_go_back() -> None:
    b = bundle(4)
    history = _history(2, 9, 4)
    other = b.model_copy(update={"routes": b.routes[:1]})
    assert plan_publish(other, _pointer(4), history).revision == 10
    # A deleted pointer does not reuse revisions that history still remembers.
    assert plan_publish(other, None, history).revision == 10


def test_gc_keeps_the_newest_and_the_one_in_force() -> None:
    history = _history(*range(1, 11))
    assert gc_victims(history, keep=3, in_force=10) == sorted(
        f"aigw-bundle-{r}" for r in range(7, 0, -1)
    )
    # After a rollback to 2, revision 2 survives although it is old.
    assert "aigw-bundle-2" not in gc_victims(history, keep=3, in_force=2)
    assert gc_victims(history, keep=20, in_force=10) == []


def test_gc_removes_a_revision_with_its_parts() -> None:
    history = _history(1, 2, 3, part_bytes=400)
    victims = gc_victims(history, keep=2, in_force=3)
    assert victims
    assert all(v == "aigw-bundle-1" or v.startswith("aigw-bundle-1-part-") for v in victims)
