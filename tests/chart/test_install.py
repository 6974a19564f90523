"""The chart against the real apiserver: install --wait, the webhook's selectors in admission,
least-privilege RBAC, upgrade keeping the CA, uninstall leaving only the CRDs.

KWOK marks the operator's Pods Running (nothing runs them), so the webhook never answers:
with failurePolicy Fail that is exactly what shows which pods the apiserver sends to it.
The tests of this module share one release and run in file order: install, use, upgrade,
uninstall. Pods are only ever created with ``--dry-run=server``, which still runs admission.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

# The control_plane fixture (aigw_e2e's pytest plugin): typed loosely, as tests/operator does.
ControlPlane = Any

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "aigw"
RELEASE = "aigw"
NAMESPACE = "aigw-system"
CRDS = ("aipolicies.aigw.dev", "modelroutes.aigw.dev")
KOPF_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:aigw-operator"
WEBHOOK_CONFIG = "aigw-sidecar-injector"
# What `helm uninstall` leaves: the CRDs, the aigw ones (kept by resource policy) and kopf's
# (from the chart's crds/ directory, which Helm never deletes), and the APIService the
# apiserver registers for each CRD group, which goes away with its CRDs.
CRD_LEFTOVERS = {
    *(f"customresourcedefinition.apiextensions.k8s.io/{name}" for name in CRDS + KOPF_CRDS),
    "apiservice.apiregistration.k8s.io/v1alpha1.aigw.dev",
    "apiservice.apiregistration.k8s.io/v1.kopf.dev",
}
TEST_NAMESPACES = ("inject-on", "inject-off", "inject-disabled", "team-a")


def cluster_scoped_objects(plane: ControlPlane) -> set[str]:
    """``kind.group/name`` of every listable cluster-scoped object."""
    kinds = plane.kubectl("api-resources", "--namespaced=false", "--verbs=list", "-o", "name")
    found: set[str] = set()
    for kind in kinds.stdout.split():
        found.update(plane.kubectl("get", kind, "-o", "name").stdout.split())
    return found


def webhook_ca(plane: ControlPlane) -> set[str]:
    config = plane.kubectl_json("get", "mutatingwebhookconfiguration", WEBHOOK_CONFIG)
    webhooks = config["webhooks"]
    assert isinstance(webhooks, list)
    return {w["clientConfig"]["caBundle"] for w in webhooks}


def secret_data(plane: ControlPlane) -> dict[str, str]:
    secret = plane.kubectl_json("-n", NAMESPACE, "get", "secret", "aigw-webhook-tls")
    data = secret["data"]
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class Release:
    before: set[str]
    """Cluster-scoped objects before the install."""
    install_output: str
    adopted_crds: bool
    """The CRDs existed before (another test applied crds/): the release adopted them."""


def _adopt_existing_crds(plane: ControlPlane) -> bool:
    existing = [c for c in CRDS if plane.kubectl("get", "crd", c, check=False).returncode == 0]
    for crd in existing:
        plane.kubectl(
            "annotate",
            "--overwrite",
            "crd",
            crd,
            f"meta.helm.sh/release-name={RELEASE}",
            f"meta.helm.sh/release-namespace={NAMESPACE}",
        )
        plane.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
    return bool(existing)


@pytest.fixture(scope="module")
def release(control_plane: ControlPlane) -> Iterator[Release]:
    plane = control_plane
    for namespace in (NAMESPACE, *TEST_NAMESPACES):
        plane.kubectl("create", "namespace", namespace, check=False)
    plane.kubectl("label", "--overwrite", "namespace", "inject-on", "aigw.dev/injection=enabled")
    plane.kubectl(
        "label", "--overwrite", "namespace", "inject-disabled", "aigw.dev/injection=disabled"
    )
    adopted = _adopt_existing_crds(plane)
    before = cluster_scoped_objects(plane)
    installed = plane.run(
        "helm",
        *("install", RELEASE, str(CHART), "--namespace", NAMESPACE),
        *("--wait", "--timeout", "240s"),
        # The webhook is unreachable here: fail fast instead of after the default 5 s.
        *("--set", "webhook.timeoutSeconds=2"),
    )
    try:
        yield Release(before, installed.stdout, adopted)
    finally:
        if plane.run("helm", "status", RELEASE, "-n", NAMESPACE, check=False).returncode == 0:
            plane.run("helm", "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        if not adopted:
            plane.kubectl("delete", "crd", *CRDS, "--ignore-not-found", "--wait")
        # Leave the shared control plane as found: later tests create these namespaces.
        plane.kubectl(
            *("delete", "namespace", NAMESPACE, *TEST_NAMESPACES),
            *("--ignore-not-found", "--wait", "--timeout=180s"),
        )


def test_install_waits_for_running_operator_pods(
    control_plane: ControlPlane, release: Release
) -> None:
    deployment = control_plane.kubectl_json("-n", NAMESPACE, "get", "deployment", "aigw")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "aigw-operator"
    status = deployment["status"]
    assert isinstance(status, dict)
    assert status["availableReplicas"] == 2
    pods = control_plane.kubectl_json(
        "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=operator"
    )["items"]
    assert isinstance(pods, list)
    assert [p["status"]["phase"] for p in pods] == ["Running", "Running"]
    # NOTES.txt: the next two steps.
    assert "Next steps:" in release.install_output
    assert "kubectl apply -f examples/quickstart/" in release.install_output
    assert "aigw.dev/inject" in release.install_output


def test_the_apiserver_serves_the_crds(control_plane: ControlPlane, release: Release) -> None:
    for crd in CRDS:
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}")
    control_plane.kubectl("apply", "-f", str(REPO / "examples" / "quickstart"))
    policies = control_plane.kubectl_json("-n", "team-a", "get", "aipolicies")["items"]
    assert isinstance(policies, list)
    assert sorted(p["metadata"]["name"] for p in policies) == [
        "report-summarizer",
        "support-assistant",
    ]
    # The CRD's schema is in force: CEL rules and enums reject a bad route.
    bad = {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "bad", "namespace": "team-a"},
        "spec": {
            "intent": {"family": "general-chat"},
            "backends": [
                {
                    "name": "a",
                    "provider": "openai",
                    "model": "m",
                    "baseURL": "https://models.invalid/v1",
                    "weight": 0,
                    "pricing": {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"},
                },
            ],
        },
    }
    rejected = control_plane.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert rejected.returncode != 0
    assert "at least one backend must have weight > 0" in rejected.stderr


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("watch", "aipolicies.aigw.dev", "team-a", True),
        ("list", "modelroutes.aigw.dev", "", True),
        ("patch", "aipolicies.aigw.dev --subresource=status", "team-a", True),
        ("update", "aipolicies.aigw.dev", "team-a", False),
        ("create", "configmaps", "team-a", True),
        ("delete", "configmaps", "team-a", True),
        ("create", "events", "team-a", True),
        ("patch", "clusterkopfpeerings.kopf.dev/aigw-operator", "", True),
        ("patch", "clusterkopfpeerings.kopf.dev/someone-else", "", False),
        ("delete", "aipolicies.aigw.dev", "team-a", False),
        ("create", "aipolicies.aigw.dev", "team-a", False),
        ("get", "secrets", "team-a", False),
        ("get", "secrets", NAMESPACE, False),
        ("create", "pods", "team-a", False),
        ("list", "namespaces", "", False),
        ("patch", f"mutatingwebhookconfigurations/{WEBHOOK_CONFIG}", "", False),
        ("create", "clusterroles", "", False),
        ("update", "customresourcedefinitions", "", False),
    ],
)
def test_rbac_is_least_privilege(
    control_plane: ControlPlane,
    release: Release,
    verb: str,
    resource: str,
    namespace: str,
    allowed: bool,
) -> None:
    args = ["auth", "can-i", verb, *resource.split(), f"--as={SERVICE_ACCOUNT}"]
    args += ["-n", namespace] if namespace else []
    answer = control_plane.kubectl(*args, check=False).stdout.strip()
    assert answer == ("yes" if allowed else "no")


def _dry_run_pod(
    plane: ControlPlane, namespace: str, labels: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }
    result: subprocess.CompletedProcess[str] = plane.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )
    return result


@pytest.mark.parametrize(
    ("namespace", "labels", "webhook"),
    [
        ("inject-on", {}, "namespace-label.inject.aigw.dev"),
        ("inject-on", {"aigw.dev/inject": "true"}, "pod-label.inject.aigw.dev"),
        ("inject-on", {"aigw.dev/inject": "false"}, None),
        ("inject-off", {"aigw.dev/inject": "true"}, "pod-label.inject.aigw.dev"),
        ("inject-off", {}, None),
        ("inject-disabled", {"aigw.dev/inject": "true"}, None),
        ("kube-system", {"aigw.dev/inject": "true"}, None),
        (NAMESPACE, {"aigw.dev/inject": "true"}, None),
    ],
)
def test_the_apiserver_calls_the_webhook_for_selected_pods_only(
    control_plane: ControlPlane,
    release: Release,
    namespace: str,
    labels: dict[str, str],
    webhook: str | None,
) -> None:
    result = _dry_run_pod(control_plane, namespace, labels)
    if webhook is None:
        assert result.returncode == 0, result.stderr
    else:
        # failurePolicy Fail and no replica really runs: the pod is refused, naming the hook.
        assert result.returncode != 0
        assert f'failed calling webhook "{webhook}"' in result.stderr


# Kinds whose CRDs this control plane does not have (cert-manager, prometheus-operator).
FOREIGN_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")


@pytest.mark.parametrize(
    ("values", "present", "absent"),
    [
        (
            ["--set", "webhook.certificate.certManager.enabled=true"],
            {"MutatingWebhookConfiguration", "ClusterKopfPeering"},
            {"Secret"},  # cert-manager writes it
        ),
        (
            [
                *("--set", "networkPolicy.enabled=true"),
                *("--set", "metrics.serviceMonitor.enabled=true"),
                *("--set", "redis.enabled=true", "--set", "redis.url=redis://r:6379/0"),
                *("--set", "opentelemetry.enabled=true"),
                *("--set", "opentelemetry.endpoint=http://c:4317"),
                *("--set", "watchNamespaces={team-a}", "--set", "webhook.patchCABundle=true"),
                *("--set", "sidecar.native=never", "--set", "operator.replicas=1"),
            ],
            {"NetworkPolicy", "Role", "RoleBinding", "KopfPeering", "Secret"},
            {"ClusterKopfPeering", "PodDisruptionBudget"},
        ),
    ],
    ids=["cert-manager", "everything-else"],
)
def test_the_apiserver_accepts_the_other_value_sets(
    control_plane: ControlPlane,
    release: Release,
    values: list[str],
    present: set[str],
    absent: set[str],
) -> None:
    """Server-side dry run of what other values render (NetworkPolicy, namespaced RBAC, ...)."""
    rendered = control_plane.run(
        "helm", "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    local = [d for d in docs if not d["apiVersion"].startswith(FOREIGN_GROUPS)]
    assert len(local) < len(docs), "cert-manager or prometheus-operator objects are rendered"
    kinds = {d["kind"] for d in local}
    assert present <= kinds
    assert not absent & kinds
    result = control_plane.kubectl(
        *("apply", "--dry-run=server", "-f", "-"),
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": local}),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_upgrade_keeps_the_webhook_ca(control_plane: ControlPlane, release: Release) -> None:
    ca_before = webhook_ca(control_plane)
    secret_before = secret_data(control_plane)
    assert ca_before == {secret_before["ca.crt"]}
    control_plane.run(
        "helm",
        *("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values"),
        *("--set", "operator.replicas=3", "--wait", "--timeout", "240s"),
    )
    deployment = control_plane.kubectl_json("-n", NAMESPACE, "get", "deployment", "aigw")
    spec = deployment["spec"]
    assert isinstance(spec, dict)
    assert spec["replicas"] == 3
    assert webhook_ca(control_plane) == ca_before
    assert secret_data(control_plane) == secret_before
    history = control_plane.run("helm", "history", RELEASE, "-n", NAMESPACE).stdout
    assert "upgrade complete" in history.lower()


def test_uninstall_leaves_only_the_crds(control_plane: ControlPlane, release: Release) -> None:
    control_plane.run("helm", "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    left = cluster_scoped_objects(control_plane) - release.before
    assert left == CRD_LEFTOVERS - release.before
    for crd in CRDS:
        assert control_plane.kubectl("get", "crd", crd, check=False).returncode == 0
    # ... and with them the resources: uninstalling aigw does not delete anyone's policies.
    policies = control_plane.kubectl_json("-n", "team-a", "get", "aipolicies")["items"]
    assert isinstance(policies, list)
    assert len(policies) == 2
    namespaced = control_plane.kubectl(
        *("-n", NAMESPACE, "get", "all,secrets,serviceaccounts,roles,rolebindings,pdb"),
        *("-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name"),
    )
    assert namespaced.stdout.strip() == ""
