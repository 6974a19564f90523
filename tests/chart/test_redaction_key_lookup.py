"""The chart's generated redaction key against the real apiserver: an upgrade keeps the key.

``sidecar.redactionKey.generate`` reads the Secret back with ``lookup``; ``helm template
--dry-run=server`` runs the lookups an install or upgrade would, without installing a second
release into the shared control plane. With the Secret in one watched namespace, every
watched namespace is rendered with that key (tokens keep joining); with none, a new key.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ControlPlane = Any

pytestmark = pytest.mark.k8s

CHART = Path(__file__).resolve().parents[2] / "charts" / "aigw"
NAMESPACES = ("rk-team-a", "rk-team-b")
SECRET = "aigw-redaction-key"


def _rendered_keys(plane: ControlPlane) -> dict[str, bytes]:
    result = plane.run(
        "helm",
        *("template", "aigw", str(CHART), "--namespace", "aigw-system", "--dry-run=server"),
        *("--set", f"watchNamespaces={{{','.join(NAMESPACES)}}}"),
        *("--set", f"sidecar.redactionKey.secretName={SECRET}"),
        *("--set", "sidecar.redactionKey.generate=true"),
    )
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    secrets = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == SECRET]
    return {s["metadata"]["namespace"]: base64.b64decode(s["data"]["key"]) for s in secrets}


def test_an_existing_key_is_reused_for_every_watched_namespace(
    control_plane: ControlPlane,
) -> None:
    plane = control_plane
    for namespace in NAMESPACES:
        plane.kubectl("create", "namespace", namespace, check=False)
    try:
        fresh = _rendered_keys(plane)
        assert set(fresh) == set(NAMESPACES)
        assert len(set(fresh.values())) == 1
        kept = b"an-existing-key-of-the-first-install-0123456789"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACES[1]},
            "data": {"key": base64.b64encode(kept).decode()},
        }
        plane.kubectl("apply", "-f", "-", input=json.dumps(secret))
        # Only the second namespace has it: both are rendered with its key.
        assert _rendered_keys(plane) == dict.fromkeys(NAMESPACES, kept)
    finally:
        plane.kubectl("delete", "namespace", *NAMESPACES, "--ignore-not-found", "--wait=false")
