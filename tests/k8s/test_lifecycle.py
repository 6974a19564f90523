"""Starting and stopping control planes leaks no process, also when start-up fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aigw_e2e import ControlPlane, ControlPlaneError, Tools
from aigw_e2e.processes import pid_alive

pytestmark = pytest.mark.k8s


def _cluster(command: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aigw_e2e.cluster", command, "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


def _exports(stdout: str) -> dict[str, str]:
    """Evaluate the printed exports the way a shell would, with a known PATH."""
    script = f'PATH=/original; {stdout}\nprintf "%s\\n%s" "$KUBECONFIG" "$PATH"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    kubeconfig, path = out.stdout.split("\n")
    return {"KUBECONFIG": kubeconfig, "PATH": path}


def test_cluster_up_prints_exports_and_down_stops_everything(
    e2e_tools: Tools, tmp_path: Path
) -> None:
    root = tmp_path / "cluster"
    up = _cluster("up", root)
    try:
        exports = _exports(up.stdout)
        assert exports["PATH"] == f"{e2e_tools.bin_dir}:/original"
        assert Path(exports["KUBECONFIG"]) == root / "admin.kubeconfig"
        # Only the exports go to stdout; progress goes to stderr.
        assert [line.split()[0] for line in up.stdout.splitlines()] == ["export", "export"]
        assert "up at https://127.0.0.1:" in up.stderr

        env = {**os.environ, **exports, "PATH": f"{e2e_tools.bin_dir}:{os.environ['PATH']}"}
        nodes = subprocess.run(
            ["kubectl", "get", "nodes", "-o", "name"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert sorted(nodes.stdout.split()) == [f"node/kwok-node-{i}" for i in range(3)]

        again = _cluster("up", root)
        assert again.stdout == up.stdout
        assert "already running" in again.stderr
        pids = json.loads((root / "state.json").read_text())["pids"]
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        }
        assert all(pid_alive(pid) for pid in pids.values())
    finally:
        down = _cluster("down", root)
    assert not any(pid_alive(pid) for pid in pids.values()), down.stderr
    assert not root.exists()


def test_failed_start_stops_what_it_had_started(e2e_tools: Tools, tmp_path: Path) -> None:
    plane = ControlPlane(e2e_tools, tmp_path / "cp")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", plane.ports.apiserver))
        squatter.listen()
        with pytest.raises(ControlPlaneError, match="kube-apiserver exited") as failure:
            plane.start()
    assert "address already in use" in str(failure.value)
    assert len(plane.started_pids) == 2  # etcd, then the apiserver that failed
    assert not any(pid_alive(pid) for pid in plane.started_pids)
    assert plane.processes == []


def test_context_manager_stops_every_process(e2e_tools: Tools, tmp_path: Path) -> None:
    with ControlPlane(e2e_tools, tmp_path / "cp", nodes=1) as plane:
        assert plane.kubectl("get", "--raw", "/readyz").stdout == "ok"
        pids = list(plane.started_pids)
        assert len(pids) == 5
    assert not any(pid_alive(pid) for pid in pids)
    assert plane.kubectl("get", "--raw", "/readyz", check=False).returncode != 0
