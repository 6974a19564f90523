"""The webhook server over TLS with generated certificates, as the apiserver calls it."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aigw_operator import SidecarSettings
from aigw_operator.certs import ensure_certificates, generate_certificates
from aigw_operator.metrics import Metrics
from aigw_operator.webhook import (
    health_app,
    reload_certificates,
    server_ssl_context,
    webhook_app,
)
from aigw_operator.webhookconfig import webhook_configuration
from support import free_port

Patcher = Callable[[Any, list[dict[str, Any]]], Any]


def review(pod: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0a1b",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": operation,
            "namespace": "team-a",
            "object": pod,
        },
    }


async def test_webhook_over_tls(tmp_path: Path, json_patch: Patcher) -> None:
    files, generated = ensure_certificates(tmp_path / "certs", ("127.0.0.1", "localhost"))
    assert generated
    assert (tmp_path / "certs" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert ensure_certificates(tmp_path / "certs", ("127.0.0.1",)) == (files, False)

    asked: list[str] = []

    async def secrets(namespace: str) -> list[str]:
        asked.append(namespace)
        return ["provider-keys"]

    metrics = Metrics()
    app = webhook_app(SidecarSettings(), native=True, secrets=secrets, metrics=metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ssl_context(files)).start()
    assert files.ca is not None
    client_ssl = ssl.create_default_context(cafile=str(files.ca))
    try:
        async with aiohttp.ClientSession() as session:
            pod = {"metadata": {"labels": {"aigw.dev/inject": "true"}}, "spec": {"containers": []}}
            url = f"https://127.0.0.1:{port}/inject"
            async with session.post(url, json=review(pod), ssl=client_ssl) as response:
                answer = await response.json()
            result = answer["response"]
            assert (result["uid"], result["allowed"], result["patchType"]) == (
                "0a1b",
                True,
                "JSONPatch",
            )
            patched = json_patch(pod, json.loads(base64.b64decode(result["patch"])))
            assert patched["spec"]["initContainers"][0]["restartPolicy"] == "Always"
            assert asked == ["team-a"]

            unlabelled: dict[str, Any] = {"metadata": {}, "spec": {"containers": []}}
            async with session.post(url, json=review(unlabelled), ssl=client_ssl) as response:
                assert "patch" not in (await response.json())["response"]
            async with session.post(
                url + "/namespace", json=review(unlabelled), ssl=client_ssl
            ) as response:
                assert "patch" in (await response.json())["response"]
            async with session.post(url, data=b"{", ssl=client_ssl) as response:
                assert response.status == 400
    finally:
        await runner.cleanup()
    text = metrics.registry.get_sample_value(
        "aigw_operator_admissions_total", {"reason": "pod-label"}
    )
    assert text == 1.0


async def test_health_endpoints() -> None:
    ready = {"webhook": True, "operator": False}
    runner = web.AppRunner(health_app(Metrics(), ready=ready))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            async with session.get(base + "/healthz") as response:
                assert response.status == 200
            async with session.get(base + "/readyz") as response:
                assert response.status == 503
            ready["operator"] = True
            async with session.get(base + "/readyz") as response:
                assert response.status == 200
            async with session.get(base + "/metrics") as response:
                assert "aigw_operator_reconciles_total" in await response.text()
    finally:
        await runner.cleanup()


def test_webhook_configuration_never_selects_kube_system() -> None:
    config = webhook_configuration(
        name="aigw-sidecar-injector",
        ca_bundle=b"CA",
        url="https://127.0.0.1:9443",
        excluded_namespaces=("kube-system", "aigw-system"),
        failure_policy="Ignore",
    )
    for hook in config["webhooks"]:
        expressions = hook["namespaceSelector"]["matchExpressions"]
        assert {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["aigw-system", "kube-system"],
        } in expressions
        assert hook["failurePolicy"] == "Ignore"
        assert hook["rules"][0]["operations"] == ["CREATE"]
    urls = [h["clientConfig"]["url"] for h in config["webhooks"]]
    assert urls == [
        "https://127.0.0.1:9443/inject",
        "https://127.0.0.1:9443/inject/namespace",
    ]


async def test_renewed_certificates_are_served_without_a_restart(tmp_path: Path) -> None:
    files, _ = ensure_certificates(tmp_path, ("127.0.0.1",))
    context = server_ssl_context(files)
    runner = web.AppRunner(health_app(Metrics(), ready={}))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    reloader = asyncio.create_task(reload_certificates(context, files, interval=0.01))
    try:
        ca, cert, key = generate_certificates(("127.0.0.1",))  # as cert-manager renews them
        files.key.write_bytes(key)
        files.cert.write_bytes(cert)
        renewed = ssl.create_default_context(cadata=ca.decode())
        async with aiohttp.ClientSession() as session:
            for _ in range(500):
                try:
                    async with session.get(f"https://127.0.0.1:{port}/healthz", ssl=renewed) as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectorCertificateError:
                    await asyncio.sleep(0.01)
            else:
                pytest.fail("the renewed certificate was never served")
    finally:
        reloader.cancel()
        await runner.cleanup()
