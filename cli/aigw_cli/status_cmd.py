"""``aigw status -n NS``: per pod, the bundle revision it serves, since when, and its drift.

Reads what the operator's leader recorded in the namespace's ``aigw-rollout`` ConfigMap (it
polls every injected sidecar) and the pointer ConfigMap (the revision in force, and a
rollback if one is in force). ``-o json|yaml`` prints the same as data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import yaml

from aigw_operator import OperatorError, names
from aigw_operator.bundles import configmap_revision
from aigw_operator.kube import KubeClient
from aigw_operator.reconcile import rollback_of

from .kube_access import add_kube_arguments, with_client

__all__ = ["add_arguments", "collect", "render_table", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_kube_arguments(parser)
    parser.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")


async def collect(client: KubeClient, namespace: str) -> dict[str, Any]:
    """The namespace's rollout as data."""
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    pointer = await client.get(f"{base}/{names.POINTER_NAME}")
    rollout = await client.get(f"{base}/{names.ROLLOUT_NAME}")
    annotations = (pointer or {}).get("metadata", {}).get("annotations") or {}
    data = (rollout or {}).get("data") or {}
    return {
        "namespace": namespace,
        "revision": configmap_revision(pointer) if pointer else None,
        "contentHash": annotations.get(names.ANNOTATION_CONTENT_HASH),
        "rollback": rollback_of(pointer),
        "summary": json.loads(data["summary.json"]) if "summary.json" in data else None,
        "pods": json.loads(data["pods.json"]) if "pods.json" in data else [],
    }


def _since(stamp: object) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_table(status: dict[str, Any]) -> str:
    """The human form."""
    lines = []
    head = f"namespace {status['namespace']}: "
    if status["revision"] is None:
        return head + "no bundle published yet\n"
    head += f"revision {status['revision']} in force ({status['contentHash']})"
    summary = status["summary"]
    head += f", {summary['synced']} pods serve it" if summary else ", no rollout status yet"
    lines.append(head)
    if status["rollback"]:
        rb = status["rollback"]
        lines.append(
            f"rolled back to {rb.get('toRevision')} by {rb.get('by')} at {rb.get('at')}:"
            f" {rb.get('reason') or '(no reason)'}; the next change of a resource publishes again"
        )
    if summary is None:
        lines.append("(the operator's leader writes it: is it running, allowed to list pods?)")
    rows = [("POD", "STATE", "REVISION", "SINCE", "DRIFT", "DETAIL")]
    for pod in status["pods"]:
        detail = pod.get("detail") or ""
        rows.append(
            (
                str(pod["name"]),
                str(pod["state"]),
                "-" if pod.get("revision") is None else str(pod["revision"]),
                _since(pod.get("loadedAt")),
                "-" if pod.get("drift") is None else str(pod["drift"]),
                detail if len(detail) <= 100 else detail[:97] + "...",
            )
        )
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        status = asyncio.run(with_client(args, lambda c: collect(c, args.namespace)))
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(status, indent=2, sort_keys=True))
    elif args.output == "yaml":
        print(yaml.safe_dump(status, sort_keys=True), end="")
    else:
        print(render_table(status), end="")
    return 0
