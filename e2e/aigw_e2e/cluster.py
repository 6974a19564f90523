"""``python -m aigw_e2e.cluster up|down``: the test control plane for a person's shell.

``make cluster-up`` runs ``up``, which starts a control plane under ``$AIGW_CACHE/cluster`` (or
reuses the one already running there) and prints shell exports on stdout, everything else on
stderr, so ``eval "$(make -s cluster-up)"`` sets KUBECONFIG and puts kubectl and helm on PATH.
``down`` stops those processes (by the pids recorded in state.json, checking each still belongs
to this cluster) and deletes the directory.

``up --kubelet NS`` (``make cluster-up KUBELET=team-a,team-b``) also starts the stand-in
kubelet (:mod:`aigw_e2e.kubelet`) for those namespaces, so injected pods there run their real
sidecars as local processes on their loopback pod IPs; its log is ``logs/kubelet.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from aigw_e2e.controlplane import ControlPlane
from aigw_e2e.errors import E2EError
from aigw_e2e.processes import pid_alive, start_process, stop_pid
from aigw_e2e.tools import Tools, default_cache_dir

__all__ = ["main"]


def _say(message: str) -> None:
    print(f"aigw-cluster: {message}", file=sys.stderr)


def _exports(kubeconfig: str, bin_dir: str) -> str:
    return (
        f'export KUBECONFIG={shlex.quote(kubeconfig)}\nexport PATH={shlex.quote(bin_dir)}:"$PATH"\n'
    )


def _ours(pid: int, root: Path) -> bool:
    """True if ``pid`` is alive and its command line names this cluster's directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return False
    return pid_alive(pid) and str(root) in cmdline


def _read_state(root: Path) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads((root / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


def _pids(state: dict[str, object]) -> dict[str, int]:
    pids = state.get("pids")
    return {str(k): int(v) for k, v in pids.items()} if isinstance(pids, dict) else {}


def _start_kubelet(root: Path, kubeconfig: Path, namespaces: list[str]) -> None:
    """The stand-in kubelet as a detached process, recorded in state.json."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    argv = [sys.executable, "-m", "aigw_e2e.kubelet", f"--kubeconfig={kubeconfig}"]
    argv += [f"--root={root / 'kubelet'}", f"--path={path}"]
    argv += [f"--namespace={n}" for n in namespaces]
    process = start_process("kubelet", argv, root / "logs" / "kubelet.log", die_with_parent=False)
    state = _read_state(root) or {}
    pids = _pids(state) | {"kubelet": process.pid}
    (root / "state.json").write_text(json.dumps({**state, "pids": pids}, indent=2) + "\n")
    _say(f"stand-in kubelet for {', '.join(namespaces)} (pid {process.pid})")


def up(root: Path, kubelet: list[str] | None = None) -> int:
    state = _read_state(root)
    if state is not None:
        pids = _pids(state)
        if pids and all(_ours(pid, root) for pid in pids.values()):
            _say(f"already running at {state['server']} (state in {root})")
            sys.stdout.write(_exports(str(state["kubeconfig"]), str(state["bin_dir"])))
            return 0
    if root.exists():
        _say(f"a previous cluster in {root} is not (fully) running; replacing it")
        down(root)
    tools = Tools.from_cache(default_cache_dir())
    root.parent.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(tools, root, die_with_parent=False)
    _say(f"starting etcd, kube-apiserver, controller manager, scheduler and kwok in {root}")
    plane.start()
    if kubelet:
        _start_kubelet(root, plane.kubeconfig, kubelet)
    _say(f"up at {plane.server} with nodes {', '.join(plane.node_names)}; logs in {root}/logs")
    _say("stop it with: make cluster-down")
    sys.stdout.write(_exports(str(plane.kubeconfig), str(tools.bin_dir)))
    return 0


def down(root: Path) -> int:
    state = _read_state(root)
    if state is None and not root.exists():
        _say(f"no cluster at {root}")
        return 0
    # Reverse start order: kwok and the controllers first, etcd last.
    for name, pid in reversed(list(_pids(state or {}).items())):
        if _ours(pid, root):
            _say(f"stopping {name} (pid {pid})")
            stop_pid(pid)
    shutil.rmtree(root, ignore_errors=True)
    _say(f"removed {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aigw_e2e.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--dir", type=Path, default=None, help="state directory (default $AIGW_CACHE/cluster)"
    )
    parser.add_argument(
        "--kubelet",
        default=os.environ.get("AIGW_KUBELET_NAMESPACES", ""),
        help="comma-separated namespaces whose injected pods the stand-in kubelet runs",
    )
    args = parser.parse_args(argv)
    root = (args.dir or default_cache_dir() / "cluster").resolve()
    namespaces = [n for n in args.kubelet.split(",") if n]
    try:
        return up(root, namespaces) if args.command == "up" else down(root)
    except E2EError as error:
        _say(f"ERROR: {error}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
