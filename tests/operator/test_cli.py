"""`aigw operator` flags and environment -> OperatorSettings."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from aigw_cli import operator_cmd


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    operator_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("AIGW_WATCH_NAMESPACES", "team-a,team-b")
    monkeypatch.setenv("AIGW_SIDECAR_REDIS_URL", "redis://redis.aigw-system:6379/0")
    settings = operator_cmd.settings_from_args(
        parse("--priority", "7", "--keep-revisions", "3", "--native-sidecar", "never")
    )
    assert settings.kube.kubeconfig is None
    assert settings.kube.in_cluster_host == "https://10.0.0.1:443"
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.peering.priority == 7
    assert settings.bundles.keep_revisions == 3
    assert settings.sidecar.native == "never"
    assert settings.sidecar.env == (("AIGW_REDIS_URL", "redis://redis.aigw-system:6379/0"),)


def test_replicas_get_distinct_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    priorities = set()
    for pod in ("aigw-operator-5d9f-abcde", "aigw-operator-5d9f-fghij"):
        monkeypatch.setenv("AIGW_POD_NAME", pod)
        priorities.add(operator_cmd.settings_from_args(parse()).peering.priority)
    assert len(priorities) == 2


def test_kubeconfig_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    settings = operator_cmd.settings_from_args(parse("--peering-name", ""))
    assert settings.kube.kubeconfig == tmp_path / "config"
    assert settings.peering.name is None
