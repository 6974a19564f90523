"""The stand-in kubelet's volume layout (``aigw_e2e.volumes``): what a pod waits for.

A real kubelet fails the mount (``FailedMount``) of a Secret or ConfigMap volume that is
missing, or whose ``items`` name a key it does not have, unless the source is optional; the
pod then waits. The e2e tests rely on the harness doing the same (a redaction key Secret
without its entry must keep the sidecar from starting)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from aigw_e2e.volumes import MissingSource, volume_files

SECRET = {"data": {"key": base64.b64encode(b"value").decode()}}


def lookup(kind: str, name: str) -> Mapping[str, Any] | None:
    return SECRET if (kind, name) == ("secret", "present") else None


def secret_volume(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": "v", "secret": {"secretName": name, **fields}}


def test_items_select_and_rename_entries() -> None:
    volume = secret_volume("present", items=[{"key": "key", "path": "renamed"}])
    assert volume_files(volume, {}, lookup) == {"renamed": b"value"}


@pytest.mark.parametrize(
    "volume",
    [
        secret_volume("absent"),
        secret_volume("present", items=[{"key": "other", "path": "key"}]),
    ],
    ids=["missing-secret", "missing-entry"],
)
def test_a_required_source_or_entry_that_is_missing_makes_the_pod_wait(
    volume: dict[str, Any],
) -> None:
    with pytest.raises(MissingSource):
        volume_files(volume, {}, lookup)


def test_optional_sources_lay_out_what_exists() -> None:
    assert volume_files(secret_volume("absent", optional=True), {}, lookup) == {}
    volume = secret_volume("present", optional=True, items=[{"key": "other", "path": "x"}])
    assert volume_files(volume, {}, lookup) == {}
