"""A namespaced operator (``--namespace``) with the chart's namespaced RBAC (``watchNamespaces``):
Roles in the watched namespace only, a KopfPeering there, nothing cluster-wide."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import wait_for

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
RELEASE_NS = "aigw-ns-system"
WATCHED = "team-ns"
ROUTE = """
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: team-ns}
spec:
  backends:
    - name: small
      provider: openai-compatible
      model: m1
      baseURL: http://vllm:8000/v1
      pricing: {inputPerMillionTokensUSD: "0.02", outputPerMillionTokensUSD: "0.05"}
"""


def sa_kubeconfig(plane: Any, path: Path) -> Path:
    token = plane.kubectl(
        "-n", RELEASE_NS, "create", "token", "aigw-operator", "--duration=1h"
    ).stdout.strip()
    config = json.loads(plane.kubeconfig.read_text())
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    config["contexts"] = [{"name": "sa", "context": {"cluster": "aigw", "user": "sa"}}]
    config["current-context"] = "sa"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def test_a_namespaced_operator_needs_nothing_cluster_wide(aigw_cluster: Any) -> None:
    plane = aigw_cluster.plane
    for ns in (RELEASE_NS, WATCHED):
        aigw_cluster.kubectl("create", "namespace", ns)
    rendered = plane.run(
        *("helm", "template", "aigw", str(REPO / "charts/aigw"), "--namespace", RELEASE_NS),
        *("--set", f"watchNamespaces={{{WATCHED}}}", "--set", "webhook.patchCABundle=false"),
        *("--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"),
        *("--show-only", "templates/peering.yaml"),
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding", "KopfPeering"}
    aigw_cluster.kubectl("apply", "-f", "-", input=rendered)

    leader = aigw_cluster.operator
    kubeconfig = sa_kubeconfig(plane, leader.workdir / "namespaced.kubeconfig")
    namespaced = type(leader)(
        kubeconfig,
        leader.workdir,
        priority=5,
        webhook=False,
        extra_args=(f"--namespace={WATCHED}",),
    )
    leader.stop()  # the cluster-wide operator would compile team-ns too
    try:
        namespaced.start()
        aigw_cluster.kubectl("apply", "-f", "-", input=ROUTE)
        cm = wait_for(
            "the bundle",
            lambda: (
                plane.kubectl(
                    "-n", WATCHED, "get", "configmap", "aigw-bundle", "-o", "json", check=False
                ).stdout
            ),
        )
        assert json.loads(cm)["metadata"]["annotations"]["aigw.dev/revision"] == "1"
        wait_for(
            "Ready",
            lambda: (
                "True"
                in plane.kubectl(
                    "-n",
                    WATCHED,
                    "get",
                    "modelroute",
                    "chat",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                ).stdout
            ),
        )
    finally:
        namespaced.stop()
        leader.start()
    sa = f"system:serviceaccount:{RELEASE_NS}:aigw-operator"
    for args in (("list", "aipolicies.aigw.dev", "-n", "op-team-a"), ("list", "configmaps", "-A")):
        denied = plane.kubectl("auth", "can-i", *args, f"--as={sa}", check=False)
        assert denied.stdout.strip() == "no", args
