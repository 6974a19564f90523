"""A table of invalid inputs: each gets its own specific error, exit code 1, and nothing written."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw_cli.main import main

Doc = dict[str, Any]


def _route() -> Doc:
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "chat", "namespace": "team-a"},
        "spec": {
            "backends": [
                {
                    "name": "primary",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "baseURL": "https://api.openai.com/v1",
                    "weight": 99,
                    "pricing": {
                        "inputPerMillionTokensUSD": "0.15",
                        "outputPerMillionTokensUSD": "0.60",
                    },
                },
                {
                    "name": "canary",
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "baseURL": "https://api.openai.com/v1",
                    "weight": 1,
                    "pricing": {
                        "inputPerMillionTokensUSD": "0.40",
                        "outputPerMillionTokensUSD": "1.60",
                    },
                },
            ],
            "fallback": ["canary"],
        },
    }


def _policy() -> Doc:
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": "support", "namespace": "team-a"},
        "spec": {
            "mode": "enforce",
            "selector": {"matchLabels": {"app": "support"}},
            "useCases": [
                {
                    "name": "reply",
                    "routes": ["chat"],
                    "limits": {"maxTokens": 512, "maxCostUSD": "0.05"},
                    "rateLimits": {"requestsPerMinute": 60},
                    "budgets": [{"name": "monthly", "period": "month", "costUSD": "100"}],
                }
            ],
        },
    }


def _edit(which: str, change: Callable[[Doc], object]) -> Callable[[], bytes]:
    def build() -> bytes:
        route, policy = _route(), _policy()
        change(route if which == "route" else policy)
        return yaml.safe_dump_all([route, policy]).encode()

    return build


def _raw(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _uc(doc: Doc) -> Doc:
    use_case: Doc = doc["spec"]["useCases"][0]
    return use_case


def _backend(doc: Doc, index: int = 0) -> Doc:
    backend: Doc = doc["spec"]["backends"][index]
    return backend


def _set(mapping: Doc, key: str, value: object) -> None:
    mapping[key] = value


def _duplicate_route() -> bytes:
    return yaml.safe_dump_all([_route(), _route(), _policy()]).encode()


def _other_namespace() -> bytes:
    other = _route()
    other["metadata"] = {"name": "chat-2", "namespace": "team-b"}
    return yaml.safe_dump_all([_route(), other, _policy()]).encode()


_VALID = yaml.safe_dump_all([_route(), _policy()]).encode()

CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("wrong type", _edit("policy", lambda d: _set(_uc(d)["limits"], "maxTokens", "many")),
     "spec.useCases[0].limits.maxTokens: Input should be a valid integer"),
    ("unknown enum value", _edit("policy", lambda d: _set(d["spec"], "mode", "loud")),
     "spec.mode: Input should be 'observe', 'warn' or 'enforce'"),
    ("negative limit",
     _edit("policy", lambda d: _set(_uc(d)["rateLimits"], "requestsPerMinute", -5)),
     "spec.useCases[0].rateLimits.requestsPerMinute: Input should be greater than or equal to 1"),
    ("lease block of zero",
     _edit("policy", lambda d: _set(_uc(d), "leasing", {"blockPercent": 0})),
     "spec.useCases[0].leasing.blockPercent: Input should be greater than or equal to 0.01"),
    ("lease block above 10%",
     _edit("policy", lambda d: _set(_uc(d), "leasing", {"blockPercent": 11})),
     "spec.useCases[0].leasing.blockPercent: Input should be less than or equal to 10"),
    ("lease block not a number",
     _edit("policy", lambda d: _set(_uc(d), "leasing", {"blockPercent": "all"})),
     "spec.useCases[0].leasing.blockPercent: Input should be a valid number"),
    ("lease block not finite",
     _edit("policy", lambda d: _set(_uc(d), "leasing", {"blockPercent": float("nan")})),
     "spec.useCases[0].leasing.blockPercent: Input should be"),
    ("lease without a block", _edit("policy", lambda d: _set(_uc(d), "leasing", {})),
     "spec.useCases[0].leasing.blockPercent: required field is missing"),
    ("lease with an unknown field",
     _edit("policy", lambda d: _set(_uc(d), "leasing", {"blockPercent": 1, "blocks": 9})),
     "spec.useCases[0].leasing.blocks: unknown field"),
    ("all weights zero",
     _edit("route", lambda d: [b.update(weight=0) for b in d["spec"]["backends"]]),
     "spec: at least one backend must have weight > 0"),
    ("dangling fallback", _edit("route", lambda d: _set(d["spec"], "fallback", ["nope"])),
     "fallback names undeclared backends: nope"),
    ("duplicate backend names", _edit("route", lambda d: _set(_backend(d, 1), "name", "primary")),
     "backend names must be unique: primary"),
    ("duplicate use case names",
     _edit("policy", lambda d: d["spec"]["useCases"].append(copy.deepcopy(_uc(d)))),
     "use case names must be unique: reply"),
    ("duplicate budget names",
     _edit("policy", lambda d: _uc(d)["budgets"].append(copy.deepcopy(_uc(d)["budgets"][0]))),
     "budget names must be unique: monthly"),
    ("yaml not a mapping", _raw(b"- a\n- b\n"), "a document must be a mapping, not list"),
    ("scalar document", _raw(b"hello\n"), "a document must be a mapping, not str"),
    ("kind not ours", _raw(b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n"),
     "kind: kind must be AIPolicy or ModelRoute, not 'Secret'"),
    ("wrong apiVersion", _edit("route", lambda d: _set(d, "apiVersion", "aigw.dev/v1")),
     "apiVersion: apiVersion must be aigw.dev/v1alpha1, not 'aigw.dev/v1'"),
    ("2 MiB document", _raw(b"apiVersion: aigw.dev/v1alpha1\nkind: AIPolicy\n# "
                            + b"x" * (2 * 1024 * 1024) + b"\n"),
     "document is larger than 1048576 bytes"),
    ("invalid UTF-8", _raw(_VALID.replace(b"support", b"supp\xff\xfert", 1)),
     "not valid UTF-8"),
    ("invalid YAML syntax", _raw(b"kind: AIPolicy\nspec: [unclosed\n"), "invalid YAML"),
    ("YAML alias", _raw(b"a: &x {b: 1}\nc: *x\n"), "YAML aliases are not allowed"),
    ("duplicate key", _raw(b"kind: AIPolicy\nkind: ModelRoute\n"), "duplicate key 'kind'"),
    ("unknown field (typo)", _edit("policy", lambda d: _set(d["spec"], "useCase", [])),
     "spec.useCase: unknown field"),
    ("missing required field", _edit("policy", lambda d: d["spec"].pop("useCases")),
     "spec.useCases: required field is missing"),
    ("money as a float", _edit("policy", lambda d: _set(_uc(d)["limits"], "maxCostUSD", 0.05)),
     'spec.useCases[0].limits.maxCostUSD: must be a decimal string such as "0.15"'),
    ("negative money", _edit("route", lambda d: _set(_backend(d)["pricing"],
                                                       "inputPerMillionTokensUSD", "-1")),
     "must be a non-negative decimal string"),
    ("budget fallback without route",
     _edit("policy", lambda d: _set(_uc(d)["budgets"][0], "onExhausted", "fallback")),
     "onExhausted: fallback needs fallbackRoute"),
    ("budget without amount",
     _edit("policy", lambda d: _uc(d)["budgets"][0].pop("costUSD")),
     "a budget needs tokens or costUSD"),
    ("default use case not declared",
     _edit("policy", lambda d: _set(d["spec"], "defaultUseCase", "other")),
     "defaultUseCase 'other' is not one of useCases"),
    ("route that does not exist", _edit("policy", lambda d: _set(_uc(d), "routes", ["ghost"])),
     "AIPolicy/support: spec.useCases[0].routes[0]: route 'ghost' does not exist"),
    ("budget fallback route that does not exist",
     _edit("policy", lambda d: _uc(d)["budgets"][0].update(onExhausted="fallback",
                                                         fallbackRoute="ghost")),
     "fallback route 'ghost' does not exist"),
    ("name not a DNS label", _edit("route", lambda d: _set(d["metadata"], "name", "Chat_1")),
     "metadata.name: String should match pattern"),
    ("resource defined twice", _duplicate_route, "ModelRoute/chat: defined more than once"),
    ("azure without apiVersion", _edit("route", lambda d: _set(_backend(d), "provider",
                                                              "azure-openai")),
     "azure-openai backends need apiVersion"),
    ("base URL not http", _edit("route", lambda d: _set(_backend(d), "baseURL", "file:///etc")),
     "spec.backends[0].baseURL: String should match pattern"),
    ("weight too large", _edit("route", lambda d: _set(_backend(d), "weight", 5000)),
     "spec.backends[0].weight: Input should be less than or equal to 1000"),
    ("selector In without values",
     _edit("policy", lambda d: _set(d["spec"]["selector"], "matchExpressions",
                                   [{"key": "app", "operator": "In"}])),
     "operator In needs values"),
    ("no backends", _edit("route", lambda d: _set(d["spec"], "backends", [])),
     "spec.backends: List should have at least 1 item"),
    ("unknown provider", _edit("route", lambda d: _set(_backend(d), "provider", "bard")),
     "spec.backends[0].provider: Input should be 'openai', 'azure-openai', 'anthropic'"),
    ("resources span namespaces", _other_namespace, "resources span namespaces team-a, team-b"),
]  # fmt: skip


def test_the_valid_base_compiles(tmp_path: Path) -> None:
    source = tmp_path / "in.yaml"
    source.write_bytes(_VALID)
    out = tmp_path / "bundle.json"
    assert main(["compile", str(source), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"{")


@pytest.mark.parametrize(("name", "build", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["compile", "validate"])
def test_invalid_input_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    name: str,
    build: Callable[[], bytes],
    expected: str,
) -> None:
    source = tmp_path / "in.yaml"
    source.write_bytes(build())
    out = tmp_path / "bundle.json"
    args = [command, str(source), "-o", str(out)]
    assert main(args) == 1, name
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.yaml"], "something was written"


def test_error_names_file_and_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.yaml"
    source.write_bytes(_edit("policy", lambda d: _set(d["spec"], "mode", "loud"))())
    assert main(["validate", str(source)]) == 1
    assert f"error: {source}: document 2: AIPolicy/support: spec.mode:" in capsys.readouterr().err


def test_existing_output_survives_a_failed_compile(tmp_path: Path) -> None:
    source = tmp_path / "in.yaml"
    source.write_bytes(_VALID)
    out = tmp_path / "bundle.json"
    assert main(["compile", str(source), "-o", str(out)]) == 0
    before = out.read_bytes()
    source.write_bytes(_edit("policy", lambda d: _set(d["spec"], "mode", "loud"))())
    assert main(["compile", str(source), "-o", str(out)]) == 1
    assert out.read_bytes() == before
