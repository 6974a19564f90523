"""e2e/build-tools.sh and aigw_e2e.tools agree on the cache, and the script fails clearly."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from aigw_e2e import Tools
from aigw_e2e.tools import TOOL_NAMES, tools_key

SCRIPT = Path(__file__).resolve().parents[2] / "e2e" / "build-tools.sh"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_script_and_python_compute_the_same_bin_dir(tmp_path: Path) -> None:
    env = {**os.environ, "AIGW_CACHE": str(tmp_path)}
    printed = subprocess.run(
        ["bash", str(SCRIPT), "--print-bin-dir"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tools = Tools(tmp_path / "tools" / Path(printed).parent.name)
    assert Path(printed) == tools.bin_dir
    assert Path(printed).parent.name == tools_key()


def test_unreachable_module_proxy_gives_one_clear_message(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        **os.environ,
        "AIGW_CACHE": str(tmp_path / "cache"),
        "GOPROXY": f"http://127.0.0.1:{port}",
        "GOMODCACHE": str(tmp_path / "gomod"),
        "GOFLAGS": "-modcacherw",
    }
    result = _run(env)
    assert result.returncode == 2
    assert "cannot reach the Go module proxy" in result.stderr
    assert f"GOPROXY=http://127.0.0.1:{port}" in result.stderr


@pytest.mark.k8s
def test_warm_run_builds_nothing(e2e_tools: Tools) -> None:
    env = {**os.environ, "AIGW_CACHE": str(e2e_tools.root.parent.parent), "GOPROXY": "off"}
    result = _run(env)
    assert result.returncode == 0, result.stderr
    assert "all tools present" in result.stderr
    for name in TOOL_NAMES:
        assert os.access(e2e_tools.path(name), os.X_OK)


def test_named_tools_only_are_checked_and_unknown_names_refused(tmp_path: Path) -> None:
    env = {**os.environ, "AIGW_CACHE": str(tmp_path), "GOPROXY": "off", "PATH": "/usr/bin:/bin"}
    tools = Tools(tmp_path / "tools" / tools_key())
    tools.bin_dir.mkdir(parents=True)
    collector = tools.path("otelcol")
    collector.write_text("#!/bin/sh\n")
    collector.chmod(0o755)
    only = subprocess.run(
        ["bash", str(SCRIPT), "otelcol"], env=env, capture_output=True, text=True, check=False
    )
    assert only.returncode == 0, only.stderr  # the Kubernetes tools are missing: not asked for
    assert "all tools present" in only.stderr
    unknown = subprocess.run(
        ["bash", str(SCRIPT), "otelcol", "kubelet"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "unknown tool kubelet" in unknown.stderr
    everything = _run(env)  # no names: every tool is wanted, and none can be built offline
    assert everything.returncode != 0
    assert "all tools present" not in everything.stderr
