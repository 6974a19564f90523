"""AIPolicy and ModelRoute documents, and bundles compiled from them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aigw_contract import Bundle, compile_bundle, parse_documents

__all__ = [
    "NAMESPACE",
    "backend_doc",
    "bundle_bytes",
    "compile_docs",
    "policy_doc",
    "route_doc",
]

Doc = dict[str, Any]
NAMESPACE = "team-a"
GENERATED_AT = datetime(2026, 11, 27, tzinfo=UTC)


def backend_doc(
    name: str,
    provider: str,
    base_url: str,
    model: str,
    *,
    key: str | None = None,
    weight: int = 1,
    api_version: str | None = None,
    pricing: dict[str, str] | None = None,
) -> Doc:
    """A ModelRoute backend (``key``: the key of the ``provider-keys`` Secret)."""
    spec: Doc = {
        "name": name,
        "provider": provider,
        "model": model,
        "baseURL": base_url,
        "weight": weight,
        "pricing": pricing
        or {"inputPerMillionTokensUSD": "1.50", "outputPerMillionTokensUSD": "6.00"},
    }
    if key is not None:
        spec["credentialSecretRef"] = {"name": "provider-keys", "key": key}
    if api_version is not None:
        spec["apiVersion"] = api_version
    return spec


def route_doc(name: str, backends: list[Doc], namespace: str = NAMESPACE, **spec: Any) -> Doc:
    """A ModelRoute document."""
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backends": backends, **spec},
    }


def policy_doc(name: str, spec: Doc, namespace: str = NAMESPACE) -> Doc:
    """An AIPolicy document."""
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def compile_docs(
    docs: Sequence[Doc],
    *,
    revision: int = 1,
    namespace: str = NAMESPACE,
    generated_at: datetime = GENERATED_AT,
) -> Bundle:
    """The bundle the operator would compile from ``docs`` (problems fail the test)."""
    text = "\n---\n".join(json.dumps(d) for d in docs).encode()
    parsed, problems = parse_documents(text, "test")
    assert not problems, problems
    return compile_bundle(
        [d.resource for d in parsed],
        namespace=namespace,
        generated_at=generated_at,
        revision=revision,
    )


def bundle_bytes(docs: Sequence[Doc], revision: int = 1) -> bytes:
    """The bundle file of ``docs``, as the sidecar reads it."""
    return compile_docs(docs, revision=revision).to_json_bytes()
