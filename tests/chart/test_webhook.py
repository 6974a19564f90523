"""The chart's MutatingWebhookConfiguration is the operator's: the same entries, selectors and
paths as ``aigw_operator.webhookconfig.webhook_configuration`` builds, pointed at the chart's
Service, with the values that are meant to vary (failurePolicy, timeout, exclusions)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import yaml

from aigw_operator.webhookconfig import webhook_configuration

Render = Callable[..., str]
Doc = dict[str, Any]

NAMESPACE = "aigw-system"
SERVICE = "aigw-webhook"


def documents(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def only(docs: Sequence[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} in the rendering"
    return found[0]


def test_the_chart_renders_the_operators_webhook_configuration(render: Render) -> None:
    docs = documents(render())
    rendered = only(docs, "MutatingWebhookConfiguration")
    ca = base64.b64decode(only(docs, "Secret")["data"]["ca.crt"])
    expected = webhook_configuration(
        name="aigw-sidecar-injector",
        ca_bundle=ca,
        service=(NAMESPACE, SERVICE, 443),
        excluded_namespaces=("kube-system", NAMESPACE),
        failure_policy="Fail",
    )
    assert rendered["metadata"]["name"] == expected["metadata"]["name"]
    assert rendered["webhooks"] == expected["webhooks"]


def test_the_service_serves_both_paths_from_the_webhook_port(render: Render) -> None:
    docs = documents(render({"webhook": {"port": 10443}}))
    hooks = only(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert [h["clientConfig"]["service"]["path"] for h in hooks] == [
        "/inject",
        "/inject/namespace",
    ]
    service = only(docs, "Service")
    assert {h["clientConfig"]["service"]["name"] for h in hooks} == {service["metadata"]["name"]}
    https = next(p for p in service["spec"]["ports"] if p["port"] == 443)
    pod = only(docs, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert ports[https["targetPort"]] == 10443


def test_more_namespaces_can_be_excluded(render: Render) -> None:
    values = {"webhook": {"excludeNamespaces": ["monitoring", "kube-system"]}}
    hooks = only(documents(render(values)), "MutatingWebhookConfiguration")["webhooks"]
    for hook in hooks:
        expressions = hook["namespaceSelector"]["matchExpressions"]
        assert {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["aigw-system", "kube-system", "monitoring"],
        } in expressions


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_failure_policy_and_timeout_are_values(render: Render, policy: str) -> None:
    values = {"webhook": {"failurePolicy": policy, "timeoutSeconds": 9}}
    hooks = only(documents(render(values)), "MutatingWebhookConfiguration")["webhooks"]
    assert [h["failurePolicy"] for h in hooks] == [policy, policy]
    assert [h["timeoutSeconds"] for h in hooks] == [9, 9]


def test_the_configuration_name_is_a_value(render: Render) -> None:
    config = only(
        documents(render({"webhook": {"configurationName": "injector-b"}})),
        "MutatingWebhookConfiguration",
    )
    assert config["metadata"]["name"] == "injector-b"
