"""Identify, authorize, constrain: policy resolution, claims, allowlists, per-request limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from multidict import CIMultiDict

from aigw_contract import Bundle
from aigw_contract.policy import LabelSelector
from aigw_sidecar.claims import parse_claims
from aigw_sidecar.errors import InvalidRequest
from aigw_sidecar.governance import (
    Denied,
    DenyKind,
    Governor,
    MemoryStore,
    PodIdentity,
    Verdict,
)
from aigw_sidecar.governance.identity import selector_matches

POD = PodIdentity("team-a", "support-sa", {"app": "support", "tier": "web"})
USE_CASE: dict[str, Any] = {
    "name": "reply",
    "routes": ["chat"],
    "tools": ["lookup_order"],
    "dataClassifications": ["public", "internal"],
    "limits": {"maxTokens": 1000, "maxCostUSD": "0.01", "maxLatencyMs": 20000},
}
SPEC: dict[str, Any] = {
    "selector": {"matchLabels": {"app": "support"}},
    "tenant": "acme",
    "additionalTenants": ["acme-eu"],
    "useCases": [USE_CASE, {"name": "batch", "routes": ["cheap"]}],
}
BODY: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


def admit(bundle: Bundle, body: dict[str, Any] | None = None, **headers: str) -> Any:
    governor = Governor(POD, MemoryStore())
    body = body or BODY
    named = CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()})
    return governor.admit(
        governor.view(bundle),
        request_id="r1",
        body=body,
        route=body["model"],
        claims=parse_claims(named, body),
    )


def with_mode(mode: str) -> dict[str, Any]:
    return {**SPEC, "mode": mode}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),
        ({"matchLabels": {"app": "support"}}, True),
        ({"matchLabels": {"app": "other"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
    ],
)
def test_label_selector_semantics(selector: dict[str, Any], matches: bool) -> None:
    assert selector_matches(LabelSelector.model_validate(selector), POD.labels) is matches


def test_most_specific_policy_wins(bundle_of: Callable[..., Bundle]) -> None:
    broad = {"useCases": [{"name": "any", "routes": ["chat"]}]}
    specific = {**SPEC, "selector": {"matchLabels": {"app": "support", "tier": "web"}}}
    bundle = bundle_of(broad, SPEC, specific)
    admission = admit(bundle)
    assert admission.identity.policy.name == "p2"
    assert (admission.identity.tenant, admission.identity.app) == ("acme", "support")
    assert admission.identity.use_case.name == "reply"  # the first use case is the default


def test_no_matching_policy_is_permission_denied(bundle_of: Callable[..., Bundle]) -> None:
    bundle = bundle_of({**SPEC, "selector": {"matchLabels": {"app": "other"}}})
    with pytest.raises(Denied) as info:
        admit(bundle)
    assert (info.value.kind, info.value.code) == (DenyKind.PERMISSION_DENIED, "no_policy")


def test_claims_only_granted_tenants_and_use_cases(bundle_of: Callable[..., Bundle]) -> None:
    bundle = bundle_of(SPEC)
    assert admit(bundle, X_AIGW_Tenant="acme-eu").identity.tenant == "acme-eu"
    batch = {"model": "cheap", "messages": [], "metadata": {"use_case": "batch"}}
    assert admit(bundle, batch).identity.use_case.name == "batch"
    for headers in ({"X_AIGW_Tenant": "globex"}, {"X_AIGW_Use_Case": "admin"}):
        with pytest.raises(Denied) as info:
            admit(bundle, None, **headers)
        assert info.value.kind is DenyKind.PERMISSION_DENIED


def test_observe_mode_records_an_ungranted_claim_and_goes_on(
    bundle_of: Callable[..., Bundle],
) -> None:
    admission = admit(bundle_of(with_mode("observe")), X_AIGW_Tenant="globex")
    assert admission.identity.tenant == "acme"
    assert [(d.code, d.verdict) for d in admission.decisions] == [
        ("claim_not_granted", Verdict.OBSERVED)
    ]
    assert admission.warnings == []


def test_a_bundle_view_resolves_a_claim_the_same_every_time(
    bundle_of: Callable[..., Bundle],
) -> None:
    index = Governor(POD, MemoryStore()).view(bundle_of(with_mode("observe"))).index
    for _ in range(2):  # the second time from the granted pairs the first one kept
        eu = index.identify("acme-eu", "batch", enforce=True)
        assert (eu.tenant, eu.use_case.name, eu.violations) == ("acme-eu", "batch", ())
        assert index.identify(None, None, enforce=True).use_case.name == "reply"
        ungranted = index.identify("globex", "admin", enforce=False)
        assert ungranted.tenant == "acme"
        assert ungranted.violations == (
            "tenant 'globex' not granted",
            "use case 'admin' not granted",
        )
        with pytest.raises(Denied):
            index.identify("globex", None, enforce=True)


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        ({**BODY, "model": "cheap"}, {}, "route_not_allowed"),
        (
            {**BODY, "tools": [{"type": "function", "function": {"name": "drop_tables"}}]},
            {},
            "tool_not_allowed",
        ),
        (BODY, {"X_AIGW_Data_Classification": "restricted"}, "data_classification_not_allowed"),
    ],
)
def test_authorization_allowlists(
    bundle_of: Callable[..., Bundle], body: dict[str, Any], headers: dict[str, str], code: str
) -> None:
    with pytest.raises(Denied) as info:
        admit(bundle_of(SPEC), body, **headers)
    assert (info.value.kind, info.value.code) == (DenyKind.PERMISSION_DENIED, code)
    warned = admit(bundle_of(with_mode("warn")), body, **headers)
    assert [(d.code, d.verdict) for d in warned.decisions] == [(code, Verdict.WARNED)]
    assert len(warned.warnings) == 1


def test_allowed_tools_and_classification_pass(bundle_of: Callable[..., Bundle]) -> None:
    body = {**BODY, "tools": [{"type": "function", "function": {"name": "lookup_order"}}]}
    assert admit(bundle_of(SPEC), body, X_AIGW_Data_Classification="public").decisions == []
    with pytest.raises(InvalidRequest) as bad:
        admit(bundle_of(SPEC), X_AIGW_Data_Classification="secret")
    assert bad.value.code == "invalid_header"


def test_max_tokens_is_clamped_and_cost_estimated(bundle_of: Callable[..., Bundle]) -> None:
    # Prompt "hello": 4 + ceil(5/3)=2 + 3 priming = 9 tokens. Output clamped to 1000.
    constraints = admit(bundle_of(SPEC), {**BODY, "max_tokens": 5000}).constraints
    assert (constraints.prompt_tokens, constraints.max_output_tokens) == (9, 1000)
    assert constraints.clamp_to == 1000
    # chat costs 1.00 USD/M input and 2.00 USD/M output: 9*1000 + 1000*2000 nano-USD.
    assert constraints.estimated_cost_nusd == 9_000 + 2_000_000
    assert constraints.deadline_ms == 20000
    smaller = admit(bundle_of(SPEC), {**BODY, "max_tokens": 10}).constraints
    assert (smaller.max_output_tokens, smaller.clamp_to) == (10, None)
    unclamped = admit(bundle_of(with_mode("observe")), {**BODY, "max_tokens": 5000})
    assert unclamped.constraints.clamp_to is None
    assert unclamped.constraints.max_output_tokens == 5000
    assert unclamped.decisions[0].code == "max_tokens_clamped"


def test_headers_only_tighten(bundle_of: Callable[..., Bundle]) -> None:
    bundle = bundle_of(SPEC)
    assert admit(bundle, X_AIGW_Max_Latency_Ms="500").constraints.deadline_ms == 500
    assert admit(bundle, X_AIGW_Max_Latency_Ms="999999").constraints.deadline_ms == 20000
    # A looser cost header changes nothing; a tighter one refuses.
    assert admit(bundle, X_AIGW_Max_Cost_USD="100").decisions == []
    with pytest.raises(Denied) as info:
        admit(bundle, X_AIGW_Max_Cost_USD="0.001")
    assert info.value.kind is DenyKind.COST_LIMIT_EXCEEDED
    for header in ({"X_AIGW_Max_Cost_USD": "cheap"}, {"X_AIGW_Max_Latency_Ms": "-3"}):
        with pytest.raises(InvalidRequest) as bad:
            admit(bundle, None, **header)
        assert bad.value.code == "invalid_header"


def test_policy_cost_limit(bundle_of: Callable[..., Bundle]) -> None:
    spec = {**SPEC, "useCases": [{**USE_CASE, "limits": {"maxCostUSD": "0.001"}}]}
    with pytest.raises(Denied) as info:
        admit(bundle_of(spec), {**BODY, "max_tokens": 1000})
    assert info.value.kind is DenyKind.COST_LIMIT_EXCEEDED
    warned = admit(bundle_of({**spec, "mode": "warn"}), {**BODY, "max_tokens": 1000})
    assert [d.code for d in warned.decisions] == ["cost_limit_exceeded"]
