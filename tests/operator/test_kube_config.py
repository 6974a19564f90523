"""Credentials from kubeconfigs (embedded data, files, tokens) and the in-cluster account."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from aigw_operator import ConfigError, KubeSettings
from aigw_operator.kube import load_credentials


def write(path: Path, user: dict[str, str], cluster: dict[str, str]) -> Path:
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(config))
    return path


def test_embedded_certificates_are_written_privately(tmp_path: Path) -> None:
    data = base64.b64encode(b"PEM").decode()
    kubeconfig = write(
        tmp_path / "config",
        {"client-certificate-data": data, "client-key-data": data},
        {"certificate-authority-data": data},
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    creds = load_credentials(KubeSettings(kubeconfig=kubeconfig), scratch)
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.key_file is not None
    assert creds.key_file.read_bytes() == b"PEM"
    assert creds.key_file.stat().st_mode & 0o777 == 0o600
    assert creds.ca_file == scratch / "certificate-authority"


def test_token_and_relative_paths(tmp_path: Path) -> None:
    kubeconfig = write(tmp_path / "config", {"token": "abc"}, {"certificate-authority": "ca.crt"})
    creds = load_credentials(KubeSettings(kubeconfig=kubeconfig), tmp_path)
    assert creds.current_token() == "abc"
    assert creds.ca_file == tmp_path / "ca.crt"


def test_in_cluster_token_is_reread(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("one\n")
    settings = KubeSettings(in_cluster_host="https://10.0.0.1:443", service_account_dir=tmp_path)
    creds = load_credentials(settings, tmp_path)
    assert creds.current_token() == "one"
    (tmp_path / "token").write_text("two\n")
    assert creds.current_token() == "two"


def test_unusable_configurations_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in a cluster"):
        load_credentials(KubeSettings(), tmp_path)
    kubeconfig = write(tmp_path / "config", {"token": "abc"}, {})
    with pytest.raises(ConfigError, match="no context"):
        load_credentials(KubeSettings(kubeconfig=kubeconfig, context="other"), tmp_path)
