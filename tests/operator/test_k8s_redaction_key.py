"""The key of redaction mode hash reaches every pod, end to end through the real apiserver.

An operator started with ``--sidecar-redaction-key-secret`` injects the two pods of a labelled
Deployment; each mounts the namespace's Secret (that one entry, read-only, in the sidecar
container alone) and its sidecar gets ``--redaction-key-file``. The stand-in kubelet lays the
Secret out and runs both sidecars. Proven here:

- while the Secret is missing, or lacks the entry, no sidecar starts (the pods wait, as a
  kubelet's failed mount makes them wait), rather than draw keys of their own;
- the two sidecars hash one e-mail canary to the same token, and it is the token the
  documented derivation gives under the Secret's key (so equal tokens are not an accident of
  one process);
- the key (a canary itself) is in no sidecar or operator log, status, metrics page, answer,
  header or the stored pod.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from aigw_e2e.kubelet import Kubelet
from aigw_fakeprovider.server import FakeProviderThread
from support.bundles import backend_doc, policy_doc, route_doc
from support.waiting import wait_for
from support.workloads import deployment_doc, kube_list

pytestmark = pytest.mark.k8s

NS = "redaction-key-a"
SECRET = "aigw-redaction-key"
ENTRY = "hash-key"
CONFIGURATION = "aigw-redaction-key-injector"
"""Sorts before the shared operator's configuration: its webhook is the one that injects."""
VENV_BIN = str(Path(sys.executable).parent)
EMAIL = "jane.canary.7f3e@example.com"


def resources(base_url: str) -> str:
    pricing = {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"}
    backend = backend_doc("main", "openai", base_url, "gpt-4o-mini", pricing=pricing)
    route = route_doc("chat", [backend], namespace=NS)
    policy = policy_doc(
        "hash-app",
        {
            "selector": {"matchLabels": {"app": "hash-app"}},
            "mode": "enforce",
            "useCases": [
                {
                    "name": "default",
                    "routes": ["chat"],
                    "redaction": {"profile": "pii", "mode": "hash"},
                }
            ],
        },
        namespace=NS,
    )
    return kube_list(route, policy)


def deployment() -> str:
    labels = {"aigw.dev/inject": "true"}
    return json.dumps(deployment_doc("hash-app", NS, replicas=2, labels=labels))


def secret(entry: str, key: bytes) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NS},
            "data": {entry: base64.b64encode(key + b"\n").decode()},  # a trailing newline
        }
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _ready(url: str) -> bool:
    try:
        return bool(_get(url))
    except OSError:
        return False


def expected_token(key: bytes, tenant: str, category: str, value: str) -> str:
    """docs/inspection.md: tenant key = HMAC-SHA256(sidecar key, tenant), token = the first
    16 hex digits of HMAC-SHA256(tenant key, category NUL value)."""
    tenant_key = hmac.new(key, b"aigw-redaction\0" + tenant.encode(), hashlib.sha256).digest()
    digest = hmac.new(tenant_key, f"{category}\0{value}".encode(), hashlib.sha256).hexdigest()
    return f"[{category}_{digest[:16]}]"


