"""Kept revisions of a namespace: what they hold, what changed, and re-pointing to one.

Used by ``aigw rollout history`` and ``aigw rollout undo`` (and ``aigw status``), with the
caller's own credentials. A rollback copies a kept history revision (its ConfigMap and parts)
into the pointer ConfigMaps pods mount, and records on the pointer, in the
``aigw.dev/rollback`` annotation, who did it, why, when, and which revision and content hash
of the resources it replaced. The operator then keeps the rollback in force while the
resources still compile to that content (Ready=False, reason RolledBack, says so), and
publishes a new revision as soon as one of them changes: "the next policy change resumes from
the resources".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigw_contract import Bundle, BundleError
from aigw_contract.codec import ENVELOPE_FILE, EncodedBundle, decode_files, peek_envelope

from . import names
from .bundles import configmap_files, configmap_revision, pointer_configmaps, provider_secrets
from .errors import OperatorError
from .kube import KubeClient
from .reconcile import HISTORY_SELECTOR, rollback_of, write_pointer

__all__ = [
    "KeptRevision",
    "RollbackError",
    "changes",
    "kept_revisions",
    "undo",
    "whoami",
]


class RollbackError(OperatorError):
    """A rollback that cannot be made (no such kept revision, a corrupt one)."""


@dataclass(frozen=True, slots=True)
class KeptRevision:
    """One history revision, decoded."""

    revision: int
    content_hash: str
    created: str
    files: dict[str, bytes]
    bundle: Bundle | None
    problem: str | None = None


def _cm_path(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{path}/{name}" if name else path


async def kept_revisions(client: KubeClient, namespace: str) -> list[KeptRevision]:
    """Every kept history revision of ``namespace``, oldest first, decoded (or its problem)."""
    by_revision: dict[int, list[Mapping[str, Any]]] = {}
    for cm in await client.list(_cm_path(namespace), label_selector=HISTORY_SELECTOR):
        revision = configmap_revision(cm)
        if revision is not None:
            by_revision.setdefault(revision, []).append(cm)
    kept = []
    for revision, configmaps in sorted(by_revision.items()):
        main = next(
            (c for c in configmaps if c["metadata"]["name"] == names.history_name(revision)), None
        )
        if main is None:
            continue
        files = configmap_files(*configmaps)
        annotations = main["metadata"].get("annotations") or {}
        bundle, problem = None, None
        try:
            bundle = decode_files(files)
        except BundleError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        kept.append(
            KeptRevision(
                revision,
                str(annotations.get(names.ANNOTATION_CONTENT_HASH, "")),
                str(main["metadata"].get("creationTimestamp", "")),
                files,
                bundle,
                problem,
            )
        )
    return kept


def _named(bundle: Bundle) -> dict[str, str]:
    out = {f"AIPolicy/{p.name}": p.model_dump_json() for p in bundle.policies}
    out |= {f"ModelRoute/{r.name}": r.model_dump_json() for r in bundle.routes}
    return out


def changes(before: Bundle | None, after: Bundle | None) -> dict[str, list[str]]:
    """Resources added, removed and changed from one revision to the next."""
    old = _named(before) if before else {}
    new = _named(after) if after else {}
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
    }


async def whoami(client: KubeClient) -> str:
    """The caller's user name, as the apiserver authenticated it (SelfSubjectReview)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        answer = await client.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review
        )
    except OperatorError:
        return "unknown"
    return str(((answer or {}).get("status") or {}).get("userInfo", {}).get("username", "unknown"))


async def undo(
    client: KubeClient,
    namespace: str,
    *,
    to_revision: int | None,
    by: str,
    reason: str,
) -> dict[str, Any]:
    """Re-point the namespace's bundle at a kept revision; returns the rollback record."""
    pointer = await client.get(_cm_path(namespace, names.POINTER_NAME))
    if pointer is None:
        raise RollbackError(f"namespace {namespace} has no bundle in force")
    current = configmap_revision(pointer)
    kept = {k.revision: k for k in await kept_revisions(client, namespace)}
    if to_revision is None:
        older = [r for r in kept if current is None or r < current]
        if not older:
            raise RollbackError(f"no kept revision older than {current} in {namespace}")
        to_revision = max(older)
    target = kept.get(to_revision)
    if target is None:
        raise RollbackError(
            f"revision {to_revision} is not kept in {namespace} (kept: "
            f"{', '.join(str(r) for r in sorted(kept)) or 'none'})"
        )
    if target.bundle is None:
        raise RollbackError(f"revision {to_revision} cannot be restored: {target.problem}")
    if to_revision == current:
        raise RollbackError(f"revision {to_revision} is already in force in {namespace}")
    previous = rollback_of(pointer)
    annotations = pointer["metadata"].get("annotations") or {}
    record = {
        "toRevision": to_revision,
        # What the resources compiled to: kept across repeated rollbacks.
        "replacedRevision": (previous or {}).get("replacedRevision", current),
        "replacedContentHash": (previous or {}).get(
            "replacedContentHash", annotations.get(names.ANNOTATION_CONTENT_HASH)
        ),
        "by": by,
        "reason": reason,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    envelope = peek_envelope(target.files[ENVELOPE_FILE])
    parts = sorted((n for n in target.files if n != ENVELOPE_FILE), key=lambda n: int(n[5:-3]))
    encoded = EncodedBundle(
        int(envelope.get("formatVersion", target.bundle.format_version)),
        to_revision,
        target.bundle.content_hash,
        {ENVELOPE_FILE: target.files[ENVELOPE_FILE], **{n: target.files[n] for n in parts}},
        0,
    )
    bodies = pointer_configmaps(
        encoded,
        namespace,
        resource_version=pointer["metadata"]["resourceVersion"],
        secrets=provider_secrets(target.bundle),
        extra_annotations={names.ANNOTATION_ROLLBACK: json.dumps(record, sort_keys=True)},
    )
    await write_pointer(client, namespace, bodies, exists=True)
    return record
