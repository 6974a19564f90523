"""values.schema.json rejects wrong values before anything renders, naming the key and why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "aigw"
SCHEMA_FAILURE = "values don't meet the specifications of the schema(s)"

# (values, the JSON pointer the message names, words of the reason)
WRONG: list[tuple[dict[str, Any], str, str]] = [
    ({"operator": {"replicas": "two"}}, "/operator/replicas", "got string, want integer"),
    ({"operator": {"replicas": 0}}, "/operator/replicas", "minimum: got 0, want 1"),
    ({"webhook": {"failurePolicy": "Sometimes"}}, "/webhook/failurePolicy", "'Fail', 'Ignore'"),
    ({"webhook": {"port": "9443"}}, "/webhook/port", "got string, want integer"),
    ({"webhook": {"timeoutSeconds": 60}}, "/webhook/timeoutSeconds", "maximum: got 60, want 30"),
    ({"crds": {"install": "yes"}}, "/crds/install", "got string, want boolean"),
    # Values that could never have an effect are gone, so setting them is an error:
    ({"sidecar": {"defaultMode": "observe"}}, "/sidecar", "defaultMode"),
    ({"redis": {"failMode": "open"}}, "/redis", "failMode"),
    ({"sidecar": {"native": True}}, "/sidecar/native", "got boolean, want string"),
    ({"sidecar": {"ports": {"api": 80}}}, "/sidecar/ports/api", "minimum: got 80, want 1,024"),
    ({"image": {"digest": "latest"}}, "/image/digest", "does not match pattern"),
    (
        {"operator": {"resources": {"limits": {"memory": "lots"}}}},
        "/operator/resources/limits/memory",
        "'lots' does not match pattern",
    ),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0", "'Team_A' does not match"),
    ({"redis": {"enabled": True}}, "/redis/url", "minLength: got 0, want 1"),
    ({"redis": {"enabled": True, "url": "http://r:6379"}}, "/redis/url", "does not match"),
    ({"redis": {"tls": {"secretName": "Redis_TLS"}}}, "/redis/tls/secretName", "does not match"),
    ({"redis": {"tls": {"mountPath": "certs"}}}, "/redis/tls/mountPath", "does not match"),
    (
        {"sidecar": {"redactionKey": {"secretName": "Hash_Key"}}},
        "/sidecar/redactionKey/secretName",
        "does not match",
    ),
    (
        {"sidecar": {"redactionKey": {"secretKey": "a/b"}}},
        "/sidecar/redactionKey/secretKey",
        "does not match",
    ),
    (
        {"sidecar": {"redactionKey": {"generate": "yes"}}},
        "/sidecar/redactionKey/generate",
        "got string, want boolean",
    ),
    ({"opentelemetry": {"enabled": True}}, "/opentelemetry/endpoint", "minLength"),
    ({"opentelemetry": {"samplingRatio": 2}}, "/opentelemetry/samplingRatio", "maximum"),
    ({"operator": {"replica": 2}}, "/operator", "additional properties 'replica' not allowed"),
    (
        {"webhook": {"certificate": {"certManager": {"issuerRef": {"kind": "Issuer"}}}}},
        "/webhook/certificate/certManager/issuerRef",
        "missing property 'name'",
    ),
]


def _ids() -> list[str]:
    return [
        f"{pointer.strip('/').replace('/', '.')}-{i}" for i, (_, pointer, _) in enumerate(WRONG)
    ]


@pytest.mark.parametrize(("values", "pointer", "reason"), WRONG, ids=_ids())
def test_wrong_values_are_rejected_with_a_clear_message(
    helm: Callable[..., Any], values: dict[str, Any], pointer: str, reason: str
) -> None:
    result = helm("template", "aigw", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert SCHEMA_FAILURE in result.stderr
    # One line names the value and says what is wrong with it.
    lines = [line for line in result.stderr.splitlines() if f"at '{pointer}':" in line]
    assert lines, result.stderr
    assert any(reason in line for line in lines), result.stderr
    assert result.stdout == ""


def test_lint_reports_the_same(helm: Callable[..., Any]) -> None:
    result = helm("lint", str(CHART), values={"operator": {"replicas": "two"}}, check=False)
    assert result.returncode != 0
    assert "replicas" in result.stdout + result.stderr


def test_the_defaults_satisfy_the_schema(helm: Callable[..., Any]) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    result = helm("template", "aigw", str(CHART), values=defaults, check=False)
    assert result.returncode == 0, result.stderr


def test_every_value_is_described() -> None:
    """The schema is the reference of the values: every key has a description."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, prop in node.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{path}.{name}")
            walk(prop, f"{path}.{name}")

    walk(schema, "")
    assert missing == []
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])
