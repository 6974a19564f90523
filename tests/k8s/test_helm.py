"""The real helm binary lints, templates and installs a chart against the real apiserver.

The aigw chart arrives with its own issue; a tiny chart written here exercises the binary and
its version ldflags (without them helm assumes Kubernetes v1.20 and kubeVersion checks fail).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from aigw_e2e import ControlPlane, Tools

pytestmark = pytest.mark.k8s

CHART_YAML = """\
apiVersion: v2
name: tiny
description: A chart that needs Kubernetes 1.34 or newer
version: 0.1.0
kubeVersion: ">=1.34.0-0"
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-info
data:
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  greeting: {{ .Values.greeting | quote }}
"""


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(CHART_YAML)
    (root / "values.yaml").write_text('greeting: "hello"\n')
    (root / "templates" / "configmap.yaml").write_text(CONFIGMAP)
    return root


def test_helm_lint_passes_a_valid_chart(control_plane: ControlPlane, chart: Path) -> None:
    result = control_plane.run("helm", "lint", "--strict", str(chart))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_helm_lint_fails_a_broken_template(control_plane: ControlPlane, chart: Path) -> None:
    (chart / "templates" / "broken.yaml").write_text("kind: {{ .Values.missing.deeper }\n")
    result = control_plane.run("helm", "lint", str(chart), check=False)
    assert result.returncode != 0
    assert "broken.yaml" in result.stdout + result.stderr


def test_helm_template_offline_sees_a_recent_kubernetes(e2e_tools: Tools, chart: Path) -> None:
    """Offline, helm's default capabilities come from the client-go it was built with."""
    out = subprocess.run(
        [str(e2e_tools.path("helm")), "template", "rel", str(chart)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "name: rel-info" in out
    assert 'greeting: "hello"' in out
    match = re.search(r'kubeVersion: "v1\.(\d+)\.\d+"', out)
    assert match is not None, out
    assert int(match.group(1)) >= 34


def test_helm_template_validates_against_the_cluster(
    control_plane: ControlPlane, chart: Path
) -> None:
    out = control_plane.run("helm", "template", "rel", str(chart), "--validate").stdout
    pinned = control_plane.kubectl_json("version")["serverVersion"]
    assert isinstance(pinned, dict)
    assert f'kubeVersion: "{pinned["gitVersion"]}"' in out


def test_helm_install_and_uninstall(control_plane: ControlPlane, chart: Path) -> None:
    control_plane.run(
        "helm",
        "install",
        "tiny",
        str(chart),
        *("-n", "helm-test", "--create-namespace", "--set", "greeting=hi", "--wait"),
    )
    info = control_plane.kubectl_json("-n", "helm-test", "get", "configmap", "tiny-info")
    data = info["data"]
    assert isinstance(data, dict)
    assert data["greeting"] == "hi"
    control_plane.run("helm", "uninstall", "tiny", "-n", "helm-test", "--wait")
    gone = control_plane.kubectl("-n", "helm-test", "get", "configmap", "tiny-info", check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
