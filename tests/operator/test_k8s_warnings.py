"""Settings accepted but not enforced yet, against the real apiserver: none are left, so a
route that uses every price has Warning=False and no NotEnforced Event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.k8s

NS = "op-warnings"
POLICY = {
    "apiVersion": "aigw.dev/v1alpha1",
    "kind": "AIPolicy",
    "metadata": {"name": "app", "namespace": NS},
    "spec": {"useCases": [{"name": "reply", "routes": ["cached"]}]},
}


def _route(priced: bool) -> dict[str, Any]:
    """A route with (or without) the prompt-cache prices, the last fields to be enforced."""
    pricing = {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"}
    if priced:
        pricing["cachedInputPerMillionTokensUSD"] = "0.10"
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "cached", "namespace": NS},
        "spec": {
            "backends": [
                {
                    "name": "small",
                    "provider": "openai-compatible",
                    "model": "m1",
                    "baseURL": "http://vllm:8000/v1",
                    "pricing": pricing,
                }
            ]
        },
    }


def _warning(cluster: Any, kind: str, name: str) -> dict[str, Any]:
    body = cluster.get("-n", NS, kind, name)
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Warning"), {})


def _events(cluster: Any) -> list[dict[str, Any]]:
    items = cluster.get("-n", NS, "events", "--field-selector", "involvedObject.name=cached")
    return [e for e in items["items"] if e["reason"] == "NotEnforced"]


def test_a_route_using_every_price_is_all_enforced_with_no_warning_event(
    aigw_cluster: Any,
) -> None:
    """The prompt-cache prices were the last settings without an effect: the route's Warning
    condition is False (AllEnforced) and no NotEnforced Event is emitted. The condition's
    True side is built from the same verdict (tests/operator/test_status.py)."""
    aigw_cluster.kubectl("create", "namespace", NS)
    aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(POLICY))
    aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(_route(True)))
    ready = wait_for(
        "Ready",
        lambda: next(
            (
                c
                for c in (
                    aigw_cluster.get("-n", NS, "modelroute", "cached").get("status") or {}
                ).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ),
            None,
        ),
    )
    assert ready["reason"] == "InBundle"
    cleared = _warning(aigw_cluster, "modelroute", "cached")
    assert (cleared["status"], cleared["reason"]) == ("False", "AllEnforced")
    assert "spec.retry" not in cleared["message"]  # retries are enforced
    assert _events(aigw_cluster) == []
    policy = _warning(aigw_cluster, "aipolicy", "app")
    assert policy["status"] == "False"
