"""Fixtures of the operator tests: applying the webhook's JSONPatch, and golden files.

Set AIGW_UPDATE_GOLDEN=1 to rewrite golden files from the current output (then review the diff).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aigw_operator.webhookconfig import webhook_configuration
from support import free_port, wait_for

GOLDEN = Path(__file__).parent / "golden"


def apply_json_patch(doc: Any, patch: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 ``add`` operations (the only kind the webhook emits)."""
    doc = json.loads(json.dumps(doc))
    for op in patch:
        assert op["op"] == "add", op
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key = parts[-1]
        if isinstance(node, list):
            node.insert(len(node) if key == "-" else int(key), op["value"])
        else:
            assert key not in node, f"add would replace {op['path']}"
            node[key] = op["value"]
    return doc


def check_golden(name: str, value: Any) -> None:
    """Compare ``value`` with golden/<name>.json (rewrite it when AIGW_UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.json"
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    if os.environ.get("AIGW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with AIGW_UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == json.loads(text), f"differs from {path}"


JsonPatcher = Callable[[Any, list[dict[str, Any]]], Any]
GoldenChecker = Callable[[str, Any], None]


@pytest.fixture
def json_patch() -> JsonPatcher:
    """apply_json_patch, as a fixture (test modules cannot import each other)."""
    return apply_json_patch


@pytest.fixture
def golden() -> GoldenChecker:
    """check_golden, as a fixture."""
    return check_golden


# --- the real control plane: the operator as its ServiceAccount, with the chart's RBAC -------

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "aigw-op-system"
"""Not the chart tests' aigw-system: every test tier shares one control plane per session."""
TEAM_NS = "op-team-a"
"""Where the quickstart examples (written for team-a) are applied."""
__all__ = ["free_port", "wait_for"]  # re-exported from support for this folder
WEBHOOK_CONFIG = "aigw-sidecar-injector"


@dataclass
class OperatorProcess:
    """One ``aigw operator`` process, run as the chart's ServiceAccount."""

    kubeconfig: Path
    workdir: Path
    priority: int
    webhook: bool
    extra_args: tuple[str, ...] = ()
    health_port: int = field(default_factory=free_port)
    webhook_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"operator-{self.priority}.log"

    @property
    def certs(self) -> Path:
        return self.workdir / f"certs-{self.priority}"

    def start(self) -> None:
        self.launch()
        wait_for(f"operator {self.priority} ready", self.ready, timeout=90)

    def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        argv = [
            sys.executable,
            "-m",
            "aigw_cli.main",
            "operator",
            f"--kubeconfig={self.kubeconfig}",
            f"--priority={self.priority}",
            "--peering-lifetime=30",
            "--health-host=127.0.0.1",
            f"--health-port={self.health_port}",
            "--webhook-host=127.0.0.1",
            f"--webhook-port={self.webhook_port}",
            f"--webhook-cert-dir={self.certs}",
            "--webhook-san=127.0.0.1",
            "--sidecar-image=registry.invalid/aigw:0.1.0",
            # Small parts: bundles of a few hundred KB are sharded over several ConfigMaps.
            "--bundle-part-bytes=100000",
            *(self.extra_args or (f"--webhook-configuration={WEBHOOK_CONFIG}",)),
        ]
        if not self.webhook:
            argv.append("--no-webhook")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited:\n{self.log.read_text()[-4000:]}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class AigwCluster:
    """The control plane prepared as the chart would: CRDs, RBAC, peering, webhook config."""

    plane: Any
    sa_kubeconfig: Path
    operator: OperatorProcess

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return str(self.plane.kubectl(*args, input=input).stdout)

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", *args, "-o", "json")))

    def apply_examples(self, *, secrets: bool = True) -> None:
        """The quickstart examples (and their Secret), moved from team-a to TEAM_NS."""
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TEAM_NS}}
        self.kubectl("apply", "-f", "-", input=json.dumps(namespace))
        paths = sorted((REPO / "examples/quickstart").glob("*.yaml"))
        if secrets:
            paths += sorted((REPO / "examples/secrets").glob("*.yaml"))
        text = "\n---\n".join(p.read_text() for p in paths)
        self.kubectl(
            "apply", "-f", "-", input=text.replace("namespace: team-a", f"namespace: {TEAM_NS}")
        )


def _sa_kubeconfig(plane: Any, path: Path) -> Path:
    token = plane.kubectl(
        "-n", OPERATOR_NS, "create", "token", "aigw-operator", "--duration=4h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "aigw",
                "cluster": {"server": plane.server, "certificate-authority": str(plane.ca_cert)},
            }
        ],
        "users": [{"name": "aigw-operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "aigw", "user": "aigw-operator"}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def aigw_cluster(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """CRDs and the chart's RBAC applied, one operator running as its ServiceAccount."""
    workdir = tmp_path_factory.mktemp("operator")
    plane = control_plane
    plane.kubectl("apply", "-f", str(REPO / "crds"), "-f", str(REPO / "charts/aigw/crds"))
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    plane.kubectl("create", "namespace", OPERATOR_NS)
    # Only what an operator outside the cluster needs: its ServiceAccount, RBAC and peering
    # object (not the chart's Deployment and webhook configuration, whose pods KWOK never runs).
    rendered = plane.run(
        *("helm", "template", "aigw", str(REPO / "charts/aigw"), "--namespace", OPERATOR_NS),
        *("--set", "webhook.patchCABundle=true"),
        *("--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"),
        *("--show-only", "templates/peering.yaml"),
    ).stdout
    plane.kubectl("apply", "-f", "-", input=rendered)
    config = webhook_configuration(
        name=WEBHOOK_CONFIG,
        ca_bundle=b"",
        url="https://127.0.0.1:1",  # replaced below, once the port is known
        excluded_namespaces=("kube-system", OPERATOR_NS),
        failure_policy="Fail",
    )
    operator = OperatorProcess(
        _sa_kubeconfig(plane, workdir / "sa.kubeconfig"), workdir, priority=100, webhook=True
    )
    for hook in config["webhooks"]:
        url = hook["clientConfig"]["url"].replace(":1/", f":{operator.webhook_port}/")
        hook["clientConfig"] = {"url": url}
    plane.kubectl("apply", "-f", "-", input=json.dumps(config))
    operator.start()
    cluster = AigwCluster(plane, operator.kubeconfig, operator)
    yield cluster
    operator.stop()
    # Leave the shared control plane as found for the test tiers that run after this one.
    plane.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIG, "--ignore-not-found")
    plane.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=rendered)
