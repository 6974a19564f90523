"""Assembling and running the operator: kopf handlers, the webhook, health and metrics.

kopf does the watching, peering and dispatching; this module wires it to the reconciler,
without kopf's process-wide registry (each run builds its own, so tests can start several).
Handlers are ``on.event`` handlers: the namespace is recompiled from scratch on any event of
any of its resources (creation, update, deletion, and the initial listing, which is also
what a standby replica sees when it takes over), so nothing is stored on the objects (no
finalizers that would block deletion while the operator is down, no progress annotations).
Only the replica that holds the peering compiles; every replica serves the webhook. The
peering object is checked before anything starts (``peering``): without it kopf would pause
forever while the operator looked healthy.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, cast

import kopf
from aiohttp import web

from aigw_contract import GROUP, VERSION

from . import names
from .certs import (
    CertificateFiles,
    certificate_secret,
    certificates_from_secret,
    ensure_certificates,
)
from .debounce import Debouncer
from .errors import ApiError, CertificateError, Conflict
from .kube import Credentials, KubeClient, load_credentials
from .leader import is_leader
from .metrics import Metrics
from .peering import check_peering
from .reconcile import Reconciler
from .rollout import Rollout
from .settings import OperatorSettings, SidecarSettings, WebhookSettings
from .webhook import (
    SecretsCache,
    health_app,
    reload_certificates,
    server_ssl_context,
    webhook_app,
)
from .webhookconfig import webhook_configuration

__all__ = ["build_registry", "kopf_settings", "run"]

logger = logging.getLogger(__name__)
NATIVE_SIDECAR_MINOR = 29
"""SidecarContainers is on by default from Kubernetes 1.29."""


def _connection_info(creds: Credentials) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=str(creds.ca_file) if creds.ca_file else None,
        insecure=creds.insecure or None,
        token=creds.current_token(),
        scheme="Bearer" if creds.current_token() else None,
        certificate_path=str(creds.cert_file) if creds.cert_file else None,
        private_key_path=str(creds.key_file) if creds.key_file else None,
    )


def build_registry(creds: Credentials, debouncer: Debouncer) -> kopf.OperatorRegistry:
    """kopf handlers: log in with our credentials, and recompile on any resource event."""
    registry = kopf.OperatorRegistry()

    def login(**_: Any) -> kopf.ConnectionInfo:
        return _connection_info(creds)

    async def changed(namespace: str | None, **_: Any) -> None:
        # async: kopf runs sync handlers in a thread pool, and the debouncer lives in the loop.
        if namespace:
            debouncer.trigger(namespace)

    kopf.on.login(registry=registry)(login)
    for plural in ("aipolicies", "modelroutes"):
        kopf.on.event(GROUP, VERSION, plural, id=f"recompile-{plural}", registry=registry)(changed)
    return registry


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's settings: our own Events and webhook, no CRD scanning (no RBAC for it)."""
    kopf_cfg = kopf.OperatorSettings()
    kopf_cfg.posting.enabled = False
    kopf_cfg.scanning.disabled = True
    kopf_cfg.admission.server = None
    kopf_cfg.admission.managed = None
    kopf_cfg.peering.lifetime = settings.peering.lifetime_seconds
    kopf_cfg.watching.server_timeout = 300
    kopf_cfg.networking.request_timeout = 60
    return kopf_cfg


async def _native_sidecars(client: KubeClient, sidecar: SidecarSettings) -> bool:
    if sidecar.native != "auto":
        return sidecar.native == "always"
    version = await client.request("GET", "/version")
    minor = int("".join(ch for ch in str(version.get("minor", "0")) if ch.isdigit()) or 0)
    return int(version.get("major", 0)) > 1 or minor >= NATIVE_SIDECAR_MINOR


async def _patch_ca_bundle(client: KubeClient, name: str, ca: bytes) -> None:
    path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
    config = await client.request("GET", path)
    value = base64.b64encode(ca).decode()
    ops = [
        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": value}
        for i in range(len(config.get("webhooks") or []))
    ]
    await client.request("PATCH", path, body=ops, content_type="application/json-patch+json")
    logger.info("patched the caBundle of MutatingWebhookConfiguration %s", name)


async def _register_webhook(client: KubeClient, hook: WebhookSettings, ca: bytes) -> None:
    name = str(hook.configuration_name)
    body = webhook_configuration(
        name=name,
        ca_bundle=ca,
        url=hook.register_url,
        excluded_namespaces=hook.excluded_namespaces,
        failure_policy=hook.failure_policy,
    )
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    existing = await client.get(f"{path}/{name}")
    if existing is None:
        await client.request("POST", path, body=body)
    else:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        await client.request("PUT", f"{path}/{name}", body=body)
    logger.info("registered MutatingWebhookConfiguration %s -> %s", name, hook.register_url)


