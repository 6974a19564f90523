"""Redis over TLS in a cluster, end to end: the Secret with the PEM files reaches the sidecar.

An operator started with ``--sidecar-redis-tls-secret`` (and the ``AIGW_SIDECAR_REDIS_*``
environment the chart gives it) injects a labelled Deployment's pods through the real
apiserver; the injected pod mounts the namespace's Secret at the directory the TLS paths
point into, in the sidecar container alone. The stand-in kubelet lays the Secret out and runs
the sidecar, which reaches a real ``redis-server`` that speaks only TLS and requires a client
certificate: a governed call (the policy fails closed, so a sidecar without Redis would
refuse it) is counted in that Redis.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from aigw_e2e.kubelet import Kubelet
from aigw_fakeprovider.server import FakeProviderThread
from support.bundles import backend_doc, policy_doc, route_doc
from support.redis import SERVER_NAME, RedisServer, make_certificates
from support.waiting import wait_for
from support.workloads import deployment_doc, kube_list

pytestmark = pytest.mark.k8s

NS = "redis-tls-a"
SECRET = "aigw-redis-tls"
CONFIGURATION = "aigw-redis-tls-injector"
"""Sorts before the shared operator's configuration: its webhook is the one that injects."""
VENV_BIN = str(Path(sys.executable).parent)


def resources(base_url: str) -> str:
    pricing = {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"}
    backend = backend_doc("main", "openai", base_url, "gpt-4o-mini", pricing=pricing)
    route = route_doc("chat", [backend], namespace=NS)
    policy = policy_doc(
        "tls-app",
        {
            "selector": {"matchLabels": {"app": "tls-app"}},
            "failMode": "closed",
            "useCases": [
                {
                    "name": "default",
                    "routes": ["chat"],
                    "budgets": [{"name": "daily", "period": "day", "tokens": 1_000_000}],
                }
            ],
        },
        namespace=NS,
    )
    return kube_list(route, policy)


def deployment() -> str:
    labels = {"aigw.dev/inject": "true"}
    return json.dumps(deployment_doc("tls-app", NS, replicas=1, labels=labels))


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", tls=make_certificates(tmp_path / "certs"))
    server.start()
    yield server
    server.remove()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_injected_sidecar_reaches_a_tls_redis_with_the_mounted_secret(
    aigw_cluster: Any, tls_redis: RedisServer, tmp_path: Path
) -> None:
    certs = tls_redis.tls
    assert certs is not None
    files = {"ca.crt": "ca.crt", "tls.crt": "client.crt", "tls.key": "client.key"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NS},
        "data": {k: base64.b64encode((certs / v).read_bytes()).decode() for k, v in files.items()},
    }
    directory = "/etc/aigw/redis-tls"
    leader = aigw_cluster.operator
    injector = type(leader)(
        aigw_cluster.plane.kubeconfig,
        leader.workdir,
        priority=11,
        webhook=True,
        extra_args=(
            f"--webhook-configuration={CONFIGURATION}",
            "--exclude-namespace=aigw-op-system",
            "--failure-policy=Ignore",
            f"--sidecar-redis-tls-secret={SECRET}",
            f"--sidecar-redis-tls-dir={directory}",
        ),
        env={
            "AIGW_SIDECAR_REDIS_URL": tls_redis.url,
            "AIGW_SIDECAR_REDIS_TLS_CA_FILE": f"{directory}/ca.crt",
            "AIGW_SIDECAR_REDIS_TLS_CERT_FILE": f"{directory}/tls.crt",
            "AIGW_SIDECAR_REDIS_TLS_KEY_FILE": f"{directory}/tls.key",
            "AIGW_SIDECAR_REDIS_TLS_SERVER_NAME": SERVER_NAME,
        },
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
            aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
            aigw_cluster.kubectl("apply", "-f", "-", input=resources(fake.openai_base_url))
            with kubelet:
                aigw_cluster.kubectl("apply", "-f", "-", input=deployment())
                (pod,) = wait_for("the sidecar running", lambda: kubelet.running(NS))
                # What the real apiserver stored: the Secret in the sidecar container alone.
                stored = aigw_cluster.get("-n", NS, "pod", pod.name)
                spec = stored["spec"]
                (sidecar,) = [c for c in spec["initContainers"] if c["name"] == "aigw-sidecar"]
                (volume,) = [
                    v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == SECRET
                ]
                mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
                assert mounts[volume["name"]]["mountPath"] == directory
                assert mounts[volume["name"]]["readOnly"] is True
                for app in spec["containers"]:  # (the apiserver gives them the token mount)
                    assert volume["name"] not in {m["name"] for m in app.get("volumeMounts", [])}
                admin = f"http://{pod.ip}:15401/aigw/ready"
                wait_for("the sidecar ready", lambda: _ready(admin))
                client = OpenAI(base_url=f"http://{pod.ip}:15400/v1", api_key="unused")
                answer = client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hello over TLS"}]
                )
                assert answer.usage is not None
                spent = answer.usage.total_tokens
                redis = tls_redis.client()
                try:
                    key = f"aigw:{{{NS}:{NS}}}:c"

                    def counted() -> float | None:
                        fields = redis.hgetall(key)
                        values = [float(v) for f, v in fields.items() if str(f).endswith(":tok.v")]
                        return values[0] if values else None

                    assert wait_for("the budget counted in Redis", counted) == spent
                finally:
                    redis.close()
        finally:
            injector.stop()
            aigw_cluster.kubectl(
                "delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found"
            )
            aigw_cluster.kubectl("delete", "namespace", NS, "--wait=false")
