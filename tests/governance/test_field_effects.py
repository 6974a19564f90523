"""Policy fields whose effect no other test proved: defaultUseCase, and the scope of rate
limits and budgets (which calls share a counter). aigw_contract.field_status points here."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from multidict import CIMultiDict

from aigw_contract import Bundle
from aigw_sidecar.claims import parse_claims
from aigw_sidecar.governance import Denied, Governor, MemoryStore, PodIdentity, Store

BODY: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 91,  # with the 9-token prompt, one call reserves 100 tokens
    "messages": [{"role": "user", "content": "hello"}],
}
SUPPORT = PodIdentity("team-a", "sa", {"app": "support"})
BILLING = PodIdentity("team-a", "sa", {"app": "billing"})
_ids = itertools.count()


def test_default_use_case_serves_requests_that_name_none(
    bundle_of: Callable[..., Bundle],
) -> None:
    use_cases = [{"name": "reply", "routes": ["chat"]}, {"name": "batch", "routes": ["chat"]}]
    governor = Governor(SUPPORT, MemoryStore())

    def use_case_of(spec: dict[str, Any]) -> str:
        view = governor.view(bundle_of(spec))
        admission = governor.admit(view, request_id="r", body=BODY, route="chat")
        return str(admission.identity.use_case.name)

    assert use_case_of({"useCases": use_cases}) == "reply"  # none named: the first
    assert use_case_of({"useCases": use_cases, "defaultUseCase": "batch"}) == "batch"


async def _admitted(governor: Governor, bundle: Bundle, use_case: str, counted: list[Any]) -> bool:
    view = governor.view(bundle)
    admission = governor.admit(
        view,
        request_id=f"r{next(_ids)}",
        body=BODY,
        route="chat",
        claims=parse_claims(CIMultiDict({"X-AIGW-Use-Case": use_case}), BODY),
    )
    try:
        counted.append(await governor.limit(view, admission))
    except Denied:
        return False
    return True


# After one call of use case "reply" from app "support": is a call of the other use case from
# the same app, and one of the same use case from another app, still admitted?
SCOPES = [
    ("useCase", {"other use case": True, "other app": False}),
    ("app", {"other use case": False, "other app": True}),
    ("tenant", {"other use case": False, "other app": False}),
]


async def _share(bundle: Bundle, store: Store, expected: dict[str, bool]) -> None:
    support, billing = Governor(SUPPORT, store), Governor(BILLING, store)
    counted: list[Any] = []
    assert await _admitted(support, bundle, "reply", counted)
    outcome = {
        "other use case": await _admitted(support, bundle, "batch", counted),
        "other app": await _admitted(billing, bundle, "reply", counted),
    }
    assert outcome == expected


def _use_cases(**limits: Any) -> list[dict[str, Any]]:
    # Copies, not one shared dict: the bundle is built through YAML, which refuses aliases.
    return [
        {"name": name, "routes": ["chat"], **copy.deepcopy(limits)} for name in ("reply", "batch")
    ]


@pytest.mark.parametrize(("scope", "expected"), SCOPES)
async def test_rate_limit_scope_decides_which_calls_share_a_counter(
    bundle_of: Callable[..., Bundle], store: Store, scope: str, expected: dict[str, bool]
) -> None:
    rate = {"requestsPerMinute": 1, "scope": scope}
    await _share(bundle_of({"useCases": _use_cases(rateLimits=rate)}), store, expected)


@pytest.mark.parametrize(("scope", "expected"), SCOPES)
async def test_budget_scope_decides_which_calls_share_a_counter(
    bundle_of: Callable[..., Bundle], store: Store, scope: str, expected: dict[str, bool]
) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 100, "scope": scope}
    await _share(bundle_of({"useCases": _use_cases(budgets=[budget])}), store, expected)
