"""Planning the bundle ConfigMaps of a namespace, as pure functions over what exists.

Layout (see docs/operator.md): every published revision is an immutable ConfigMap
``aigw-bundle-<revision>``; the pointer ConfigMap ``aigw-bundle``, which pods mount, holds a
copy of the bundle in force (a pod cannot follow a reference, and kubelet swaps the mounted
files atomically). A format-2 bundle keeps its envelope (``bundle.json``) and first part
(``part-0.gz``, in ``binaryData``) in that ConfigMap and any further part ``i`` in
``<name>-part-<i>``; pods mount the pointer and its part ConfigMaps in one projected volume.
Revisions increase monotonically: the next one is one more than the largest the pointer or
any history ConfigMap has seen, so a deleted pointer never reuses one. Nothing is written
when the content hash equals the pointer's. The newest ``keep`` history revisions survive
garbage collection (with their parts), and the one in force always does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aigw_contract import Bundle
from aigw_contract.codec import ENVELOPE_FILE, EncodedBundle

from . import names

__all__ = [
    "BundlePlan",
    "configmap_files",
    "configmap_revision",
    "gc_victims",
    "history_configmaps",
    "plan_publish",
    "pointer_configmaps",
    "provider_secrets",
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


def provider_secrets(bundle: Bundle) -> list[str]:
    """Names of the Secrets the bundle's backends use, sorted."""
    return sorted(
        {
            b.credential_secret_ref.name
            for r in bundle.routes
            for b in r.backends
            if b.credential_secret_ref is not None
        }
    )


def _labels(kind: str) -> dict[str, str]:
    return {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_BUNDLE: kind}


def _configmaps(
    encoded: EncodedBundle,
    *,
    namespace: str,
    main: str,
    kind: str,
    annotations: Mapping[str, str],
    immutable: bool,
) -> list[dict[str, Any]]:
    """The main ConfigMap last (envelope + part 0), its part ConfigMaps before it."""
    common = {
        names.ANNOTATION_REVISION: str(encoded.revision),
        names.ANNOTATION_CONTENT_HASH: encoded.content_hash,
    }

    def configmap(
        name: str, label: str, extra: Mapping[str, str], files: Mapping[str, bytes]
    ) -> dict[str, Any]:
        text = {k: v.decode() for k, v in files.items() if k == ENVELOPE_FILE}
        binary = {k: base64.b64encode(v).decode() for k, v in files.items() if k != ENVELOPE_FILE}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": _labels(label),
                "annotations": {**common, **extra},
            },
        }
        if immutable:
            body["immutable"] = True
        if text:
            body["data"] = text
        if binary:
            body["binaryData"] = binary
        return body

    parts = encoded.parts
    head = {ENVELOPE_FILE: encoded.files[ENVELOPE_FILE]}
    if parts:
        head[parts[0]] = encoded.files[parts[0]]
    out = [
        configmap(
            names.part_configmap_name(main, i), f"{kind}-part", {}, {part: encoded.files[part]}
        )
        for i, part in enumerate(parts)
        if i > 0
    ]
    out.append(configmap(main, kind, annotations, head))
    return out


def history_configmaps(encoded: EncodedBundle, namespace: str) -> list[dict[str, Any]]:
    """The immutable ConfigMaps of one revision (parts first, ``aigw-bundle-<n>`` last)."""
    return _configmaps(
        encoded,
        namespace=namespace,
        main=names.history_name(encoded.revision),
        kind="history",
        annotations={},
        immutable=True,
    )


def pointer_configmaps(
    encoded: EncodedBundle,
    namespace: str,
    *,
    resource_version: str | None,
    secrets: Sequence[str] = (),
    extra_annotations: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMaps pods mount: part ConfigMaps first, then the pointer (replaced at the
    resourceVersion it was read at, so a stale writer fails)."""
    annotations = {
        names.ANNOTATION_BUNDLE_CONFIGMAP: names.history_name(encoded.revision),
        names.ANNOTATION_PROVIDER_SECRETS: ",".join(secrets),
        **(extra_annotations or {}),
    }
    bodies = _configmaps(
        encoded,
        namespace=namespace,
        main=names.POINTER_NAME,
        kind="pointer",
        annotations=annotations,
        immutable=False,
    )
    if resource_version is not None:
        bodies[-1]["metadata"]["resourceVersion"] = resource_version
    return bodies


def configmap_files(*configmaps: Body) -> dict[str, bytes]:
    """The files a pod would see for these ConfigMaps mounted in one directory."""
    files: dict[str, bytes] = {}
    for cm in configmaps:
        for key, value in (cm.get("data") or {}).items():
            files[key] = str(value).encode()
        for key, value in (cm.get("binaryData") or {}).items():
            try:
                files[key] = base64.b64decode(str(value), validate=True)
            except binascii.Error:
                files[key] = b""
    return files


def gc_victims(history: Sequence[Body], *, keep: int, in_force: int | None) -> list[str]:
    """Names of history ConfigMaps (and their parts) to delete: all but the newest ``keep``
    revisions and the one in force."""
    revisions = sorted(
        {rev for cm in history if (rev := configmap_revision(cm)) is not None}, reverse=True
    )
    kept = {rev for i, rev in enumerate(revisions) if i < keep} | {in_force}
    return sorted(
        cm["metadata"]["name"]
        for cm in history
        if (rev := configmap_revision(cm)) is not None and rev not in kept
    )
