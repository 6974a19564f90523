"""Rollout status: which injected pod serves which bundle, and which refused it.

The leader polls ``GET http://<pod IP>:<admin port>/aigw/rollout`` on every pod labelled
``aigw.dev/injected=true`` (why polling and not pushing: docs/operator.md, "Rollout
status"), compares what each sidecar serves with the namespace's pointer ConfigMap, and
writes what it found:

* per pod, in the namespace's ``aigw-rollout`` ConfigMap (``pods.json``: state, revision,
  content hash, since when, drift from the revision in force, the last refusal and its
  reason), which ``aigw status`` prints;
* per namespace, ``status.rollout`` of every AIPolicy and ModelRoute (``synced: 38/40``, the
  SYNCED printer column): at once when every pod serves the revision in force, otherwise at
  most every ``status_interval_seconds``;
* a Warning Event ``BundleRefused`` on a pod the first time it refuses a bundle;
* metrics: pods by state, refusals, polls.

Pod states: ``Updated`` (serves the revision and hash in force), ``Refused`` (its latest load
refused a bundle, and it keeps serving its last good one), ``Stale`` (serves another
revision and refused nothing since: still syncing), ``Unknown`` (no answer for
``unknown_after_seconds``: stopped, unreachable, not started). Polling is fast (every
``interval_seconds``) while a namespace converges and five times slower once it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from aigw_contract import GROUP, VERSION

from . import names
from .bundles import configmap_revision
from .errors import ApiError, NotFound
from .events import post_event
from .kube import KubeClient
from .metrics import Metrics
from .settings import RolloutSettings

__all__ = ["STATES", "PodState", "Rollout", "classify", "summarize"]

logger = logging.getLogger(__name__)
STATES = ("Updated", "Stale", "Refused", "Unknown")
_DEFAULT_ADMIN_PORT = 15401
Published = tuple[int, str]


@dataclass(slots=True)
class PodState:
    """What the poller knows about one pod."""

    namespace: str
    name: str
    uid: str
    ip: str | None
    port: int
    first_seen: float
    last_ok: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None


def _parts(report: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(serving, lastRefused) of a report, each a dict or None."""
    report = report or {}
    serving, refused = report.get("serving"), report.get("lastRefused")
    return (
        serving if isinstance(serving, dict) else None,
        refused if isinstance(refused, dict) else None,
    )


def classify(
    pod: PodState, published: Published | None, now: float, unknown_after: float
) -> tuple[str, str]:
    """(state, detail) of one pod against the revision in force."""
    if pod.last_ok is None or now - pod.last_ok > unknown_after:
        since = pod.last_ok if pod.last_ok is not None else pod.first_seen
        stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return "Unknown", f"no answer since {stamp} ({pod.error or 'not polled yet'})"
    serving, refused = _parts(pod.report)
    # The latest event counts: a refusal after the last good load is shown even when the pod
    # still serves the revision in force (it was fed something else: worth an alarm).
    if refused and (serving is None or (refused.get("at") or 0) >= (serving.get("loadedAt") or 0)):
        return "Refused", str(refused.get("reason") or "")[:1024]
    if serving and published and (serving.get("revision"), serving.get("contentHash")) == published:
        return "Updated", ""
    return "Stale", ""


def _row(pod: PodState, state: str, detail: str, published: Published | None) -> dict[str, Any]:
    found, refused = _parts(pod.report)
    serving = found or {}
    revision = serving.get("revision") if isinstance(serving.get("revision"), int) else None
    return {
        "name": pod.name,
        "uid": pod.uid,
        "ip": pod.ip,
        "state": state,
        "detail": detail,
        "revision": revision,
        "contentHash": serving.get("contentHash"),
        "loadedAt": serving.get("loadedAt"),
        "drift": None if revision is None or published is None else published[0] - revision,
        "refused": None
        if refused is None
        else {k: refused.get(k) for k in ("revision", "contentHash", "reason", "at")},
    }


