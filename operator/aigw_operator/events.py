"""Posting Kubernetes Events (core/v1) for the reconciler and the rollout poller."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import names
from .kube import KubeClient

__all__ = ["post_event"]


async def post_event(
    client: KubeClient,
    namespace: str,
    ref: Mapping[str, Any],
    *,
    kind: str,
    reason: str,
    message: str,
    instance: str,
) -> None:
    """One Event about ``ref`` (apiVersion, kind, name, and uid when known)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref['name']}.", "namespace": namespace},
        "involvedObject": {**{k: v for k, v in ref.items() if v}, "namespace": namespace},
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": names.MANAGED_BY},
        "reportingComponent": names.MANAGED_BY,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    await client.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event)
