"""Settings accepted but not enforced yet, against the real apiserver: the operator sets the
resource's Warning condition and emits one Warning Event; defaults alone are stated, not
warned about."""

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
    """A route with (or without) a setting not enforced yet: prompt-cache prices (every
    AIPolicy field is enforced)."""
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


def test_a_setting_not_enforced_yet_sets_the_warning_condition_and_an_event(
    aigw_cluster: Any,
) -> None:
    aigw_cluster.kubectl("create", "namespace", NS)
    aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(POLICY))
    aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(_route(True)))
    warning = wait_for(
        "Warning=True",
        lambda: (w := _warning(aigw_cluster, "modelroute", "cached")).get("status") == "True" and w,
    )
    assert warning["reason"] == "NotEnforced"
    assert 'spec.backends[0].pricing.cachedInputPerMillionTokensUSD="0.10"' in warning["message"]
    (event,) = wait_for("the Warning Event", lambda: _events(aigw_cluster))
    assert event["type"] == "Warning"
    assert 'spec.backends[0].pricing.cachedInputPerMillionTokensUSD="0.10"' in event["message"]
    ready = wait_for(
        "Ready",
        lambda: next(
            (
                c
                for c in aigw_cluster.get("-n", NS, "modelroute", "cached")["status"]["conditions"]
                if c["type"] == "Ready" and c["status"] == "True"
            ),
            None,
        ),
    )
    assert ready["reason"] == "InBundle"  # in force all the same, and honest about it

    # Turned off: nothing unenforced is asked for any more, and every default is enforced.
    aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(_route(False)))
    cleared = wait_for(
        "Warning=False",
        lambda: (
            (w := _warning(aigw_cluster, "modelroute", "cached")).get("status") == "False" and w
        ),
    )
    assert cleared["reason"] == "AllEnforced"
    assert len(_events(aigw_cluster)) == 1  # no Event for the way back
    policy = _warning(aigw_cluster, "aipolicy", "app")
    assert policy["status"] == "False"
    assert "spec.retry" not in cleared["message"]  # retries are enforced