async def _start_site(app: web.Application, host: str, port: int, **kwargs: Any) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, **kwargs).start()
    return runner


async def run(settings: OperatorSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM (in the main thread)."""
    with tempfile.TemporaryDirectory(prefix="aigw-operator-") as scratch:
        await _run(settings, load_credentials(settings.kube, Path(scratch)), stop)


async def _run(settings: OperatorSettings, creds: Credentials, stop: asyncio.Event | None) -> None:
    instance = f"{socket.gethostname()}-{os.getpid()}"
    metrics = Metrics()
    ready = {"webhook": not settings.webhook.enabled, "operator": False}
    runners: list[web.AppRunner] = []
    async with KubeClient(creds) as client:
        logger.info(await check_peering(client, settings))  # refuses to start without it
        reconciler = Reconciler(client, settings.bundles, metrics, instance=instance)
        debouncer = Debouncer(
            reconciler.reconcile,
            quiet=settings.bundles.debounce_seconds,
            max_delay=settings.bundles.max_delay_seconds,
        )
        try:
            runners.append(
                await _start_site(
                    health_app(metrics, ready=ready), settings.health_host, settings.health_port
                )
            )
            if settings.webhook.enabled:
                runners.append(await _start_webhook(settings, client, metrics))
                ready["webhook"] = True
            ready_flag = asyncio.Event()

            async def mark_ready() -> None:
                await ready_flag.wait()
                ready["operator"] = True

            marker = asyncio.create_task(mark_ready())
            rollout = Rollout(
                client,
                settings.rollout,
                metrics,
                namespaces=settings.namespaces,
                leader=lambda: is_leader(client, settings.peering, instance, settings.namespaces),
                instance=instance,
            )
            stopped = asyncio.Event()
            poller = asyncio.create_task(rollout.run(stopped), name="rollout poller")
            try:
                await kopf.operator(
                    registry=build_registry(creds, debouncer),
                    settings=kopf_settings(settings),
                    clusterwide=not settings.namespaces,
                    namespaces=list(settings.namespaces),
                    standalone=settings.peering.name is None,
                    peering_name=settings.peering.name,
                    priority=settings.peering.priority,
                    stop_flag=stop,
                    ready_flag=ready_flag,
                    # Our entry in the peering object is then ours by name (see leader.py).
                    identity=cast("Any", instance),
                )
            finally:
                marker.cancel()
                stopped.set()
                await poller
        finally:
            for runner in runners:
                await runner.cleanup()


async def _shared_certificates(client: KubeClient, hook: WebhookSettings) -> CertificateFiles:
    """The certificate every replica serves, from its Secret (generated there first if it
    does not exist; a replica that loses the race to create it reads the winner's)."""
    assert hook.cert_secret is not None
    namespace, name = hook.cert_secret
    path = f"/api/v1/namespaces/{namespace}/secrets"
    secret = await client.get(f"{path}/{name}")
    if secret is None:
        try:
            secret = await client.request(
                "POST", path, body=certificate_secret(namespace, name, hook.sans)
            )
            logger.info("generated the webhook certificate into Secret %s/%s", namespace, name)
        except Conflict:
            secret = await client.request("GET", f"{path}/{name}")
    return certificates_from_secret(dict(secret.get("data") or {}), hook.cert_dir)


async def _start_webhook(
    settings: OperatorSettings, client: KubeClient, metrics: Metrics
) -> web.AppRunner:
    hook = settings.webhook
    if hook.cert_secret is not None:
        files, generated = await _shared_certificates(client, hook), True
    else:
        files, generated = ensure_certificates(hook.cert_dir, hook.sans)
    if hook.register_url and hook.configuration_name:
        if files.ca is None:
            raise CertificateError(f"registering the webhook needs {hook.cert_dir}/ca.crt")
        await _register_webhook(client, hook, files.ca.read_bytes())
    elif generated and hook.configuration_name and files.ca is not None:
        try:
            await _patch_ca_bundle(client, hook.configuration_name, files.ca.read_bytes())
        except ApiError as exc:
            logger.error("cannot patch the webhook configuration's caBundle: %s", exc)
    native = await _native_sidecars(client, settings.sidecar)
    logger.info(
        "webhook on %s:%d (%s sidecars, %s certificates) for %s",
        hook.host,
        hook.port,
        "native" if native else "container",
        "generated" if generated else "supplied",
        names.SIDECAR_NAME,
    )
    cache = SecretsCache(client)
    app = webhook_app(settings.sidecar, native=native, secrets=cache.secrets, metrics=metrics)
    context = server_ssl_context(files)
    reloader = asyncio.create_task(reload_certificates(context, files), name="cert reloader")

    async def stop_reloader(_: web.Application) -> None:
        reloader.cancel()

    app.on_cleanup.append(stop_reloader)
    return await _start_site(app, hook.host, hook.port, ssl_context=context)
