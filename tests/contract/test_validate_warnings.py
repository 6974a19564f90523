"""``aigw validate`` and ``aigw compile``: warnings for settings that are not enforced yet,
and cross-reference errors that say where the resource is (file and document)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw_cli.main import main

ROUTE: dict[str, Any] = {
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
                "pricing": {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"},
            }
        ]
    },
}


def _policy(name: str = "support", **use_case: Any) -> dict[str, Any]:
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"useCases": [{"name": "reply", "routes": ["chat"], **use_case}]},
    }


def _write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_settings_enforced_in_this_release_are_not_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The prompt-cache prices were the last fields without an effect: a resource that sets
    them validates without a warning (the rule itself: tests/contract/test_field_status.py)."""
    source = _write(
        tmp_path / "in.yaml", _priced_route(), _policy(cache={"exact": {"enabled": True}})
    )
    assert main(["validate", str(source)]) == 0
    err = capsys.readouterr().err
    assert "warning:" not in err
    assert "ok: 1 AIPolicy, 1 ModelRoute" in err


def _priced_route() -> dict[str, Any]:
    """The route with the prompt-cache prices (the last fields to be enforced)."""
    backend = {**ROUTE["spec"]["backends"][0]}
    backend["pricing"] = {
        **backend["pricing"],
        "cachedInputPerMillionTokensUSD": "0.10",
        "cacheWritePerMillionTokensUSD": "0.10",
    }
    return {**ROUTE, "spec": {"backends": [backend]}}


def test_no_op_settings_and_defaults_are_not_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = _policy(
        cache={"exact": {"enabled": False, "ttlSeconds": 60}},
        redaction={"profile": "off", "mode": "block"},
    )
    source = _write(
        tmp_path / "in.yaml", {**ROUTE, "spec": {**ROUTE["spec"], "retry": {"attempts": 1}}}, quiet
    )
    assert main(["validate", str(source)]) == 0
    err = capsys.readouterr().err
    assert "warning:" not in err
    # Every default has its effect now (audit retention was the last): nothing to note.
    assert not [line for line in err.splitlines() if line.startswith("note:")]


@pytest.mark.parametrize("command", ["validate", "compile"])
def test_fail_on_warning_passes_when_everything_is_enforced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    source = _write(tmp_path / "in.yaml", _priced_route(), _policy())
    out = tmp_path / "bundle.json"
    assert main([command, str(source), "-o", str(out), "--fail-on-warning"]) == 0
    assert "not enforced yet" not in capsys.readouterr().err
    assert out.exists() is (command == "compile")


def test_cross_reference_errors_name_the_file_and_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "a-routes.yaml", ROUTE)
    policy = _write(
        tmp_path / "b-policies.yaml",
        _policy("first"),
        _policy("second", routes=["chat", "nope"]),
    )
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        f"error: {policy}: document 2: AIPolicy/second: spec.useCases[0].routes[1]: "
        "route 'nope' does not exist in the namespace"
    ) in err


def test_a_resource_defined_twice_is_named_at_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _write(tmp_path / "a.yaml", ROUTE, _policy())
    second = _write(tmp_path / "b.yaml", ROUTE)
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"error: {first}: document 1: ModelRoute/chat: defined more than once" in err
    assert f"error: {second}: document 1: ModelRoute/chat: defined more than once" in err
