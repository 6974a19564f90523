"""`aigw operator` and its kopf peering, against the real apiserver: a missing or unreadable
peering object stops it at startup with what to do (it used to report ready and never
publish, saying so only at DEBUG); standalone and peered operators say which at INFO."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from typing import Any

import pytest

from .conftest import OperatorProcess, wait_for

pytestmark = pytest.mark.k8s

NO_PEERING_NS = "op-no-peering"
ROUTE = {
    "apiVersion": "aigw.dev/v1alpha1",
    "kind": "ModelRoute",
    "metadata": {"name": "chat", "namespace": NO_PEERING_NS},
    "spec": {
        "backends": [
            {
                "name": "small",
                "provider": "openai-compatible",
                "model": "m1",
                "baseURL": "http://vllm:8000/v1",
                "pricing": {"inputPerMillionTokensUSD": "1", "outputPerMillionTokensUSD": "1"},
            }
        ]
    },
}


def _operator(cluster: Any, kubeconfig: Any, priority: int, *args: str) -> OperatorProcess:
    leader: OperatorProcess = cluster.operator
    return OperatorProcess(
        kubeconfig, leader.workdir, priority=priority, webhook=False, extra_args=args
    )


def _exits(operator: OperatorProcess) -> tuple[int, str]:
    """Launch it; its exit code and log once it stopped by itself (bounded)."""
    operator.launch()
    assert operator.process is not None
    try:
        code = operator.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        operator.stop()
        raise AssertionError(
            f"the operator kept running:\n{operator.log.read_text()[-3000:]}"
        ) from None
    return code, operator.log.read_text()


def _readyz(operator: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{operator.health_port}/readyz", timeout=2):
            return True
    except OSError:
        return False


def test_a_missing_peering_object_stops_the_operator_at_startup(aigw_cluster: Any) -> None:
    aigw_cluster.kubectl("create", "namespace", NO_PEERING_NS)
    admin = aigw_cluster.plane.kubeconfig  # may read anything: the object is really absent
    operator = _operator(aigw_cluster, admin, 301, f"--namespace={NO_PEERING_NS}")
    code, log = _exits(operator)
    assert code == 1
    assert (
        f"error: the peering object KopfPeering {NO_PEERING_NS}/aigw-operator does not exist"
    ) in log
    assert "--peering-name ''" in log
    assert not _readyz(operator)


def test_an_unreadable_peering_object_stops_the_operator_at_startup(aigw_cluster: Any) -> None:
    # The chart's RBAC lets the operator read only its own peering object.
    operator = _operator(aigw_cluster, aigw_cluster.sa_kubeconfig, 302, "--peering-name=other")
    code, log = _exits(operator)
    assert code == 1
    assert "error: cannot read the peering object ClusterKopfPeering other (Forbidden)" in log


def test_the_peered_operator_says_so_at_info(aigw_cluster: Any) -> None:
    log = aigw_cluster.operator.log.read_text()
    assert "INFO aigw_operator.app: peering: ClusterKopfPeering aigw-operator; this replica" in log


def test_a_standalone_operator_says_so_and_publishes(aigw_cluster: Any) -> None:
    leader: OperatorProcess = aigw_cluster.operator
    standalone = _operator(aigw_cluster, aigw_cluster.sa_kubeconfig, 303, "--peering-name=")
    leader.stop()  # it would compile the namespace too
    try:
        standalone.start()
        aigw_cluster.kubectl("apply", "-f", "-", input=json.dumps(ROUTE))
        wait_for(
            "the bundle",
            lambda: (
                aigw_cluster.plane.kubectl(
                    "-n", NO_PEERING_NS, "get", "configmap", "aigw-bundle", check=False
                ).returncode
                == 0
            ),
        )
    finally:
        standalone.stop()
        leader.start()
    assert "INFO aigw_operator.app: peering: none (--peering-name '')" in standalone.log.read_text()
