"""The Go-built binaries report the pinned versions, not v0.0.0-master."""

from __future__ import annotations

import json
import subprocess

import pytest

from aigw_e2e import ControlPlane, Tools
from aigw_e2e.tools import read_versions

pytestmark = pytest.mark.k8s


def test_kubectl_and_apiserver_report_the_pinned_version(control_plane: ControlPlane) -> None:
    pinned = read_versions()["K8S_VERSION"]
    reported = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert reported["clientVersion"]["gitVersion"] == pinned
    assert reported["serverVersion"]["gitVersion"] == pinned


def test_helm_reports_its_pinned_version(e2e_tools: Tools) -> None:
    out = subprocess.run(
        [str(e2e_tools.path("helm")), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == read_versions()["HELM_VERSION"]


def test_etcd_is_the_version_kubernetes_pins(e2e_tools: Tools) -> None:
    out = subprocess.run(
        [str(e2e_tools.path("etcd")), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"etcd Version: {read_versions()['ETCD_VERSION'].removeprefix('v')}" in out
