"""The MutatingWebhookConfiguration for sidecar injection, as data.

The chart renders the same shape from its templates; tests and ``aigw operator`` (outside a
cluster) build it here. Two webhook entries, because one entry cannot express "the pod is
labelled OR its namespace is": the apiserver evaluates the selectors, the server learns which
entry called it from the path, ``/inject`` or ``/inject/namespace`` (the apiserver refuses a
query string in a webhook's path or URL). Both entries exclude kube-system and
the operator's own namespace, so a broken webhook can never block the pods that would fix it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

from . import names

__all__ = ["webhook_configuration"]

FailurePolicy = Literal["Fail", "Ignore"]


def _entry(
    name: str,
    client_config: dict[str, Any],
    namespace_selector: dict[str, Any],
    object_selector: dict[str, Any],
    failure_policy: FailurePolicy,
) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "timeoutSeconds": 5,
        "clientConfig": client_config,
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ],
        "namespaceSelector": namespace_selector,
        "objectSelector": object_selector,
    }


def webhook_configuration(
    *,
    name: str,
    ca_bundle: bytes,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    excluded_namespaces: Sequence[str] = ("kube-system",),
    failure_policy: FailurePolicy = "Fail",
) -> dict[str, Any]:
    """The configuration; the server is ``url`` (``https://host:port``) or a Service
    ``(namespace, name, port)``."""

    def client_config(suffix: str) -> dict[str, Any]:
        config: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode()}
        if service is not None:
            namespace, svc, port = service
            config["service"] = {
                "namespace": namespace,
                "name": svc,
                "port": port,
                "path": f"/inject{suffix}",
            }
        else:
            config["url"] = f"{(url or '').rstrip('/')}/inject{suffix}"
        return config

    excluded = {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": sorted(set(excluded_namespaces)),
    }
    not_disabled = {
        "key": names.LABEL_NAMESPACE_INJECTION,
        "operator": "NotIn",
        "values": ["disabled"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY}},
        "webhooks": [
            _entry(
                "pod-label.inject.aigw.dev",
                client_config(""),
                {"matchExpressions": [excluded, not_disabled]},
                {"matchLabels": {names.LABEL_INJECT: "true"}},
                failure_policy,
            ),
            _entry(
                "namespace-label.inject.aigw.dev",
                client_config("/namespace"),
                {
                    "matchLabels": {names.LABEL_NAMESPACE_INJECTION: "enabled"},
                    "matchExpressions": [excluded],
                },
                {
                    "matchExpressions": [
                        {
                            "key": names.LABEL_INJECT,
                            "operator": "NotIn",
                            "values": ["true", "false"],
                        }
                    ]
                },
                failure_policy,
            ),
        ],
    }
