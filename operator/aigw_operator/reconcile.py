"""One reconcile of a namespace: list its resources, compile, publish, write statuses.

Level-triggered: whatever changed, the whole namespace is recompiled from what the apiserver
holds now, so a missed or coalesced event cannot leave a stale bundle. Writes are minimal:
no ConfigMap when the content hash is unchanged, no status patch when the status is equal,
Events only when something newly went wrong. Concurrency-safe across replicas: history
ConfigMaps are created (a taken revision is a conflict) and the pointer is replaced at the
resourceVersion it was read at, so a replica acting on stale data fails and retries.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aigw_contract import GROUP, VERSION, Bundle
from aigw_contract.codec import encode_bundle

from . import names
from .bundles import (
    configmap_revision,
    gc_victims,
    history_configmaps,
    plan_publish,
    pointer_configmaps,
    provider_secrets,
)
from .errors import NotFound
from .evaluate import evaluate
from .events import post_event
from .kube import KubeClient
from .metrics import Metrics
from .settings import BundleSettings
from .status import Outcome, desired_status, newly_invalid, newly_warned

__all__ = ["HISTORY_SELECTOR", "Reconciler", "rollback_of", "write_pointer"]

logger = logging.getLogger(__name__)
_PLURALS = ("aipolicies", "modelroutes")
_STATUS_KEYS = ("conditions", "observedGeneration", "bundleRevision", "tenant")
HISTORY_SELECTOR = f"{names.LABEL_BUNDLE} in (history,history-part)"
POINTER_PARTS_SELECTOR = f"{names.LABEL_BUNDLE}=pointer-part"


def rollback_of(pointer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``aigw rollout undo`` record on the pointer, if the rollback is in force."""
    if pointer is None:
        return None
    raw = (pointer.get("metadata", {}).get("annotations") or {}).get(names.ANNOTATION_ROLLBACK)
    try:
        record = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _cr_path(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _cm_path(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{path}/{name}" if name else path


async def write_pointer(
    client: KubeClient, namespace: str, bodies: list[dict[str, Any]], *, exists: bool
) -> None:
    """Write the pointer's part ConfigMaps (create or replace), then the pointer (the last
    body; replaced at its resourceVersion when ``exists``), then delete parts it no longer
    lists. A pod never sees a pointer whose parts are not written yet."""
    *parts, pointer = bodies
    for body in parts:
        name = body["metadata"]["name"]
        current = await client.get(_cm_path(namespace, name))
        if current is None:
            await client.request("POST", _cm_path(namespace), body=body)
        else:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await client.request("PUT", _cm_path(namespace, name), body=body)
    if exists:
        await client.request("PUT", _cm_path(namespace, names.POINTER_NAME), body=pointer)
    else:
        await client.request("POST", _cm_path(namespace), body=pointer)
    wanted = {body["metadata"]["name"] for body in parts}
    for stale in await client.list(_cm_path(namespace), label_selector=POINTER_PARTS_SELECTOR):
        if stale["metadata"]["name"] not in wanted:
            await client.delete(_cm_path(namespace, stale["metadata"]["name"]))


def _unchanged_since(compiled: Bundle, rollback: Mapping[str, Any]) -> bool:
    """Whether the resources still compile to what was in force when the rollback was made
    (hashes cover the revision from format 2 on: compare at the revision it replaced)."""
    replaced = rollback.get("replacedRevision")
    if not isinstance(replaced, int) or isinstance(replaced, bool):
        return False
    return bool(
        compiled.with_revision(replaced).content_hash == rollback.get("replacedContentHash")
    )


class Reconciler:
    """Reconciles namespaces through one API client."""

    def __init__(
        self, client: KubeClient, settings: BundleSettings, metrics: Metrics, *, instance: str
    ) -> None:
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.instance = instance

    async def reconcile(self, namespace: str) -> None:
        """Bring the namespace's bundle and every resource's status up to date."""
        started = time.perf_counter()
        try:
            result = await self._reconcile(namespace)
        except BaseException:
            self.metrics.reconciles.labels("error").inc()
            raise
        self.metrics.reconciles.labels(result).inc()
        self.metrics.reconcile_seconds.observe(time.perf_counter() - started)

    async def _reconcile(self, namespace: str) -> str:
        bodies: list[dict[str, Any]] = []
        for plural in _PLURALS:
            bodies += await self.client.list(_cr_path(namespace, plural))
        now = datetime.now(UTC).replace(microsecond=0)
        evaluation = evaluate(
            bodies,
            namespace=namespace,
            generated_at=now,
            format_version=self.settings.format_version,
            part_bytes=self.settings.part_bytes,
        )
        pointer = await self.client.get(_cm_path(namespace, names.POINTER_NAME))
        history = await self.client.list(_cm_path(namespace), label_selector=HISTORY_SELECTOR)
        result = "blocked"
        revision = None
        rolled_back = None
        rollback = rollback_of(pointer)
        if (
            evaluation.bundle is not None
            and rollback is not None
            and _unchanged_since(evaluation.bundle, rollback)
        ):
            # `aigw rollout undo` re-pointed the bundle and no resource changed since.
            revision = configmap_revision(pointer) if pointer is not None else None
            result = "rolled-back"
            rolled_back = (
                f"revision {revision} is in force after a rollback by "
                f"{rollback.get('by', 'someone')} ({rollback.get('reason') or 'no reason given'});"
                " the next change of a resource publishes again"
            )
        elif evaluation.bundle is not None:
            plan = plan_publish(evaluation.bundle, pointer, history)
            revision, result = plan.current_revision, "unchanged"
            if plan.revision is not None:
                await self._publish(namespace, evaluation.bundle, plan.revision, pointer)
                revision, result = plan.revision, "published"
                history = await self.client.list(
                    _cm_path(namespace), label_selector=HISTORY_SELECTOR
                )
            for victim in gc_victims(history, keep=self.settings.keep_revisions, in_force=revision):
                await self.client.delete(_cm_path(namespace, victim))
        elif pointer is not None:
            revision = configmap_revision(pointer)
            logger.warning(
                "namespace %s: bundle not updated (%s: %s)",
                namespace,
                evaluation.blocked_reason,
                evaluation.blocked_message,
            )
        if revision is not None:
            self.metrics.bundle_revision.labels(namespace).set(revision)
        self.metrics.invalid_resources.labels(namespace).set(
            sum(not v.valid for v in evaluation.verdicts.values())
        )
        outcome = Outcome(
            evaluation,
            revision,
            published=evaluation.bundle is not None and rolled_back is None,
            rolled_back=rolled_back,
        )
        for body in bodies:
            await self._write_status(namespace, body, outcome, now)
        return result

    async def _publish(
        self, namespace: str, compiled: Bundle, revision: int, pointer: Mapping[str, Any] | None
    ) -> None:
        """Write revision ``revision``: history first (a taken revision is a conflict), then
        the pointer's parts, then the pointer itself; stale pointer parts are removed."""
        bundle = compiled.with_revision(revision)
        encoded = encode_bundle(bundle, part_bytes=self.settings.part_bytes)
        for body in history_configmaps(encoded, namespace):
            await self.client.request("POST", _cm_path(namespace), body=body)
        version = pointer["metadata"]["resourceVersion"] if pointer else None
        bodies = pointer_configmaps(
            encoded, namespace, resource_version=version, secrets=provider_secrets(bundle)
        )
        await write_pointer(self.client, namespace, bodies, exists=pointer is not None)
        self.metrics.bundle_bytes.labels(namespace).set(encoded.size)
        logger.info(
            "namespace %s: published bundle revision %d (%s, format %d, %d bytes in %d parts,"
            " %d uncompressed)",
            namespace,
            revision,
            bundle.content_hash,
            encoded.format_version,
            encoded.size,
            max(1, len(encoded.parts)),
            encoded.expanded_bytes,
        )
        await self._event(
            namespace,
            {"apiVersion": "v1", "kind": "ConfigMap", "name": names.POINTER_NAME},
            "Normal",
            "BundlePublished",
            f"bundle revision {revision} in force ({bundle.content_hash})",
        )

    async def _write_status(
        self, namespace: str, body: Mapping[str, Any], outcome: Outcome, now: datetime
    ) -> None:
        status = desired_status(body, outcome, now)
        old = body.get("status") or {}
        if all(old.get(k) == status.get(k) for k in _STATUS_KEYS):
            return
        plural = "aipolicies" if body["kind"] == "AIPolicy" else "modelroutes"
        name = body["metadata"]["name"]
        try:
            await self.client.merge_patch(
                _cr_path(namespace, plural, name) + "/status", {"status": status}
            )
        except NotFound:
            return  # deleted meanwhile; its deletion triggers another reconcile
        ref = {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": name,
            "uid": body["metadata"].get("uid"),
        }
        for warning in (newly_invalid(body, status), newly_warned(body, status)):
            if warning is not None:
                await self._event(namespace, ref, "Warning", warning["reason"], warning["message"])

    async def _event(
        self, namespace: str, ref: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        await post_event(
            self.client,
            namespace,
            ref,
            kind=kind,
            reason=reason,
            message=message,
            instance=self.instance,
        )
