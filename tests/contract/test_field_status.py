"""The field-status table: complete, pointing at real tests and modules; and the warning
rule for fields that are not enforced yet (no-op values, inert fields, inactive defaults)."""

from __future__ import annotations

import ast
import importlib.util
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from aigw_contract import AIPolicy, ModelRoute, compile_bundle
from aigw_contract.enforcement import unenforced
from aigw_contract.field_status import FIELD_STATUS, Enforced, NotEnforced
from aigw_contract.fields import KINDS, spec_fields

REPO = Path(__file__).resolve().parents[2]
ENFORCED = [
    (kind, path, status)
    for kind, table in FIELD_STATUS.items()
    for path, status in table.items()
    if isinstance(status, Enforced)
]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_model_field_has_exactly_one_entry(kind: str) -> None:
    fields = {f.path for f in spec_fields(kind)}
    table = set(FIELD_STATUS[kind])
    assert not fields - table, f"{kind} fields missing from field_status: {sorted(fields - table)}"
    assert not table - fields, f"field_status names no {kind} field: {sorted(table - fields)}"


@cache
def _tests_in(path: Path) -> frozenset[str]:
    """``name`` and ``Class::name`` of every test function defined in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            found |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return frozenset(n for n in found if n.rsplit("::", 1)[-1].startswith("test"))


@pytest.mark.parametrize(("kind", "path", "status"), ENFORCED, ids=lambda v: str(v)[:80])
def test_an_enforced_entry_names_a_test_and_a_module_that_exist(
    kind: str, path: str, status: Enforced
) -> None:
    file, sep, name = status.test.partition("::")
    assert sep, status.test
    assert file.startswith("tests/"), status.test
    assert file.endswith(".py"), status.test
    assert (REPO / file).is_file(), f"{kind} {path}: no test file {file}"
    assert name in _tests_in(REPO / file), f"{kind} {path}: {file} has no test {name}"
    assert importlib.util.find_spec(status.by) is not None, f"{kind} {path}: no module {status.by}"


def test_the_enforcing_modules_and_tests_are_checked_not_only_listed() -> None:
    """The check above can fail: a made-up test name is not found."""
    assert "test_that_does_not_exist" not in _tests_in(REPO / "tests/sidecar/test_sdk.py")
    assert "test_chat_non_streaming" in _tests_in(REPO / "tests/sidecar/test_sdk.py")


def _policy(**use_case: Any) -> AIPolicy:
    return AIPolicy.model_validate(
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "AIPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "useCases": [
                    {"name": "a", "routes": ["r"]},
                    {"name": "b", "routes": ["r"], **use_case},
                ]
            },
        }
    )


def _route(**spec: Any) -> ModelRoute:
    backend = {
        "name": "main",
        "provider": "openai",
        "model": "m",
        "baseURL": "https://api.example/v1",
        "pricing": {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"},
    }
    return ModelRoute.model_validate(
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "ModelRoute",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"backends": [backend], **spec},
        }
    )


def _paths(resource: AIPolicy | ModelRoute) -> list[str]:
    return [p.path for p in unenforced(resource.kind, resource.spec).settings]


def test_a_minimal_resource_warns_about_nothing_and_has_no_inactive_defaults() -> None:
    policy, route = _policy(), _route()
    assert _paths(policy) == []
    assert _paths(route) == []
    # Audit retention and onQueueFull were the last defaults without an effect.
    assert unenforced("AIPolicy", policy.spec).defaults == ()
    # Retries, fallbacks and breakers are enforced: a route's defaults all have their effect.
    assert not any("retry" in d for d in unenforced("ModelRoute", route.spec).defaults)


@pytest.mark.parametrize(
    ("use_case", "warned"),
    [
        ({"cache": {"exact": {"enabled": False, "ttlSeconds": 60}}}, []),  # inert: disabled
        ({"cache": {"exact": {"enabled": True, "ttlSeconds": 60, "scope": "tenant"}}}, []),
        ({"cache": {"semantic": {"enabled": True, "threshold": 0.9, "embeddingsRoute": "r"}}}, []),
        ({"redaction": {"profile": "pii", "mode": "block"}}, []),  # enforced fields
        ({"promptInjection": {"mode": "block"}}, []),
        ({"audit": {"storePrompts": True}}, []),  # enforced
        ({"telemetry": {"captureContent": True}}, []),  # enforced
        ({"qualityTier": "high"}, []),  # enforced: intent routing
        ({"rateLimits": {"requestsPerMinute": 5}, "tools": []}, []),  # enforced fields
    ],
)
def test_a_policy_warns_per_setting_that_would_do_something(
    use_case: dict[str, Any], warned: list[str]
) -> None:
    assert _paths(_policy(**use_case)) == warned


@pytest.mark.parametrize(
    ("spec", "warned"),
    [
        ({"retry": {"attempts": 1, "backoffBaseMs": 5, "retryOn": ["timeout"]}}, []),
        ({"retry": {"attempts": 4, "backoffMaxMs": 50}}, []),  # enforced: no warning
        ({"fallback": []}, []),
        ({"circuitBreaker": {"openSeconds": 5}}, []),
        ({"intent": {"regions": ["eu"], "family": "gpt"}}, []),  # enforced: intent routing
        ({"timeouts": {"connectMs": 50}}, []),
    ],
)
def test_a_route_warns_per_setting_that_would_do_something(
    spec: dict[str, Any], warned: list[str]
) -> None:
    assert _paths(_route(**spec)) == warned


PRICE = "spec.backends[].pricing.cachedInputPerMillionTokensUSD"
CACHE = "spec.useCases[].cache.exact.enabled"
WHAT_IF = {
    "ModelRoute": {**FIELD_STATUS["ModelRoute"], PRICE: NotEnforced()},
    "AIPolicy": {**FIELD_STATUS["AIPolicy"], CACHE: NotEnforced(noop=(False,))},
}
"""The table as it was before these fields were enforced: every field of this release has
its effect, so the warning rule is exercised on a table that still has pending fields."""


def test_every_field_of_this_release_is_enforced() -> None:
    pending = [(k, p) for k, t in FIELD_STATUS.items() for p, s in t.items()
               if isinstance(s, NotEnforced)]  # fmt: skip
    assert pending == []


def test_the_bundle_form_gives_the_same_warnings_as_the_resources() -> None:
    """The sidecar checks the bundle's policies and routes; validate and the operator check
    the resources: the same fields, so the same warnings."""
    policy = _policy(cache={"exact": {"enabled": True}}, redaction={"profile": "strict"})
    first = _route().spec.backends[0].model_dump(by_alias=True, mode="json")
    first["pricing"]["cachedInputPerMillionTokensUSD"] = "0.10"
    route = _route(retry={"attempts": 3}, backends=[first])
    bundle = compile_bundle([policy, route], namespace="ns", generated_at=datetime.now(UTC))
    for resource, compiled in ((policy, bundle.policies[0]), (route, bundle.routes[0])):
        table = WHAT_IF[resource.kind]
        direct = unenforced(resource.kind, resource.spec, resource="x", statuses=table)
        via_bundle = unenforced(resource.kind, compiled, resource="x", statuses=table)
        assert direct == via_bundle
        assert len(direct.settings) == 1
        assert unenforced(resource.kind, compiled, resource="x").settings == ()


def test_a_warning_names_the_resource_the_path_and_the_value() -> None:
    first = _route().spec.backends[0].model_dump(by_alias=True, mode="json")
    first["pricing"]["cachedInputPerMillionTokensUSD"] = "0.10"
    (problem,) = unenforced(
        "ModelRoute", _route(backends=[first]).spec,
        resource="ModelRoute/r", source="r.yaml", document=2, statuses=WHAT_IF["ModelRoute"],
    ).settings  # fmt: skip
    assert str(problem) == (
        "r.yaml: document 2: ModelRoute/r: "
        'spec.backends[0].pricing.cachedInputPerMillionTokensUSD: "0.10" is not enforced yet: '
        "accepted, but it has no effect (see docs/policy-reference.md)"
    )


def test_a_no_op_value_of_a_pending_field_does_not_warn() -> None:
    table = WHAT_IF["AIPolicy"]
    on = unenforced("AIPolicy", _policy(cache={"exact": {"enabled": True}}).spec, statuses=table)
    off = unenforced("AIPolicy", _policy(cache={"exact": {"enabled": False}}).spec, statuses=table)
    assert [p.path for p in on.settings] == ["spec.useCases[1].cache.exact.enabled"]
    assert off.settings == ()


def test_no_op_values_are_values_the_field_can_take() -> None:
    """A no-op that the schema rejects would be a typo that silently never matches."""
    for kind, table in FIELD_STATUS.items():
        fields = {f.path: f for f in spec_fields(kind)}
        for path, status in table.items():
            if not isinstance(status, NotEnforced):
                continue
            schema = fields[path].schema
            for value in status.noop:
                if "enum" in schema:
                    assert value in schema["enum"], (kind, path, value)
                elif value is not None:
                    kind_of = {"boolean": bool, "integer": int, "array": list, "string": str}
                    assert isinstance(value, kind_of[schema["type"]]), (kind, path, value)
