"""Generating the CustomResourceDefinitions from the models: one source of truth.

The pydantic models are the source; ``crds/`` holds their rendering (``aigw crds -o crds``),
and a test fails when the two differ. The JSON schema pydantic produces is turned into a
Kubernetes *structural* schema: references inlined, optional wrappers removed, titles
dropped, descriptions kept (``kubectl explain`` prints them), CEL rules carried over from
each model's ``x-kubernetes-validations``, and a CEL rule beside every fractional
``minimum``/``maximum`` of a number (the apiserver truncates those for integer values).
"""

from __future__ import annotations

from typing import Any

from .policy import AIPolicySpec
from .resources import GROUP, VERSION, AIPolicy, AIPolicyStatus, ModelRoute, ModelRouteStatus
from .route import ModelRouteSpec

__all__ = ["crd_for", "render_crds", "structural_schema"]

_DROP = {"title", "additionalProperties", "propertyNames", "$defs"}


def _without_null(node: dict[str, Any]) -> dict[str, Any] | None:
    """``anyOf: [X, null]`` (an optional field) becomes X with the outer keys merged in."""
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    if len(options) != 1:
        return None
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if "default" in rest and rest["default"] is None:
        del rest["default"]
    return {**options[0], **rest}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    if "anyOf" in node and (optional := _without_null(node)) is not None:
        return _inline(optional, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _inline(prop, defs) for name, prop in value.items()}
        elif (key == "additionalProperties" and isinstance(value, dict)) or key not in _DROP:
            out[key] = _inline(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "number":
        _fractional_bounds_as_cel(out)
    return out


def _fractional_bounds_as_cel(node: dict[str, Any]) -> None:
    """The apiserver checks ``minimum``/``maximum`` of an integer value (``0``) against the
    bound truncated to an integer (0.5 -> 0), so ``threshold: 0`` would pass ``minimum:
    0.5``; a CEL rule compares numbers as numbers and closes that hole."""
    rules = []
    for key, op in (("minimum", ">="), ("maximum", "<=")):
        bound = node.get(key)
        if isinstance(bound, float) and not bound.is_integer():
            rules.append({"rule": f"self {op} {bound!r}", "message": f"must be {op} {bound!r}"})
    if rules:
        node["x-kubernetes-validations"] = [*node.get("x-kubernetes-validations", []), *rules]


def structural_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, as a CRD wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    return schema


def _conditions_as_map(status: dict[str, Any]) -> dict[str, Any]:
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return status


def _column(name: str, path: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": path, "description": description}


_READY = '.status.conditions[?(@.type=="Ready")].status'
_KINDS: dict[str, dict[str, Any]] = {
    "AIPolicy": {
        "model": AIPolicy,
        "spec": AIPolicySpec,
        "status": AIPolicyStatus,
        "plural": "aipolicies",
        "short": ["aipol", "aip"],
        "columns": [
            _column("Mode", ".spec.mode", "Enforcement mode"),
            _column("Tenant", ".status.tenant", "Default tenant"),
            _column("Revision", ".status.bundleRevision", "Bundle revision", "integer"),
            _column("Ready", _READY, "Whether the policy is in force"),
            _column("Synced", ".status.rollout.synced", "Pods serving the bundle in force"),
            _column("Age", ".metadata.creationTimestamp", "Age", "date"),
        ],
    },
    "ModelRoute": {
        "model": ModelRoute,
        "spec": ModelRouteSpec,
        "status": ModelRouteStatus,
        "plural": "modelroutes",
        "short": ["mroute", "mr"],
        "columns": [
            _column("Family", ".spec.intent.family", "Model family"),
            _column("Tier", ".spec.intent.qualityTier", "Quality tier"),
            _column("Revision", ".status.bundleRevision", "Bundle revision", "integer"),
            _column("Ready", _READY, "Whether the route is in force"),
            _column("Synced", ".status.rollout.synced", "Pods serving the bundle in force"),
            _column("Age", ".metadata.creationTimestamp", "Age", "date"),
        ],
    },
}


def crd_for(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of ``kind`` (AIPolicy or ModelRoute)."""
    info = _KINDS[kind]
    plural = info["plural"]
    spec_schema = structural_schema(info["spec"])
    status_schema = _conditions_as_map(structural_schema(info["status"]))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": info["short"],
                "categories": ["aigw"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info["columns"],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (info["model"].__doc__ or "").strip(),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "APIVersion of the object: aigw.dev/v1alpha1.",
                                },
                                "kind": {"type": "string", "description": f"Kind: {kind}."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crds() -> dict[str, str]:
    """``{filename: YAML}`` for every CRD, as committed under ``crds/``."""
    import yaml  # noqa: PLC0415 - the sidecar imports this module and never renders YAML

    header = "# Generated by `aigw crds -o crds` from the aigw_contract models. Do not edit.\n"
    return {
        f"{GROUP}_{info['plural']}.yaml": header
        + yaml.safe_dump(crd_for(kind), sort_keys=False, width=100)
        for kind, info in _KINDS.items()
    }
