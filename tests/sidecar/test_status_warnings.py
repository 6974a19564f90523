"""/aigw/status lists what the loaded bundle asks for that this sidecar does not enforce yet."""

from __future__ import annotations

import logging

import pytest

from .conftest import Gateway, bundle_bytes


async def test_status_lists_settings_not_enforced_yet(
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
    chat["spec"]["backends"][0]["pricing"]["cachedInputPerMillionTokensUSD"] = "0.10"
    caplog.set_level(logging.WARNING)
    gateway.write_bundle(bundle_bytes([*resources, policy], revision=2))
    status = await gateway.wait_revision(2)
    assert status["bundle"]["warnings"] == [
        'ModelRoute/chat: spec.backends[0].pricing.cachedInputPerMillionTokensUSD: "0.10" is'
        " not enforced yet: accepted, but it has no effect (see docs/policy-reference.md)",
    ]
    assert not any("redaction" in d for d in status["bundle"]["inactiveDefaults"])
    (logged,) = [r for r in caplog.records if "not enforced yet" in r.getMessage()]
    assert "1 setting(s)" in logged.getMessage()
