"""``/aigw/status`` (tenants, counter keys, usage, the bundle path) answers loopback peers
only, unless ``status_from_network`` is set; probes, metrics and the rollout report stay on
the pod network. Tests may bind loopback only, so the peer rule is tested on addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigw_sidecar.admin import is_loopback
from aigw_sidecar.settings import SidecarSettings


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.1.2.3", False),
        ("192.168.0.7", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
        ("0.0.0.0", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_only_loopback_peers_count_as_the_pod(peer: str | None, loopback: bool) -> None:
    assert is_loopback(peer) is loopback


def test_status_stays_in_the_pod_by_default() -> None:
    assert SidecarSettings(bundle_path=Path(__file__)).status_from_network is False
