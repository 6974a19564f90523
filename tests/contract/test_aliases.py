"""modelAliases: model-like names a request may use for a route, unique in the namespace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aigw_contract import CompileError, ModelRoute, compile_bundle, parse_documents
from aigw_contract.codec import decode_files, encode_bundle

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _route(name: str, aliases: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": name},
        "spec": {
            "modelAliases": aliases,
            "backends": [
                {
                    "name": "b",
                    "provider": "openai",
                    "model": "m",
                    "baseURL": "http://127.0.0.1:1/v1",
                    "pricing": {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"},
                }
            ],
        },
    }


def test_model_like_aliases_are_accepted_and_kept_in_both_formats() -> None:
    aliases = ["gpt-4.1-mini", "claude-sonnet-4-5", "meta-llama/Llama-3.1-8B-Instruct"]
    routes = [ModelRoute.model_validate(_route("chat", aliases))]
    for version in (1, 2):
        bundle = compile_bundle(routes, namespace="ns", generated_at=WHEN, format_version=version)
        assert decode_files(encode_bundle(bundle).files).routes[0].model_aliases == aliases


@pytest.mark.parametrize("alias", ["", "gpt 4", "-leading", "x" * 129, "a\nb", "model?x=1"])
def test_aliases_that_are_not_model_like_are_refused(alias: str) -> None:
    with pytest.raises(ValueError, match="modelAliases"):
        ModelRoute.model_validate(_route("chat", [alias]))


def test_repeated_aliases_in_one_route_are_refused() -> None:
    with pytest.raises(ValueError, match="modelAliases must be unique: gpt-4o"):
        ModelRoute.model_validate(_route("chat", ["gpt-4o", "gpt-4o"]))


def test_an_alias_names_one_route_of_the_namespace() -> None:
    taken = [
        ModelRoute.model_validate(_route("a", ["gpt-4o"])),
        ModelRoute.model_validate(_route("b", ["gpt-4o"])),
    ]
    with pytest.raises(CompileError, match="'gpt-4o' is also an alias of 'a'"):
        compile_bundle(taken, namespace="ns", generated_at=WHEN)
    shadow = [
        ModelRoute.model_validate(_route("a", ["b"])),
        ModelRoute.model_validate(_route("b", [])),
    ]
    with pytest.raises(CompileError, match="'b' is another route's name"):
        compile_bundle(shadow, namespace="ns", generated_at=WHEN)


def test_routes_without_aliases_compile_to_the_bytes_older_readers_know() -> None:
    bundle = compile_bundle(
        [ModelRoute.model_validate(_route("chat", []))], namespace="ns", generated_at=WHEN
    )
    assert b"modelAliases" not in bundle.to_json_bytes()


def test_offline_validation_names_the_field() -> None:
    import yaml

    text = yaml.safe_dump(_route("chat", ["no spaces please"]))
    _, problems = parse_documents(text.encode(), "route.yaml")
    assert problems
    assert "spec.modelAliases[0]" in str(problems[0])
