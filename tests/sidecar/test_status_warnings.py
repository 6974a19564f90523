"""/aigw/status lists what the loaded bundle asks for that this sidecar does not enforce yet:
nothing, for a bundle that uses caching, redaction and residency (every field is enforced)."""

from __future__ import annotations

import logging

import pytest

from .conftest import Gateway, bundle_bytes


async def test_status_lists_no_unenforced_settings_for_a_bundle_using_every_feature(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    status = await gateway.status()
    assert status["bundle"]["warnings"] == []  # the standard bundle asks for nothing unenforced
    assert not any("spec.retry" in d for d in status["bundle"]["inactiveDefaults"])
    *resources, policy = gateway.docs
    semantic = {"enabled": True, "embeddingsRoute": "embed"}
    policy["spec"]["useCases"][0]["cache"] = {"exact": {"enabled": True}, "semantic": semantic}
    policy["spec"]["useCases"][0]["redaction"] = {"profile": "off", "mode": "hash"}  # no-op
    chat = next(d for d in resources if d["metadata"]["name"] == "chat")
    chat["spec"]["backends"][0]["region"] = "eu-west-1"  # enforced (residency): no warning
    caplog.set_level(logging.WARNING)
    gateway.write_bundle(bundle_bytes([*resources, policy], revision=2))
    status = await gateway.wait_revision(2)
    # Every field of this release is enforced (the warning rule itself is tested on a
    # what-if table in tests/contract/test_field_status.py).
    assert status["bundle"]["warnings"] == []
    assert status["bundle"]["inactiveDefaults"] == []
    assert not [r for r in caplog.records if "not enforced yet" in r.getMessage()]
