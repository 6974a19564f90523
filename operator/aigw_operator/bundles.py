"""Planning the bundle ConfigMaps of a namespace, as pure functions over what exists.

Layout (see docs/operator.md): every published revision is an immutable ConfigMap
``aigw-bundle-<revision>``; the pointer ConfigMap ``aigw-bundle``, which pods mount, holds a
copy of the bundle in force (a pod cannot follow a reference, and kubelet swaps the mounted
file atomically). Revisions increase monotonically: the next one is one more than the
largest the pointer or any history ConfigMap has seen, so a deleted pointer never reuses one.
Nothing is written when the content hash equals the pointer's. The newest ``keep`` history
ConfigMaps survive garbage collection, and the one in force always does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aigw_contract import Bundle

from . import names

__all__ = [
    "BundlePlan",
    "configmap_revision",
    "gc_victims",
    "history_configmap",
    "plan_publish",
    "pointer_configmap",
]

Body = Mapping[str, Any]


def _annotation(cm: Body | None, key: str) -> str | None:
    if cm is None:
        return None
    value = (cm.get("metadata", {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def configmap_revision(cm: Body) -> int | None:
    """The revision a bundle ConfigMap holds (None if it is not one of ours)."""
    value = _annotation(cm, names.ANNOTATION_REVISION)
    return int(value) if value is not None and value.isdigit() else None


@dataclass(frozen=True, slots=True)
class BundlePlan:
    """What to write for a compiled bundle; ``revision`` None means nothing changed."""

    revision: int | None
    current_revision: int | None
    """The revision in force before (None when the namespace has no bundle yet)."""


def plan_publish(bundle: Bundle, pointer: Body | None, history: Sequence[Body]) -> BundlePlan:
    """Decide whether a newly compiled ``bundle`` needs a new revision, and which: nothing
    changed when, compiled at the revision in force, it has the pointer's content hash."""
    current = configmap_revision(pointer) if pointer is not None else None
    if pointer is not None and current is not None:
        in_force = _annotation(pointer, names.ANNOTATION_CONTENT_HASH)
        if in_force == bundle.with_revision(current).content_hash:
            return BundlePlan(None, current)
    seen = [r for r in (configmap_revision(cm) for cm in history) if r is not None]
    if current is not None:
        seen.append(current)
    return BundlePlan(max(seen, default=0) + 1, current)


def _labels(kind: str) -> dict[str, str]:
    return {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_BUNDLE: kind}


def _annotations(bundle: Bundle) -> dict[str, str]:
    return {
        names.ANNOTATION_REVISION: str(bundle.revision),
        names.ANNOTATION_CONTENT_HASH: bundle.content_hash,
    }


def history_configmap(bundle: Bundle, data: bytes) -> dict[str, Any]:
    """The immutable ConfigMap of one revision."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.history_name(bundle.revision),
            "namespace": bundle.namespace,
            "labels": _labels("history"),
            "annotations": _annotations(bundle),
        },
        "immutable": True,
        "data": {names.BUNDLE_KEY: data.decode()},
    }


def pointer_configmap(
    bundle: Bundle, data: bytes, *, resource_version: str | None
) -> dict[str, Any]:
    """The pointer ConfigMap pods mount; replaced with the resourceVersion it was read at."""
    metadata: dict[str, Any] = {
        "name": names.POINTER_NAME,
        "namespace": bundle.namespace,
        "labels": _labels("pointer"),
        "annotations": {
            **_annotations(bundle),
            names.ANNOTATION_BUNDLE_CONFIGMAP: names.history_name(bundle.revision),
        },
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {names.BUNDLE_KEY: data.decode()},
    }


def gc_victims(history: Sequence[Body], *, keep: int, in_force: int | None) -> list[str]:
    """Names of history ConfigMaps to delete: all but the newest ``keep`` and the one in force."""
    numbered = sorted(
        ((rev, cm["metadata"]["name"]) for cm in history if (rev := configmap_revision(cm))),
        reverse=True,
    )
    return [name for i, (rev, name) in enumerate(numbered) if i >= keep and rev != in_force]
