"""The CRDs under crds/ are the rendering of the models: they cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw_contract.crdgen import crd_for, render_crds

REPO = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_models() -> None:
    rendered = render_crds()
    committed = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert committed == rendered, "crds/ is stale: run `aigw crds -o crds`"


def _walk(schema: dict[str, Any], path: str) -> list[str]:
    missing = []
    for name, prop in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        if name != "metadata" and not prop.get("description"):
            missing.append(here)
        missing += _walk(prop, here)
    if isinstance(schema.get("items"), dict):
        missing += _walk(schema["items"], f"{path}[]")
    return missing


@pytest.mark.parametrize("kind", ["AIPolicy", "ModelRoute"])
def test_every_field_has_a_description(kind: str) -> None:
    schema = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema, kind) == []


@pytest.mark.parametrize("kind", ["AIPolicy", "ModelRoute"])
def test_schema_is_structural(kind: str) -> None:
    text = yaml.safe_dump(crd_for(kind))
    for forbidden in ("$ref", "anyOf", "$defs", "title:", "propertyNames"):
        assert forbidden not in text


def test_cel_rules_are_carried_over() -> None:
    spec = crd_for("ModelRoute")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    messages = {rule["message"] for rule in spec["x-kubernetes-validations"]}
    assert messages == {
        "backend names must be unique",
        "modelAliases must be unique",
        "at least one backend must have weight > 0",
        "fallback names undeclared backends",
    }
