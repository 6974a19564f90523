"""Two operator replicas under the chart's RBAC share one webhook certificate (generated once
into a Secret), and the apiserver's calls to the webhook of either one verify."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.k8s

NS = "fleet-ha"
CONFIG = "aigw-sidecar-injector"
SECRET = "aigw-webhook-shared-tls"
OPERATOR_NS = "aigw-op-system"


def _served_certificate(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port))


def _point_at(cluster: Any, port: int) -> None:
    config = cluster.get("mutatingwebhookconfiguration", CONFIG)
    ops = []
    for i, hook in enumerate(config["webhooks"]):
        path = hook["clientConfig"]["url"].split("/", 3)[3]
        url = f"https://127.0.0.1:{port}/{path}"
        ops.append({"op": "replace", "path": f"/webhooks/{i}/clientConfig/url", "value": url})
    cluster.kubectl(
        "patch", "mutatingwebhookconfiguration", CONFIG, "--type=json", "-p", json.dumps(ops)
    )


def _pod(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"aigw.dev/inject": "true"}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
        }
    )


def test_two_replicas_share_one_certificate_and_either_serves_the_apiserver(
    aigw_cluster: Any, tmp_path: Path
) -> None:
    shared = aigw_cluster.operator
    saved = aigw_cluster.get("mutatingwebhookconfiguration", CONFIG)["webhooks"]
    args = (f"--webhook-cert-secret={OPERATOR_NS}/{SECRET}", f"--webhook-configuration={CONFIG}")
    first = type(shared)(shared.kubeconfig, tmp_path, priority=31, webhook=True, extra_args=args)
    second = type(shared)(shared.kubeconfig, tmp_path, priority=32, webhook=True, extra_args=args)
    aigw_cluster.kubectl("create", "namespace", NS)
    try:
        first.start()
        second.start()
        # One certificate, generated once (the second replica read the first one's Secret).
        assert _served_certificate(first.webhook_port) == _served_certificate(second.webhook_port)
        secret = aigw_cluster.get("-n", OPERATOR_NS, "secret", SECRET)
        ca = base64.b64decode(secret["data"]["ca.crt"])
        config = aigw_cluster.get("mutatingwebhookconfiguration", CONFIG)
        assert {base64.b64decode(h["clientConfig"]["caBundle"]) for h in config["webhooks"]} == {ca}
        assert "generated the webhook certificate" in (
            first.log.read_text() + second.log.read_text()
        )
        # The apiserver calls each replica in turn, with the one caBundle.
        for replica, name in ((first, "via-first"), (second, "via-second")):
            _point_at(aigw_cluster, replica.webhook_port)
            aigw_cluster.kubectl("apply", "-f", "-", input=_pod(name))
            pod = aigw_cluster.get("-n", NS, "pod", name)
            assert "aigw.dev/injection-status" in pod["metadata"]["annotations"]
            assert pod["metadata"]["labels"]["aigw.dev/injected"] == "true"
        assert first.metric("aigw_operator_admissions_total", reason="pod-label") == 1
        assert second.metric("aigw_operator_admissions_total", reason="pod-label") == 1
        # Neither leads: the shared operator has the higher priority.
        assert first.metric("aigw_operator_leader") == second.metric("aigw_operator_leader") == 0
        assert wait_for("the leader's metric", lambda: shared.metric("aigw_operator_leader") == 1)
    finally:
        first.stop()
        second.stop()
        ops = [
            {"op": "replace", "path": f"/webhooks/{i}/clientConfig", "value": h["clientConfig"]}
            for i, h in enumerate(saved)
        ]
        aigw_cluster.kubectl(
            "patch", "mutatingwebhookconfiguration", CONFIG, "--type=json", "-p", json.dumps(ops)
        )
        aigw_cluster.kubectl("-n", OPERATOR_NS, "delete", "secret", SECRET, "--ignore-not-found")
        aigw_cluster.kubectl("delete", "namespace", NS, "--wait=false")
