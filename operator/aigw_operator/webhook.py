"""The HTTP side of the operator: the injection webhook (TLS) and health/metrics (plain).

Every replica serves the webhook, leader or not: admission must not wait for an election.
The apiserver calls ``POST /inject`` from two webhook entries (see
:func:`webhook_configuration`): one selects pods labelled ``aigw.dev/inject: "true"``, the
other pods in namespaces labelled ``aigw.dev/injection: enabled`` and calls
``/inject/namespace`` (the apiserver allows no query string in a webhook's path or URL); so
the server needs no permission to read Namespaces. The only
read it makes is the namespace's pointer ConfigMap, for the provider Secrets its routes use
(cached, refreshed in the background: admission must stay fast).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aigw_contract import BundleError
from aigw_contract.codec import decode_files

from . import names
from .bundles import configmap_files, provider_secrets
from .certs import CertificateFiles
from .errors import AdmissionError, ApiError
from .inject import plan_injection
from .kube import KubeClient
from .metrics import Metrics
from .settings import SidecarSettings

__all__ = [
    "SecretsCache",
    "health_app",
    "reload_certificates",
    "review_response",
    "server_ssl_context",
    "webhook_app",
]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SecretsCache:
    """Provider Secret names per namespace, from the pointer ConfigMap's
    ``aigw.dev/provider-secrets`` annotation (or its bundle, for older pointers).

    Admission must stay fast: a namespace seen before is answered from the cache at once, and
    an entry older than ``ttl`` is refreshed in the background (stale-while-revalidate), so
    only the first pod of a namespace waits for a read; concurrent first pods share it.
    """

    client: KubeClient
    ttl: float = 5.0
    _entries: dict[str, tuple[float, list[str]]] = field(default_factory=dict)
    _reads: dict[str, asyncio.Task[list[str]]] = field(default_factory=dict)

    async def secrets(self, namespace: str) -> list[str]:
        cached = self._entries.get(namespace)
        if cached is not None:
            if time.monotonic() - cached[0] >= self.ttl:
                self._read(namespace)
            return cached[1]
        return await asyncio.shield(self._read(namespace))

    def _read(self, namespace: str) -> asyncio.Task[list[str]]:
        task = self._reads.get(namespace)
        if task is None:
            task = asyncio.create_task(self._fetch(namespace), name=f"secrets:{namespace}")
            self._reads[namespace] = task
            task.add_done_callback(lambda _: self._reads.pop(namespace, None))
        return task

    async def _fetch(self, namespace: str) -> list[str]:
        found: list[str] = []
        try:
            cm = await self.client.get(
                f"/api/v1/namespaces/{namespace}/configmaps/{names.POINTER_NAME}"
            )
            listed = ((cm or {}).get("metadata", {}).get("annotations") or {}).get(
                names.ANNOTATION_PROVIDER_SECRETS
            )
            if isinstance(listed, str):
                found = sorted({name for name in listed.split(",") if name})
            elif cm is not None:  # a pointer written before the annotation existed
                found = provider_secrets(decode_files(configmap_files(cm)))
        except (ApiError, BundleError, aiohttp.ClientError) as exc:
            logger.warning("namespace %s: no provider secrets from the bundle: %s", namespace, exc)
        self._entries[namespace] = (time.monotonic(), found)
        return found


def review_response(uid: str, patch: list[dict[str, Any]] | None) -> dict[str, Any]:
    """An AdmissionReview answer that allows the object, with an optional JSONPatch."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _request(review: Any) -> Mapping[str, Any]:
    if not isinstance(review, dict) or not isinstance(review.get("request"), dict):
        raise AdmissionError("not an AdmissionReview with a request")
    request: Mapping[str, Any] = review["request"]
    if not isinstance(request.get("uid"), str):
        raise AdmissionError("AdmissionReview request has no uid")
    return request


def webhook_app(
    sidecar: SidecarSettings,
    *,
    native: bool,
    secrets: Callable[[str], Awaitable[list[str]]],
    metrics: Metrics,
) -> web.Application:
    """The admission webhook application."""

    async def inject(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            admission = _request(await request.json())
        except (json.JSONDecodeError, AdmissionError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        pod = admission.get("object") or {}
        kind = (admission.get("kind") or {}).get("kind")
        if admission.get("operation") != "CREATE" or kind != "Pod":
            metrics.admissions.labels("not-a-pod-create").inc()
            return web.json_response(review_response(admission["uid"], None))
        namespace = str(admission.get("namespace") or pod.get("metadata", {}).get("namespace"))
        namespace_enabled = request.path == "/inject/namespace"
        plan = plan_injection(pod, sidecar, namespace_enabled=namespace_enabled, native=native)
        if plan.decision.inject:
            plan = plan_injection(
                pod,
                sidecar,
                namespace_enabled=namespace_enabled,
                native=native,
                secrets=await secrets(namespace),
            )
        metrics.admissions.labels(plan.decision.reason).inc()
        metrics.admission_seconds.observe(time.perf_counter() - started)
        logger.info(
            "admission %s/%s: %s",
            namespace,
            pod.get("metadata", {}).get("name") or pod.get("metadata", {}).get("generateName"),
            plan.decision.reason,
        )
        return web.json_response(review_response(admission["uid"], plan.patch))

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/inject", inject)
    app.router.add_post("/inject/namespace", inject)
    return app


def health_app(metrics: Metrics, *, ready: Mapping[str, bool]) -> web.Application:
    """/healthz (the process answers), /readyz (every part started), /metrics."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        waiting = sorted(part for part, ok in ready.items() if not ok)
        if waiting:
            return web.Response(status=503, text=f"waiting for: {', '.join(waiting)}\n")
        return web.Response(text="ok\n")

    async def metrics_view(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


def server_ssl_context(files: CertificateFiles) -> ssl.SSLContext:
    """TLS for the webhook server (TLS 1.2+, the apiserver's client needs nothing older)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def _stamp(files: CertificateFiles) -> tuple[int, int]:
    return files.cert.stat().st_mtime_ns, files.key.stat().st_mtime_ns


async def reload_certificates(
    context: ssl.SSLContext, files: CertificateFiles, *, interval: float = 30.0
) -> None:
    """Reload the serving certificate when its files change (cert-manager renews them in
    place); new connections get the new one. Runs until cancelled."""
    stamp: tuple[int, int] | None = None  # reload once at first: the files may have changed
    while True:
        await asyncio.sleep(interval)
        try:
            current = _stamp(files)
            if current != stamp:
                context.load_cert_chain(str(files.cert), str(files.key))
                stamp = current
                logger.info("webhook certificate reloaded from %s", files.cert)
        except (OSError, ssl.SSLError) as exc:
            # Mid-rotation (key written, certificate not yet): keep serving the old pair.
            logger.warning("webhook certificate not reloaded: %s", exc)
