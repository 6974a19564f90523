"""One reconcile of a namespace: list its resources, compile, publish, write statuses.

Level-triggered: whatever changed, the whole namespace is recompiled from what the apiserver
holds now, so a missed or coalesced event cannot leave a stale bundle. Writes are minimal:
no ConfigMap when the content hash is unchanged, no status patch when the status is equal,
Events only when something newly went wrong. Concurrency-safe across replicas: history
ConfigMaps are created (a taken revision is a conflict) and the pointer is replaced at the
resourceVersion it was read at, so a replica acting on stale data fails and retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aigw_contract import GROUP, VERSION

from . import names
from .bundles import gc_victims, history_configmap, plan_publish, pointer_configmap
from .errors import NotFound
from .evaluate import evaluate
from .kube import KubeClient
from .metrics import Metrics
from .settings import BundleSettings
from .status import Outcome, desired_status, newly_invalid, newly_warned

__all__ = ["Reconciler"]

logger = logging.getLogger(__name__)
_PLURALS = ("aipolicies", "modelroutes")
_STATUS_KEYS = ("conditions", "observedGeneration", "bundleRevision", "tenant")


def _cr_path(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _cm_path(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{path}/{name}" if name else path


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
        evaluation = evaluate(bodies, namespace=namespace, generated_at=now)
        pointer = await self.client.get(_cm_path(namespace, names.POINTER_NAME))
        history = await self.client.list(
            _cm_path(namespace), label_selector=f"{names.LABEL_BUNDLE}=history"
        )
        result = "blocked"
        revision = None
        if evaluation.bundle is not None:
            plan = plan_publish(evaluation.bundle.content_hash, pointer, history)
            revision, result = plan.current_revision, "unchanged"
            if plan.revision is not None:
                bundle = evaluation.bundle.model_copy(update={"revision": plan.revision})
                data = bundle.to_json_bytes()
                await self.client.request(
                    "POST", _cm_path(namespace), body=history_configmap(bundle, data)
                )
                version = pointer["metadata"]["resourceVersion"] if pointer else None
                body = pointer_configmap(bundle, data, resource_version=version)
                if pointer is None:
                    await self.client.request("POST", _cm_path(namespace), body=body)
                else:
                    await self.client.request(
                        "PUT", _cm_path(namespace, names.POINTER_NAME), body=body
                    )
                revision, result = plan.revision, "published"
                self.metrics.bundle_bytes.labels(namespace).set(len(data))
                logger.info(
                    "namespace %s: published bundle revision %d (%s, %d bytes)",
                    namespace,
                    plan.revision,
                    bundle.content_hash,
                    len(data),
                )
                await self._event(
                    namespace,
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": names.POINTER_NAME},
                    "Normal",
                    "BundlePublished",
                    f"bundle revision {plan.revision} in force ({bundle.content_hash})",
                )
                history.append(history_configmap(bundle, b""))
            for victim in gc_victims(history, keep=self.settings.keep_revisions, in_force=revision):
                await self.client.delete(_cm_path(namespace, victim))
        elif pointer is not None:
            revision = plan_publish("", pointer, ()).current_revision
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
        outcome = Outcome(evaluation, revision, published=evaluation.bundle is not None)
        for body in bodies:
            await self._write_status(namespace, body, outcome, now)
        return result

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
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref['name']}.", "namespace": namespace},
            "involvedObject": {**{k: v for k, v in ref.items() if v}, "namespace": namespace},
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": names.MANAGED_BY},
            "reportingComponent": names.MANAGED_BY,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self.client.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event)