def test_two_pods_hash_a_value_to_the_same_token_with_the_mounted_key(
    aigw_cluster: Any, tmp_path: Path
) -> None:
    key = f"aigw-key-canary-{secrets.token_hex(16)}".encode()
    leader = aigw_cluster.operator
    injector = type(leader)(
        aigw_cluster.plane.kubeconfig,
        leader.workdir,
        priority=12,
        webhook=True,
        extra_args=(
            f"--webhook-configuration={CONFIGURATION}",
            "--exclude-namespace=aigw-op-system",
            "--failure-policy=Ignore",
            f"--sidecar-redaction-key-secret={SECRET}",
            f"--sidecar-redaction-key-secret-key={ENTRY}",
        ),
    )
    injector.extra_args += (f"--register-webhook-url=https://127.0.0.1:{injector.webhook_port}",)
    aigw_cluster.kubectl("create", "namespace", NS)
    kubelet = Kubelet(
        aigw_cluster.plane.server,
        aigw_cluster.plane.admin_ssl_context(),
        tmp_path / "kubelet",
        namespaces=(NS,),
        path=os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]),
    )
    with FakeProviderThread("openai") as fake:
        injector.start()
        try:
            aigw_cluster.kubectl("apply", "-f", "-", input=resources(fake.openai_base_url))
            aigw_cluster.kubectl("apply", "-f", "-", input=deployment())

            def scheduled() -> list[dict[str, Any]] | None:
                items = aigw_cluster.get("-n", NS, "pods")["items"]
                placed = [p for p in items if (p.get("status") or {}).get("podIP")]
                return placed if len(placed) == 2 else None

            pods = wait_for("both pods scheduled", scheduled)
            for pod in pods:  # what the real apiserver stored
                spec = pod["spec"]
                (sidecar,) = [c for c in spec["initContainers"] if c["name"] == "aigw-sidecar"]
                (volume,) = [
                    v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == SECRET
                ]
                assert volume["secret"]["items"] == [{"key": ENTRY, "path": "key"}]
                assert not volume["secret"].get("optional")
                mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
                assert mounts[volume["name"]]["mountPath"] == "/etc/aigw/redaction-key"
                assert mounts[volume["name"]]["readOnly"] is True
                assert "--redaction-key-file=/etc/aigw/redaction-key/key" in sidecar["args"]
                for app in spec["containers"]:
                    assert volume["name"] not in {m["name"] for m in app.get("volumeMounts", [])}

            # No Secret, then a Secret without the entry: one kubelet round each, nothing starts
            # (with the bundle there, the key is the only volume missing).
            wait_for(
                "the bundle published",
                lambda: any(
                    c["metadata"]["name"] == "aigw-bundle"
                    for c in aigw_cluster.get("-n", NS, "configmaps")["items"]
                ),
            )
            for entry in (None, "other"):
                if entry is not None:
                    aigw_cluster.kubectl("apply", "-f", "-", input=secret(entry, key))
                kubelet.sync()
                assert len(kubelet.pods) == 2
                assert kubelet.running(NS) == []
                for runtime in kubelet.pods.values():
                    assert "aigw-bundle" in runtime.published
                    assert "aigw-redaction-key" not in runtime.published
            aigw_cluster.kubectl("apply", "-f", "-", input=secret(ENTRY, key))

            with kubelet:
                running = wait_for(
                    "both sidecars running",
                    lambda: r if len(r := kubelet.running(NS)) == 2 else None,
                )
                seen: list[str] = []
                for runtime in running:
                    ready = f"http://{runtime.ip}:15401/aigw/ready"
                    wait_for("the sidecar ready", lambda: _ready(ready))  # noqa: B023
                    client = OpenAI(base_url=f"http://{runtime.ip}:15400/v1", api_key="unused")
                    raw = client.chat.completions.with_raw_response.create(
                        model="chat",
                        messages=[{"role": "user", "content": f"write to {EMAIL} today"}],
                    )
                    answer = raw.parse()
                    sent = json.dumps(fake.recorder.last.body)
                    assert EMAIL not in sent
                    (token,) = {
                        word.strip(".,")
                        for word in sent.replace('"', " ").split()
                        if word.startswith("[EMAIL_")
                    }
                    seen.append(token)
                    status = _get(f"http://{runtime.ip}:15401/aigw/status")
                    assert json.loads(status)["redaction"] == {"hashKey": "file"}
                    metrics = _get(f"http://{runtime.ip}:15401/metrics")
                    visible = [
                        status,
                        metrics,
                        answer.model_dump_json(),
                        json.dumps(dict(raw.headers)),
                    ]
                    for text in visible:
                        assert key.decode() not in text
                        assert "aigw-key-canary" not in text
                assert seen[0] == seen[1] == expected_token(key, NS, "EMAIL", EMAIL)
                stored = json.dumps(aigw_cluster.get("-n", NS, "pods"))
                assert "aigw-key-canary" not in stored
                logs = [(p.root / "aigw-sidecar.log").read_text() for p in running]
                assert all("redaction mode hash in use; its key is configured" in t for t in logs)
                logs.append(injector.log.read_text())
                for text in logs:
                    assert "aigw-key-canary" not in text
        finally:
            injector.stop()
            aigw_cluster.kubectl(
                "delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found"
            )
            aigw_cluster.kubectl("delete", "namespace", NS, "--wait=false")
