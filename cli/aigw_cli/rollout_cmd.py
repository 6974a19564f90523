"""``aigw rollout history|undo -n NS``: the kept bundle revisions, and going back to one.

``history`` lists every kept revision with its content hash, when it was published, which
resources it added, removed or changed against the revision before it, and which one is in
force. ``undo [--to-revision N] [--reason TEXT]`` re-points the namespace's bundle at a kept
revision (the previous one by default) and records who (as the apiserver authenticated the
caller) and why on the pointer; the operator keeps it until a resource changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aigw_operator import OperatorError, names
from aigw_operator.bundles import configmap_revision
from aigw_operator.history import changes, kept_revisions, undo, whoami
from aigw_operator.kube import KubeClient

from .kube_access import add_kube_arguments, with_client

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["history", "undo"])
    add_kube_arguments(parser)
    parser.add_argument("--to-revision", type=int, help="undo: the kept revision to restore")
    parser.add_argument("--reason", default="", help="undo: why (recorded on the pointer)")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")


async def _history(client: KubeClient, namespace: str) -> list[dict[str, Any]]:
    pointer = await client.get(f"/api/v1/namespaces/{namespace}/configmaps/{names.POINTER_NAME}")
    in_force = configmap_revision(pointer) if pointer else None
    out, before = [], None
    for kept in await kept_revisions(client, namespace):
        out.append(
            {
                "revision": kept.revision,
                "contentHash": kept.content_hash,
                "published": kept.created,
                "inForce": kept.revision == in_force,
                "changes": changes(before, kept.bundle),
                "problem": kept.problem,
            }
        )
        before = kept.bundle
    return out


def _describe(change: dict[str, list[str]]) -> str:
    parts = [
        f"{sign}{name}"
        for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed"))
        for name in change[key]
    ]
    return ", ".join(parts) if parts else "(same resources)"


async def _undo(client: KubeClient, args: argparse.Namespace) -> dict[str, Any]:
    user = await whoami(client)
    return await undo(
        client, args.namespace, to_revision=args.to_revision, by=user, reason=args.reason
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "history":
            rows = asyncio.run(with_client(args, lambda c: _history(c, args.namespace)))
            if args.output == "json":
                print(json.dumps(rows, indent=2, sort_keys=True))
                return 0
            print("REVISION  IN FORCE  PUBLISHED             CONTENT HASH             CHANGES")
            for row in rows:
                print(
                    f"{row['revision']:<9} {'*' if row['inForce'] else '':<9} "
                    f"{row['published']:<21} {row['contentHash'][:24]:<24} "
                    f"{_describe(row['changes'])}"
                    + (f"  [{row['problem']}]" if row["problem"] else "")
                )
            return 0
        record = asyncio.run(with_client(args, lambda c: _undo(c, args)))
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        print(
            f"namespace {args.namespace}: revision {record['toRevision']} in force again "
            f"(replacing {record['replacedRevision']}), recorded as done by {record['by']}"
        )
    return 0
