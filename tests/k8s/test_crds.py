"""The generated CRDs against the real apiserver: install, explain, reject, accept, status, columns.

The apiserver itself must reject invalid objects (OpenAPI schema and CEL rules in the CRDs),
so kubectl runs with ``--validate=false`` and every message asserted below comes from the
server's response.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw_e2e import ControlPlane
from support.waiting import wait_for

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CRD_NAMES = ("aipolicies.aigw.dev", "modelroutes.aigw.dev")
NS = "team-a"

Obj = dict[str, Any]


def _load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _example(kind: str, name: str) -> Obj:
    for path in sorted((REPO / "examples").rglob("*.yaml")):
        for doc in _load_all(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise LookupError(f"no {kind} {name} in examples/")


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.kubectl("apply", "-f", str(REPO / "crds"))
    for name in CRD_NAMES:
        control_plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=120s"
        )
    control_plane.kubectl("create", "namespace", NS)
    yield control_plane
    control_plane.kubectl("delete", "namespace", NS, "--wait=false")


def _create(plane: ControlPlane, obj: Obj, namespace: str = NS) -> tuple[int, str]:
    result = plane.kubectl(
        "create", "--validate=false", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False
    )
    return result.returncode, result.stderr


def test_crds_are_established_with_their_names(crds: ControlPlane) -> None:
    for name in CRD_NAMES:
        crd = crds.kubectl_json("get", "crd", name)
        status = crd["status"]
        assert isinstance(status, dict)
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
    resources = crds.kubectl("api-resources", "--api-group=aigw.dev", "-o", "name").stdout.split()
    assert sorted(resources) == ["aipolicies.aigw.dev", "modelroutes.aigw.dev"]


def _words(text: str) -> str:
    return " ".join(text.split())


def _explain(cluster: ControlPlane, path: str) -> str:
    """``kubectl explain``, once the apiserver publishes the CRD's schema: that happens a
    moment after the CRD is Established (discovery and OpenAPI are refreshed apart)."""

    def explained() -> str | None:
        result = cluster.run("kubectl", "explain", path, check=False)
        return result.stdout if result.returncode == 0 else None

    return wait_for(f"kubectl explain {path}", explained, timeout=60, interval=0.5)


def test_kubectl_explain_prints_field_descriptions(crds: ControlPlane) -> None:
    crd = _load_all(REPO / "crds" / "aigw.dev_aipolicies.yaml")[0]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    out = _words(_explain(crds, "aipolicy.spec"))
    assert _words(spec["description"]) in out
    for field, schema in spec["properties"].items():
        assert re.search(rf"\b{field}\b", out), field
        assert _words(schema["description"]) in out, field

    deeper = _words(_explain(crds, "aipolicy.spec.useCases.budgets"))
    budgets = spec["properties"]["useCases"]["items"]["properties"]["budgets"]["items"]
    assert _words(budgets["properties"]["onExhausted"]["description"]) in deeper


def _policy(mutate: Callable[[Obj], None]) -> Obj:
    obj = copy.deepcopy(_example("AIPolicy", "support-assistant"))
    obj["metadata"] = {"name": "invalid-policy"}
    mutate(obj["spec"])
    return obj


def _route(mutate: Callable[[Obj], None]) -> Obj:
    obj = copy.deepcopy(_example("ModelRoute", "chat"))
    obj["metadata"] = {"name": "invalid-route"}
    mutate(obj["spec"])
    return obj


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation that sets a dotted path (list indexes as numbers) in the spec."""

    def mutate(spec: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Callable[[Obj], None]:
    def mutate(spec: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


def _duplicate_use_case(spec: Obj) -> None:
    spec["useCases"].append(copy.deepcopy(spec["useCases"][0]))


def _duplicate_backend(spec: Obj) -> None:
    spec["backends"][1]["name"] = spec["backends"][0]["name"]


def _all_weights_zero(spec: Obj) -> None:
    for backend in spec["backends"]:
        backend["weight"] = 0


BUDGET = "useCases.0.budgets.0"
PATTERN = {"name": "employee-id", "pattern": r"EMP-\d{6}"}
INVALID = [
    pytest.param(
        _policy(_set("useCases.0.redaction.customPatterns", [PATTERN, PATTERN])),
        "spec.useCases[0].redaction.customPatterns[1]: Duplicate value",
        id="custom-pattern-names-unique",
    ),
    pytest.param(
        _policy(_set("useCases.0.redaction.customPatterns", [{**PATTERN, "pattern": "a" * 513}])),
        "spec.useCases[0].redaction.customPatterns[0].pattern: Too long",
        id="custom-pattern-length",
    ),
    pytest.param(
        _policy(_set("useCases.0.redaction.customPatterns", [{**PATTERN, "category": "lower"}])),
        "spec.useCases[0].redaction.customPatterns[0].category in body should match",
        id="custom-pattern-category",
    ),
    pytest.param(
        _policy(_set("mode", "block")),
        'spec.mode: Unsupported value: "block": supported values: "observe", "warn", "enforce"',
        id="policy-mode-enum",
    ),
    pytest.param(
        _policy(_delete("useCases")),
        "spec.useCases: Required value",
        id="policy-use-cases-required",
    ),
    pytest.param(
        _policy(_set("useCases", [])),
        "spec.useCases in body should have at least 1 items",
        id="policy-use-cases-min-items",
    ),
    pytest.param(
        _policy(_set("tenant", "Acme!")),
        "spec.tenant in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        id="policy-tenant-pattern",
    ),
    pytest.param(
        _policy(_set("useCases.0.limits.maxTokens", 0)),
        "spec.useCases[0].limits.maxTokens in body should be greater than or equal to 1",
        id="policy-max-tokens-minimum",
    ),
    pytest.param(
        _policy(_set("useCases.0.cache.semantic", {"enabled": True, "threshold": 0.2})),
        "spec.useCases[0].cache.semantic.threshold in body should be greater than or equal to 0.5",
        id="policy-semantic-threshold",
    ),
    pytest.param(
        _policy(_set("useCases.0.leasing", {"blockPercent": 0})),  # an integer: see crdgen
        "spec.useCases[0].leasing.blockPercent: Invalid value: 0: must be >= 0.01",
        id="policy-lease-block-zero",
    ),
    pytest.param(
        _policy(
            _set(
                "useCases.0.cache.semantic",
                {"enabled": True, "threshold": 0, "embeddingsRoute": "chat"},
            )
        ),
        "spec.useCases[0].cache.semantic.threshold: Invalid value: 0: must be >= 0.5",
        id="policy-semantic-threshold-integer-zero",
    ),
    pytest.param(
        _policy(_set("useCases.0.leasing", {"blockPercent": 0.001})),
        "spec.useCases[0].leasing.blockPercent in body should be greater than or equal to 0.01",
        id="policy-lease-block-minimum",
    ),
    pytest.param(
        _policy(_set("useCases.0.leasing", {"blockPercent": 50})),
        "spec.useCases[0].leasing.blockPercent in body should be less than or equal to 10",
        id="policy-lease-block-maximum",
    ),
    pytest.param(
        _policy(_set("useCases.0.leasing", {})),
        "spec.useCases[0].leasing.blockPercent: Required value",
        id="policy-lease-block-required",
    ),
    pytest.param(
        _policy(_set("useCases.0.cache.semantic", {"enabled": True})),
        "a semantic cache needs embeddingsRoute",
        id="cel-semantic-needs-embeddings-route",
    ),
    pytest.param(
        _policy(_set("useCases.0.cache.semantic", {"enabled": True, "embeddingsRoute": "nope"})),
        "cache.semantic.embeddingsRoute must be one of routes",
        id="cel-semantic-embeddings-route-granted",
    ),
    pytest.param(
        _policy(_set("useCases.0.cache.excludedClassifications", ["confidential"])),
        "excludedClassifications must include restricted",
        id="cel-cache-restricted-never-cached",
    ),
    pytest.param(
        _policy(_set("useCases.0.cache.excludedClassifications", ["restricted", "restricted"])),
        "spec.useCases[0].cache.excludedClassifications[1]: Duplicate value",
        id="cache-excluded-classifications-set",
    ),
    pytest.param(
        _policy(_set("useCases.0.cache.exact", {"enabled": True, "scope": "global"})),
        'spec.useCases[0].cache.exact.scope: Unsupported value: "global"',
        id="cache-scope-enum",
    ),
    pytest.param(
        _policy(_duplicate_use_case), "use case names must be unique", id="cel-unique-use-cases"
    ),
    pytest.param(
        _policy(_set("defaultUseCase", "nope")),
        "defaultUseCase must name one of useCases",
        id="cel-default-use-case",
    ),
    pytest.param(
        _policy(_delete(f"{BUDGET}.costUSD")),
        "a budget needs tokens or costUSD",
        id="cel-budget-amount",
    ),
    pytest.param(
        _policy(_delete(f"{BUDGET}.fallbackRoute")),
        "onExhausted: fallback needs fallbackRoute",
        id="cel-budget-fallback-route",
    ),
    pytest.param(
        _policy(_set(f"{BUDGET}.onExhausted", "deny")),
        "fallbackRoute is only used with onExhausted: fallback",
        id="cel-budget-stray-fallback-route",
    ),
    pytest.param(
        _policy(_set("residency", [{"name": "eu", "dataClassifications": ["restricted"]}])),
        "a residency rule needs regions or providers",
        id="cel-residency-restricts-something",
    ),
    pytest.param(
        _policy(
            _set(
                "residency",
                [
                    {"name": "eu", "dataClassifications": ["restricted"], "regions": ["eu"]},
                    {"name": "eu", "dataClassifications": ["confidential"], "regions": ["eu"]},
                ],
            )
        ),
        "residency rule names must be unique",
        id="cel-unique-residency-rules",
    ),
    pytest.param(
        _policy(_set("useCases.0.idempotency", {"inFlight": "queue"})),
        'spec.useCases[0].idempotency.inFlight: Unsupported value: "queue"',
        id="policy-idempotency-in-flight-enum",
    ),
    pytest.param(
        _route(_set("backends.0.provider", "bedrock")),
        'spec.backends[0].provider: Unsupported value: "bedrock"',
        id="route-provider-enum",
    ),
    pytest.param(
        _route(_set("backends.0.baseURL", "ftp://example.test")),
        "spec.backends[0].baseURL in body should match",
        id="route-base-url-pattern",
    ),
    pytest.param(
        _route(_delete("backends.0.pricing")),
        "spec.backends[0].pricing: Required value",
        id="route-pricing-required",
    ),
    pytest.param(
        _route(_set("retry.attempts", 0)),
        "spec.retry.attempts in body should be greater than or equal to 1",
        id="route-retry-attempts-minimum",
    ),
    pytest.param(
        _route(_set("backends.0.provider", "azure-openai")),
        "azure-openai backends need apiVersion",
        id="cel-azure-api-version",
    ),
    pytest.param(
        _route(_duplicate_backend), "backend names must be unique", id="cel-unique-backends"
    ),
    pytest.param(
        _route(_all_weights_zero), "at least one backend must have weight > 0", id="cel-weights"
    ),
    pytest.param(
        _route(_set("fallback", ["nowhere"])),
        "fallback names undeclared backends",
        id="cel-fallback-declared",
    ),
    pytest.param(
        _route(_set("modelAliases", ["gpt-4.1-mini", "gpt-4.1-mini"])),
        "modelAliases must be unique",
        id="cel-unique-model-aliases",
    ),
    pytest.param(
        _route(_set("modelAliases", ["not a model"])),
        "spec.modelAliases[0] in body should match",
        id="route-model-alias-pattern",
    ),
]


@pytest.mark.parametrize(("obj", "message"), INVALID)
def test_apiserver_rejects_invalid_objects(crds: ControlPlane, obj: Obj, message: str) -> None:
    code, stderr = _create(crds, obj)
    assert code != 0
    assert f'{obj["kind"]} "{obj["metadata"]["name"]}" is invalid' in stderr, stderr
    assert message in stderr, stderr


def test_custom_patterns_and_restore_are_accepted_with_defaults(crds: ControlPlane) -> None:
    policy = _policy(_set("useCases.0.redaction", {"profile": "pii", "customPatterns": [PATTERN]}))
    policy["metadata"] = {"name": "custom-patterns"}
    code, stderr = _create(crds, policy)
    assert code == 0, stderr
    spec = crds.kubectl_json("get", "aipolicy", "custom-patterns", "-n", NS)["spec"]
    assert isinstance(spec, dict)
    redaction = spec["useCases"][0]["redaction"]
    assert redaction["customPatterns"] == [PATTERN]
    assert (redaction["mode"], redaction["restoreInAnswer"]) == ("mask", False)
    crds.kubectl("delete", "aipolicy", "custom-patterns", "-n", NS)


@pytest.mark.parametrize("percent", [1, 0.01, 2.5, 10])
def test_lease_blocks_in_range_are_accepted(crds: ControlPlane, percent: float) -> None:
    """Integers and fractions alike (the CEL rule beside ``minimum`` compares numbers)."""
    policy = _policy(_set("useCases.0.leasing", {"blockPercent": percent}))
    policy["metadata"] = {"name": "leasing"}
    code, stderr = _create(crds, policy)
    assert code == 0, stderr
    spec = crds.kubectl_json("get", "aipolicy", "leasing", "-n", NS)["spec"]
    assert isinstance(spec, dict)
    assert spec["useCases"][0]["leasing"] == {"blockPercent": percent}
    crds.kubectl("delete", "aipolicy", "leasing", "-n", NS)


def test_cache_settings_are_accepted_with_defaults(crds: ControlPlane) -> None:
    def cache(spec: Obj) -> None:
        use_case = spec["useCases"][0]
        use_case["cache"] = {
            "exact": {"enabled": True},
            "semantic": {"enabled": True, "embeddingsRoute": use_case["routes"][0]},
        }

    policy = _policy(cache)
    policy["metadata"] = {"name": "cache-defaults"}
    code, stderr = _create(crds, policy)
    assert code == 0, stderr
    spec = crds.kubectl_json("get", "aipolicy", "cache-defaults", "-n", NS)["spec"]
    assert isinstance(spec, dict)
    cached = spec["useCases"][0]["cache"]
    assert cached["exact"] == {"enabled": True, "ttlSeconds": 300, "scope": "useCase"}
    assert cached["excludedClassifications"] == ["confidential", "restricted"]
    assert cached["semantic"]["threshold"] == 0.95
    crds.kubectl("delete", "aipolicy", "cache-defaults", "-n", NS)


def test_examples_are_accepted(crds: ControlPlane) -> None:
    for path in sorted((REPO / "examples").rglob("*.yaml")):
        crds.kubectl("apply", "--validate=false", "-f", str(path))
    policies = crds.kubectl("get", "aipolicies", "-n", NS, "-o", "name").stdout.split()
    assert sorted(policies) == [
        "aipolicy.aigw.dev/report-summarizer",
        "aipolicy.aigw.dev/support-assistant",
    ]
    routes = crds.kubectl("get", "mr", "-n", NS, "-o", "name").stdout.split()
    assert sorted(routes) == ["modelroute.aigw.dev/chat", "modelroute.aigw.dev/chat-economy"]
    # The apiserver applies the schema's defaults.
    summarizer = crds.kubectl_json("get", "aipolicy", "report-summarizer", "-n", NS)
    spec = summarizer["spec"]
    assert isinstance(spec, dict)
    budget = spec["useCases"][0]["budgets"][0]
    assert (budget["scope"], budget["onExhausted"]) == ("tenant", "deny")
    assert spec["failMode"] == "open"


def _ready_status(revision: int, tenant: str | None = None) -> str:
    status: Obj = {
        "observedGeneration": 1,
        "bundleRevision": revision,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Compiled",
                "message": f"bundle revision {revision}",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    if tenant:
        status["tenant"] = tenant
    status["rollout"] = {"revision": revision, "synced": "2/3", "total": 3, "updated": 2}
    return json.dumps({"status": status})


def _row(plane: ControlPlane, *args: str) -> tuple[list[str], list[str]]:
    header, row = plane.kubectl("get", *args, "-n", NS).stdout.splitlines()
    return header.split(), row.split()


def test_status_subresource_and_printer_columns(crds: ControlPlane) -> None:
    crds.kubectl("apply", "--validate=false", "-f", str(REPO / "examples" / "quickstart"))
    name = "support-assistant"
    before = crds.kubectl_json("get", "aipolicy", name, "-n", NS)["metadata"]
    assert isinstance(before, dict)

    # A status written through the main resource is dropped: status is a subresource.
    crds.kubectl(
        "patch", "aipolicy", name, "-n", NS, "--type=merge", "-p", _ready_status(99, "ignored")
    )
    assert "status" not in crds.kubectl_json("get", "aipolicy", name, "-n", NS)

    crds.kubectl(
        "patch",
        "aipolicy",
        name,
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        _ready_status(7, "acme"),
    )
    after = crds.kubectl_json("get", "aipolicy", name, "-n", NS)
    assert after["status"]["bundleRevision"] == 7  # type: ignore[index]
    # Writing status does not bump the generation.
    assert after["metadata"]["generation"] == before["generation"]  # type: ignore[index]

    header, row = _row(crds, "aipolicy", name)
    assert header == ["NAME", "MODE", "TENANT", "REVISION", "READY", "SYNCED", "AGE"]
    assert row[:6] == [name, "enforce", "acme", "7", "True", "2/3"]

    crds.kubectl(
        "patch",
        "modelroute",
        "chat",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        _ready_status(3),
    )
    header, row = _row(crds, "modelroute", "chat")
    assert header == ["NAME", "FAMILY", "TIER", "REVISION", "READY", "SYNCED", "AGE"]
    assert row[:6] == ["chat", "general-chat", "standard", "3", "True", "2/3"]


def test_invalid_status_is_rejected(crds: ControlPlane) -> None:
    crds.kubectl("apply", "--validate=false", "-f", str(REPO / "examples" / "quickstart"))
    bad = json.dumps({"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}})
    result = crds.kubectl(
        "patch",
        "aipolicy",
        "report-summarizer",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        bad,
        check=False,
    )
    assert result.returncode != 0
    assert 'Unsupported value: "Maybe"' in result.stderr


def test_category_lists_both_kinds(crds: ControlPlane) -> None:
    crds.kubectl("apply", "--validate=false", "-f", str(REPO / "examples" / "quickstart"))
    names = crds.kubectl("get", "aigw", "-n", NS, "-o", "name").stdout.split()
    assert "aipolicy.aigw.dev/support-assistant" in names
    assert "modelroute.aigw.dev/chat" in names
