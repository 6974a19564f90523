"""Kubernetes documents of the workloads the e2e tests deploy: a labelled Deployment, and a
``v1 List`` to apply several resources with one ``kubectl apply``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["deployment_doc", "kube_list"]

Doc = dict[str, Any]
APP_IMAGE = "registry.invalid/app:1"
"""Never pulled: the stand-in kubelet runs only the injected sidecar."""


def deployment_doc(
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    labels: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Doc:
    """A Deployment of one ``app`` container whose pods carry ``app: <name>`` and ``labels``
    (``{"aigw.dev/inject": "true"}`` asks for the sidecar)."""
    container: Doc = {"name": "app", "image": APP_IMAGE}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **(labels or {})}},
                "spec": {"containers": [container]},
            },
        },
    }


def kube_list(*docs: Doc) -> str:
    """The documents as one ``v1 List`` in JSON, for ``kubectl apply -f -``."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)})
