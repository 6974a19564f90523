"""How ``aigw status`` and ``aigw rollout`` reach the cluster: the caller's kubeconfig.

The environment (``KUBECONFIG``, ``HOME``) is read here, for these commands only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from aigw_operator.kube import KubeClient, load_credentials
from aigw_operator.settings import KubeSettings

__all__ = ["add_kube_arguments", "with_client"]

T = TypeVar("T")


def add_kube_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", required=True, help="the namespace")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context (default: its current one)")


def _kubeconfig(args: argparse.Namespace) -> Path:
    if args.kubeconfig is not None:
        return Path(args.kubeconfig)
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"


async def with_client(args: argparse.Namespace, action: Callable[[KubeClient], Awaitable[T]]) -> T:
    """Run ``action`` with a client logged in as the kubeconfig's user."""
    with tempfile.TemporaryDirectory(prefix="aigw-cli-") as scratch:
        settings = KubeSettings(kubeconfig=_kubeconfig(args), context=args.context)
        async with KubeClient(load_credentials(settings, Path(scratch))) as client:
            return await action(client)
