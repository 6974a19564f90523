"""The control plane runs workloads end to end: Deployment -> ReplicaSet -> Pods on KWOK nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aigw_e2e import ControlPlane

pytestmark = pytest.mark.k8s


def _items(plane: ControlPlane, *args: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(plane.kubectl("get", *args, "-o", "json").stdout)[
        "items"
    ]
    return items


def test_fake_nodes_are_ready(control_plane: ControlPlane) -> None:
    nodes = _items(control_plane, "nodes")
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(control_plane.node_names)
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == [ready[0]]
        assert ready[0]["status"] == "True"
        assert not node["spec"].get("taints")


def test_deployment_gets_replicaset_and_running_pods_on_kwok_nodes(
    control_plane: ControlPlane,
) -> None:
    ns = "workloads"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl(
        "-n", ns, "create", "deployment", "web", "--image=registry.invalid/web:1", "--replicas=3"
    )
    # Waits on the controllers and KWOK; the timeout only bounds a hang, it asserts no speed.
    control_plane.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=300s")

    replicasets = _items(control_plane, "-n", ns, "replicasets")
    assert len(replicasets) == 1
    owner = replicasets[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Deployment", "web")

    pods = _items(control_plane, "-n", ns, "pods", "-l", "app=web")
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["name"] == replicasets[0]["metadata"]["name"]
        assert pod["spec"]["nodeName"] in control_plane.node_names
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"


def test_default_service_account_and_root_ca_exist(control_plane: ControlPlane) -> None:
    """The controller manager runs its service-account and root-CA publishers."""
    control_plane.kubectl("get", "serviceaccount", "default", "-n", "default")
    ca = json.loads(
        control_plane.kubectl("get", "configmap", "kube-root-ca.crt", "-o", "json").stdout
    )
    assert ca["data"]["ca.crt"] == control_plane.ca_cert.read_text()


def test_admin_is_authorized_by_rbac_and_anonymous_is_not(control_plane: ControlPlane) -> None:
    assert control_plane.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    denied = control_plane.kubectl("auth", "can-i", "list", "secrets", "--as=someone", check=False)
    assert denied.stdout.strip() == "no"