def summarize(rows: list[dict[str, Any]], published: Published | None) -> dict[str, Any]:
    """``status.rollout`` of a namespace (without ``observedAt``)."""
    counts = {state: sum(r["state"] == state for r in rows) for state in STATES}
    return {
        "revision": published[0] if published else None,
        "synced": f"{counts['Updated']}/{len(rows)}",
        "total": len(rows),
        "updated": counts["Updated"],
        "stale": counts["Stale"],
        "refused": counts["Refused"],
        "unknown": counts["Unknown"],
    }


@dataclass(slots=True)
class _Namespace:
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    written_summary: dict[str, Any] | None = None
    status_written_at: float = 0.0


class Rollout:
    """The poller; :meth:`run` until stopped, acting only while ``leader()`` says so."""

    def __init__(
        self,
        client: KubeClient,
        settings: RolloutSettings,
        metrics: Metrics,
        *,
        namespaces: tuple[str, ...],
        leader: Callable[[], Awaitable[bool]],
        instance: str,
    ) -> None:
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.namespaces = namespaces
        self.leader = leader
        self.instance = instance
        self.pods: dict[str, PodState] = {}
        self._state: dict[str, _Namespace] = {}
        self._posted: set[tuple[str, Any, Any]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        timeout = aiohttp.ClientTimeout(total=self.settings.scrape_timeout_seconds)
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while not stop.is_set():
                converging = True
                try:
                    leading = await self.leader()
                    self.metrics.leader.set(1 if leading else 0)
                    if leading and self.settings.enabled:
                        converging = await self.tick(session)
                except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                    logger.warning("rollout poll failed: %s", exc)
                pause = self.settings.interval_seconds * (1 if converging else 5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    async def _list_pods(self) -> list[dict[str, Any]]:
        selector = f"{names.LABEL_INJECTED}=true"
        if not self.namespaces:
            return await self.client.list("/api/v1/pods", label_selector=selector)
        pods: list[dict[str, Any]] = []
        for namespace in self.namespaces:
            pods += await self.client.list(
                f"/api/v1/namespaces/{namespace}/pods", label_selector=selector
            )
        return pods

    def _track(self, pods: list[dict[str, Any]], now: float) -> None:
        live: set[str] = set()
        for pod in pods:
            meta, status = pod.get("metadata", {}), pod.get("status", {})
            if status.get("phase") in ("Succeeded", "Failed"):
                continue
            uid = str(meta.get("uid"))
            live.add(uid)
            try:
                annotation = json.loads(
                    meta.get("annotations", {})[names.ANNOTATION_INJECTION_STATUS]
                )
                port = int(annotation.get("adminPort", _DEFAULT_ADMIN_PORT))
            except (KeyError, TypeError, ValueError):
                port = _DEFAULT_ADMIN_PORT
            known = self.pods.get(uid)
            if known is None:
                known = PodState(meta.get("namespace"), meta.get("name"), uid, None, port, now)
                self.pods[uid] = known
            known.ip, known.port = status.get("podIP") or None, port
        for uid in set(self.pods) - live:
            del self.pods[uid]

    async def _poll(self, session: aiohttp.ClientSession, pod: PodState, now: float) -> None:
        if pod.ip is None:
            pod.error = "no pod IP yet"
            return
        host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
        try:
            async with session.get(f"http://{host}:{pod.port}/aigw/rollout") as response:
                if response.status != 200:
                    raise aiohttp.ClientResponseError(
                        response.request_info, (), status=response.status
                    )
                report = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            pod.error = f"{type(exc).__name__}: {exc}"[:200]
            self.metrics.rollout_polls.labels("error").inc()
            return
        if not isinstance(report, dict):
            pod.error = "not a rollout report"
            return
        pod.report, pod.last_ok, pod.error = report, now, None
        self.metrics.rollout_polls.labels("ok").inc()

    async def _published(self, namespace: str) -> Published | None:
        pointer = await self.client.get(
            f"/api/v1/namespaces/{namespace}/configmaps/{names.POINTER_NAME}"
        )
        if pointer is None:
            return None
        revision = configmap_revision(pointer)
        digest = (pointer["metadata"].get("annotations") or {}).get(names.ANNOTATION_CONTENT_HASH)
        return (revision, str(digest)) if revision is not None else None

    async def tick(self, session: aiohttp.ClientSession) -> bool:
        """One round: list, poll, write. True while some namespace is converging."""
        now = time.time()
        self._track(await self._list_pods(), now)
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def poll(pod: PodState) -> None:
            async with gate:
                await self._poll(session, pod, now)

        await asyncio.gather(*(poll(p) for p in self.pods.values()))
        converging = False
        by_namespace: dict[str, list[PodState]] = {}
        for pod in self.pods.values():
            by_namespace.setdefault(pod.namespace, []).append(pod)
        for namespace in sorted(set(by_namespace) | set(self._state)):
            pods = sorted(by_namespace.get(namespace, []), key=lambda p: p.name)
            converging |= await self._namespace(namespace, pods, now)
        return converging

    async def _namespace(self, namespace: str, pods: list[PodState], now: float) -> bool:
        published = await self._published(namespace)
        rows = []
        for pod in pods:
            state, detail = classify(pod, published, now, self.settings.unknown_after_seconds)
            rows.append(_row(pod, state, detail, published))
            if state == "Refused":
                await self._refused(pod, rows[-1])
        summary = summarize(rows, published)
        for state in STATES:
            self.metrics.rollout_pods.labels(namespace, state).set(
                sum(r["state"] == state for r in rows)
            )
        known = self._state.setdefault(namespace, _Namespace())
        if rows != known.rows or summary != known.summary:
            await self._write_configmap(namespace, rows, summary, now)
            known.rows, known.summary = rows, summary
        converged = summary["updated"] == summary["total"]
        if summary != known.written_summary and (
            converged or now - known.status_written_at >= self.settings.status_interval_seconds
        ):
            await self._write_status(namespace, summary, now)
            known.written_summary, known.status_written_at = summary, now
        if not pods:
            self._state.pop(namespace, None)
        return summary["updated"] < summary["total"] or summary != known.written_summary

    async def _refused(self, pod: PodState, row: Mapping[str, Any]) -> None:
        refused = row.get("refused") or {}
        key = (pod.uid, refused.get("revision"), refused.get("contentHash"))
        if key in self._posted:
            return
        self._posted.add(key)
        self.metrics.bundle_refusals.labels(pod.namespace).inc()
        message = (
            f"refused bundle revision {refused.get('revision')} ({refused.get('contentHash')}):"
            f" {refused.get('reason')}; serving revision {row.get('revision')}"
        )
        logger.warning("pod %s/%s %s", pod.namespace, pod.name, message)
        ref = {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
        try:
            await post_event(
                self.client,
                pod.namespace,
                ref,
                kind="Warning",
                reason="BundleRefused",
                message=message,
                instance=self.instance,
            )
        except ApiError as exc:
            logger.warning("cannot post the BundleRefused event: %s", exc)

    async def _write_configmap(
        self, namespace: str, rows: list[dict[str, Any]], summary: dict[str, Any], now: float
    ) -> None:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": names.ROLLOUT_NAME,
                "namespace": namespace,
                "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY},
            },
            "data": {
                "pods.json": json.dumps(rows, sort_keys=True),
                "summary.json": json.dumps({**summary, "observedAt": stamp}, sort_keys=True),
            },
        }
        try:
            await self.client.request("PUT", f"{path}/{names.ROLLOUT_NAME}", body=body)
        except NotFound:
            await self.client.request("POST", path, body=body)

    async def _write_status(self, namespace: str, summary: dict[str, Any], now: float) -> None:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rollout = {**summary, "observedAt": stamp}
        gate = asyncio.Semaphore(8)

        async def patch(path: str) -> None:
            async with gate:
                try:
                    await self.client.merge_patch(path, {"status": {"rollout": rollout}})
                except NotFound:
                    return

        paths = []
        for plural in ("aipolicies", "modelroutes"):
            base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
            paths += [
                f"{base}/{item['metadata']['name']}/status" for item in await self.client.list(base)
            ]
        await asyncio.gather(*(patch(p) for p in paths))
