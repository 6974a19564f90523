"""Two operator replicas: only the one with the higher priority compiles; stopping it hands
over to the other (kopf peering, both as the chart's ServiceAccount)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from support import wait_for

pytestmark = pytest.mark.k8s

NS = "team-ha"
POLICY = """
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: team-ha}
spec:
  backends:
    - name: small
      provider: openai-compatible
      model: m%d
      baseURL: http://vllm:8000/v1
      pricing: {inputPerMillionTokensUSD: "0.02", outputPerMillionTokensUSD: "0.05"}
"""


def revision(cluster: Any) -> int:
    result = cluster.plane.kubectl(
        "-n",
        NS,
        "get",
        "configmap",
        "aigw-bundle",
        "-o",
        "jsonpath={.metadata.annotations.aigw\\.dev/revision}",
        check=False,
    )
    return int(result.stdout) if result.returncode == 0 and result.stdout else 0


def test_only_the_leader_compiles_and_stopping_it_hands_over(aigw_cluster: Any) -> None:
    leader = aigw_cluster.operator
    standby = type(leader)(leader.kubeconfig, leader.workdir, priority=50, webhook=False)
    standby.start()
    try:
        aigw_cluster.kubectl("create", "namespace", NS)
        aigw_cluster.kubectl("apply", "-f", "-", input=POLICY % 1)
        wait_for("revision 1", lambda: revision(aigw_cluster) == 1)
        aigw_cluster.kubectl("apply", "-f", "-", input=POLICY % 2)
        wait_for("revision 2", lambda: revision(aigw_cluster) == 2)
        assert standby.metric("aigw_operator_reconciles_total", result="published") == 0
        assert standby.metric("aigw_operator_reconciles_total", result="unchanged") == 0

        leader.stop()
        aigw_cluster.kubectl("apply", "-f", "-", input=POLICY % 3)
        wait_for("revision 3 by the standby", lambda: revision(aigw_cluster) == 3)
        wait_for(
            "the standby's reconcile to finish",
            lambda: standby.metric("aigw_operator_reconciles_total", result="published") >= 1,
        )
    finally:
        if leader.process is None:
            leader.start()  # the other tests of the session keep their operator
        standby.stop()
    # The standby starts paused (peering is mandatory) and resumes only when the leader leaves.
    log = standby.log.read_text()
    resumed = log.index("Resuming operations")
    assert "published bundle" not in log[:resumed]


def test_a_killed_leader_is_replaced_after_the_peering_lifetime(aigw_cluster: Any) -> None:
    """SIGKILL leaves no goodbye: the standby waits until the leader's keep-alive expires
    (--peering-lifetime=30 in these tests), then takes over. Measured, not asserted."""
    leader = aigw_cluster.operator
    standby = type(leader)(leader.kubeconfig, leader.workdir, priority=40, webhook=False)
    standby.start()
    try:
        wait_for("the namespace", lambda: revision(aigw_cluster) >= 1)
        before = revision(aigw_cluster)
        assert leader.process is not None
        leader.process.kill()
        leader.process.wait()
        leader.process = None
        killed = time.monotonic()
        aigw_cluster.kubectl("apply", "-f", "-", input=POLICY % 4)
        wait_for("a revision by the standby", lambda: revision(aigw_cluster) > before)
        print(f"\ntakeover after SIGKILL: {time.monotonic() - killed:.1f}s (lifetime 30 s)")
    finally:
        standby.stop()
        if leader.process is None:
            leader.start()
