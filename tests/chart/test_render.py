"""What ``helm template`` renders, checked as objects: CRDs, certificates, webhook selectors,
the Deployment's hardening and the operator flags each value turns into."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

Render = Callable[..., str]
Doc = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "aigw"
NAMESPACE = "aigw-system"
SERVICE = "aigw-webhook"
CLUSTER_SCOPED = {
    "ClusterKopfPeering",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
}


def documents(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def only(docs: Sequence[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in the rendering"
    return found[0]


def kinds(docs: Sequence[Doc]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def operator_args(docs: Sequence[Doc]) -> list[str]:
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args: list[str] = container["args"]
    return args


# -- CRDs ------------------------------------------------------------------------------------


def test_chart_crd_files_are_byte_identical_to_crds() -> None:
    committed = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    in_chart = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert len(committed) == 2
    assert in_chart == committed, (
        "charts/aigw/files/crds is stale: run `aigw crds -o charts/aigw/files/crds`"
    )


def test_rendered_crds_are_crds_plus_labels_and_keep_policy(render: Render) -> None:
    rendered = {
        d["metadata"]["name"]: d
        for d in documents(render())
        if d["kind"] == "CustomResourceDefinition"
    }
    committed = {
        d["metadata"]["name"]: d
        for p in sorted((REPO / "crds").glob("*.yaml"))
        for d in documents(p.read_text())
    }
    assert sorted(rendered) == ["aipolicies.aigw.dev", "modelroutes.aigw.dev"]
    for name, crd in rendered.items():
        meta = crd["metadata"]
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["app.kubernetes.io/instance"] == "aigw"
        # Apart from the labels and the annotation, exactly the generated object.
        assert {**crd, "metadata": {"name": meta["name"]}} == committed[name]


def test_crds_can_be_left_out_or_not_kept(render: Render) -> None:
    assert "CustomResourceDefinition" not in kinds(documents(render({"crds": {"install": False}})))
    unkept = [
        d
        for d in documents(render({"crds": {"keep": False}}))
        if d["kind"] == "CustomResourceDefinition"
    ]
    assert len(unkept) == 2
    assert all("annotations" not in d["metadata"] for d in unkept)


# -- what is rendered --------------------------------------------------------------------------


def test_defaults_render_the_expected_objects(render: Render) -> None:
    docs = documents(render())
    assert kinds(docs) == sorted(
        [
            "ClusterKopfPeering",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "MutatingWebhookConfiguration",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
    )
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], doc["kind"]
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    # The Deployment runs as the ServiceAccount the RBAC is bound to.
    account = only(docs, "ServiceAccount")["metadata"]["name"]
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    binding = only(docs, "ClusterRoleBinding", "aigw-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]


def test_watching_namespaces_needs_nothing_cluster_wide_but_the_webhook(render: Render) -> None:
    docs = documents(render({"watchNamespaces": ["team-a", "team-b"]}))
    cluster_wide = sorted(d["kind"] for d in docs if d["kind"] in CLUSTER_SCOPED)
    assert cluster_wide == [
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
    ]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    peerings = [d for d in docs if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]


def test_optional_objects(render: Render) -> None:
    docs = documents(
        render(
            {
                "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
                "networkPolicy": {
                    "enabled": True,
                    "metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}],
                },
                "operator": {"replicas": 1},
            }
        )
    )
    assert "PodDisruptionBudget" not in kinds(docs)  # one replica: a PDB would block drains
    monitor = only(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    service = only(docs, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    policy = only(docs, "NetworkPolicy")
    webhook_rule, health_rule = policy["spec"]["ingress"]
    assert "from" not in webhook_rule
    assert webhook_rule["ports"] == [{"port": "webhook", "protocol": "TCP"}]
    assert health_rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]


# -- certificates ------------------------------------------------------------------------------


def _pem(data: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(data))


def test_helm_generated_ca_signs_the_serving_certificate(render: Render) -> None:
    docs = documents(render())
    secret = only(docs, "Secret", "aigw-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    ca = _pem(secret["data"]["ca.crt"])
    cert = _pem(secret["data"]["tls.crt"])
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        SERVICE,
        f"{SERVICE}.{NAMESPACE}",
        f"{SERVICE}.{NAMESPACE}.svc",
        f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
    ]
    assert cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
        days=3000
    )
    # The key in the Secret is the certificate's.
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), password=None)
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    # Both webhook entries trust exactly that CA.
    config = only(docs, "MutatingWebhookConfiguration")
    bundles = {w["clientConfig"]["caBundle"] for w in config["webhooks"]}
    assert bundles == {secret["data"]["ca.crt"]}


def test_deployment_mounts_the_secret_the_certificate_is_written_to(render: Render) -> None:
    for values in ({}, {"webhook": {"certificate": {"certManager": {"enabled": True}}}}):
        docs = documents(render(values))
        pod = only(docs, "Deployment")["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-tls")
        assert f"--webhook-cert-dir={mount['mountPath']}" in operator_args(docs)
        if values:
            certificate = only(docs, "Certificate", "aigw-webhook-tls")
            assert certificate["spec"]["secretName"] == volume["secret"]["secretName"]
        else:
            assert only(docs, "Secret")["metadata"]["name"] == volume["secret"]["secretName"]


def test_cert_manager_issues_and_injects_instead_of_helm(render: Render) -> None:
    docs = documents(render({"webhook": {"certificate": {"certManager": {"enabled": True}}}}))
    assert "Secret" not in kinds(docs)
    config = only(docs, "MutatingWebhookConfiguration")
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    certificate = only(docs, "Certificate", "aigw-webhook-tls")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}"
    )
    assert f"{SERVICE}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    # The chart bootstraps its own CA: self-signed issuer -> CA certificate -> CA issuer.
    ca_issuer = only(docs, "Issuer", certificate["spec"]["issuerRef"]["name"])
    ca_certificate = only(docs, "Certificate", "aigw-ca")
    assert ca_certificate["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_certificate["spec"]["secretName"]
    selfsigned = only(docs, "Issuer", ca_certificate["spec"]["issuerRef"]["name"])
    assert selfsigned["spec"] == {"selfSigned": {}}


def test_cert_manager_with_an_existing_issuer(render: Render) -> None:
    ref = {"kind": "ClusterIssuer", "name": "corp-ca"}
    docs = documents(
        render({"webhook": {"certificate": {"certManager": {"enabled": True, "issuerRef": ref}}}})
    )
    assert "Issuer" not in kinds(docs)
    assert only(docs, "Certificate")["spec"]["issuerRef"] == ref


# -- the operator Deployment -------------------------------------------------------------------


def test_operator_pods_are_hardened(render: Render) -> None:
    pod = only(documents(render()), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"livenessProbe", "readinessProbe", "startupProbe", "resources"} <= container.keys()
    assert container["resources"]["limits"]["memory"] == "512Mi"


def test_topology_spread_selects_the_operator_pods(render: Render) -> None:
    deployment = only(documents(render({"operator": {"replicas": 3}})), "Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    for constraint in constraints:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
        assert (
            constraint["labelSelector"]["matchLabels"]
            == deployment["spec"]["selector"]["matchLabels"]
        )


def test_the_operator_is_never_injected(render: Render) -> None:
    labels = only(documents(render()), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["aigw.dev/inject"] == "false"


# -- lint --------------------------------------------------------------------------------------


LINT_VALUES: list[dict[str, Any]] = [
    {},
    {"webhook": {"certificate": {"certManager": {"enabled": True}}}},
    {
        "redis": {"enabled": True, "url": "redis://r:6379/0"},
        "opentelemetry": {"enabled": True, "endpoint": "http://c:4317"},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True},
        "crds": {"install": False},
        "watchNamespaces": ["team-a", "team-b"],
        "sidecar": {"redactionKey": {"secretName": "aigw-redaction-key", "generate": True}},
    },
]


@pytest.mark.parametrize("values", LINT_VALUES, ids=["defaults", "cert-manager", "everything"])
def test_helm_lint_is_clean(helm: Callable[..., Any], values: dict[str, Any]) -> None:
    result = helm("lint", "--strict", str(CHART), values=values, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output
    assert "[ERROR]" not in output


# -- the redaction key -----------------------------------------------------------------------

GENERATED_KEY = {"secretName": "aigw-redaction-key", "generate": True}


def test_a_generated_redaction_key_is_one_key_in_every_watched_namespace(render: Render) -> None:
    values = {"watchNamespaces": ["team-a", "team-b"], "sidecar": {"redactionKey": GENERATED_KEY}}
    docs = documents(render(values))
    secrets = [
        d
        for d in docs
        if d["kind"] == "Secret" and d["metadata"]["name"] == GENERATED_KEY["secretName"]
    ]
    assert sorted(s["metadata"]["namespace"] for s in secrets) == ["team-a", "team-b"]
    keys = {base64.b64decode(s["data"]["key"]) for s in secrets}
    assert len(keys) == 1  # tokens join across the namespaces
    (key,) = keys
    assert len(key) == 64
    assert key.isalnum()
    for secret in secrets:
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # A fresh render (no cluster to look the old one up in) draws a fresh key.
    again = documents(render(values))
    assert {
        base64.b64decode(d["data"]["key"])
        for d in again
        if d["kind"] == "Secret" and d["metadata"]["name"] == GENERATED_KEY["secretName"]
    } != keys
    assert "--sidecar-redaction-key-secret=aigw-redaction-key" in operator_args(docs)


def test_no_redaction_key_secret_is_generated_by_default(render: Render) -> None:
    values = {"watchNamespaces": ["team-a"], "sidecar": {"redactionKey": {"secretName": "k"}}}
    docs = documents(render(values))
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "k"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sidecar": {"redactionKey": GENERATED_KEY}}, "needs watchNamespaces"),
        (
            {"watchNamespaces": ["a"], "sidecar": {"redactionKey": {"generate": True}}},
            "needs sidecar.redactionKey.secretName",
        ),
    ],
)
def test_a_redaction_key_that_cannot_be_generated_fails_the_render(
    helm: Callable[..., Any], values: dict[str, Any], message: str
) -> None:
    result = helm("template", "aigw", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr
