"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK with a few fake nodes, from the pinned Go-built tools.

``ControlPlane.start()`` either returns a cluster whose nodes are Ready and whose ``default``
ServiceAccount exists, or stops everything it started and raises. ``stop()`` ends every process
group it started. All files (certificates, etcd data, logs, the admin kubeconfig) live under
the directory it is given.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import time
from functools import partial
from pathlib import Path
from types import TracebackType

from aigw_e2e import components
from aigw_e2e.components import Layout, Ports
from aigw_e2e.errors import ControlPlaneError
from aigw_e2e.pki import CertificateAuthority, write_service_account_keys
from aigw_e2e.processes import Process, free_ports, http_ok, start_process
from aigw_e2e.tools import Tools

__all__ = ["ControlPlane"]

ADMIN_USER = "aigw-admin"


class ControlPlane:
    """One control plane; use as a context manager or call start() and stop()."""

    def __init__(
        self,
        tools: Tools,
        root: Path,
        *,
        nodes: int = 3,
        start_timeout: float = 180.0,
        die_with_parent: bool = True,
    ) -> None:
        self.tools = tools
        self.layout = Layout(root)
        self.node_names = tuple(f"kwok-node-{i}" for i in range(nodes))
        self.start_timeout = start_timeout
        # False only for `make cluster-up`, whose processes outlive the launcher. When True the
        # kernel kills the components if the thread that started them exits, so start a
        # control plane from a long-lived thread (pytest's main thread).
        self.die_with_parent = die_with_parent
        self.ports = Ports(*free_ports(6))
        self.processes: list[Process] = []
        # Every pid ever started, kept after stop() so callers can check none is left.
        self.started_pids: list[int] = []

    # -- what callers use ------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def ca_cert(self) -> Path:
        return self.layout.pem("ca.crt")

    def env(self) -> dict[str, str]:
        """The environment for tools: KUBECONFIG set and the tools first on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = os.pathsep.join([str(self.tools.bin_dir), env.get("PATH", "")])
        return env

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the built tools (kubectl, helm, ...) against this cluster."""
        result = subprocess.run(
            [str(self.tools.path(tool)), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"{tool} {' '.join(args)} failed with code {result.returncode}:\n{result.stderr}"
            )
        return result

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the cluster admin (client certificate in ``system:masters``)."""
        return self.run("kubectl", *args, input=input, check=check)

    def kubectl_json(self, *args: str) -> dict[str, object]:
        """``kubectl ... -o json`` parsed."""
        parsed: dict[str, object] = json.loads(self.kubectl(*args, "-o", "json").stdout)
        return parsed

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the cluster CA and presenting the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(self.layout.pem("admin.crt"), self.layout.pem("admin.key"))
        return context

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until the cluster can run Pods."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every started component, last started first."""
        errors: list[str] = []
        while self.processes:
            process = self.processes.pop()
            try:
                process.stop()
            except (OSError, subprocess.SubprocessError) as error:
                errors.append(f"{process.name}: {error}")
        self._write_state()
        if errors:
            raise ControlPlaneError("could not stop: " + "; ".join(errors))

    def _start(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        self._write_kubeconfig()
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        etcd = self._launch("etcd", components.etcd)
        etcd.wait_ready(
            lambda: http_ok(f"http://127.0.0.1:{self.ports.etcd_client}/health"),
            self.start_timeout,
        )
        apiserver = self._launch("kube-apiserver", components.apiserver)
        admin = self.admin_ssl_context()
        apiserver.wait_ready(lambda: http_ok(f"{self.server}/readyz", admin), self.start_timeout)
        controller_manager = self._launch("kube-controller-manager", components.controller_manager)
        controller_manager.wait_ready(
            partial(
                http_ok, f"https://127.0.0.1:{self.ports.controller_manager}/healthz", insecure
            ),
            self.start_timeout,
        )
        scheduler = self._launch("kube-scheduler", components.scheduler)
        scheduler.wait_ready(
            partial(http_ok, f"https://127.0.0.1:{self.ports.scheduler}/healthz", insecure),
            self.start_timeout,
        )
        kwok = self._launch("kwok", components.kwok)
        kwok.wait_ready(
            lambda: http_ok(f"http://127.0.0.1:{self.ports.kwok}/healthz"), self.start_timeout
        )
        self.kubectl("create", "-f", "-", input=json.dumps(self._nodes_manifest()))
        timeout = f"--timeout={self.start_timeout:.0f}s"
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", timeout)
        self._wait_for_default_service_account()

    def _launch(self, name: str, argv_of: components.ArgvBuilder) -> Process:
        argv = argv_of(self.tools, self.layout, self.ports)
        process = start_process(
            name, argv, self.layout.logs / f"{name}.log", die_with_parent=self.die_with_parent
        )
        self.processes.append(process)
        self.started_pids.append(process.pid)
        self._write_state()
        return process

    def _write_state(self) -> None:
        """Record pids and addresses so ``python -m aigw_e2e.cluster down`` can stop them."""
        if not self.layout.root.is_dir():
            return
        state = {
            "pids": {p.name: p.pid for p in self.processes},
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.tools.bin_dir),
        }
        self.layout.state.write_text(json.dumps(state, indent=2) + "\n")

    def _write_pki(self) -> None:
        ca = CertificateAuthority(self.layout.pki)
        ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
            server=True,
        )
        ca.issue("admin", common_name=ADMIN_USER, organization="system:masters", client=True)
        write_service_account_keys(self.layout.pki)

    def _write_kubeconfig(self) -> None:
        def data(name: str) -> str:
            return base64.b64encode(self.layout.pem(name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "aigw",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": data("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": data("admin.crt"),
                        "client-key-data": data("admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "aigw", "context": {"cluster": "aigw", "user": ADMIN_USER}}],
            "current-context": "aigw",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _nodes_manifest(self) -> dict[str, object]:
        resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
        nodes = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "status": {"allocatable": resources, "capacity": resources},
            }
            for name in self.node_names
        ]
        return {"apiVersion": "v1", "kind": "List", "items": nodes}

    def _wait_for_default_service_account(self) -> None:
        # The controller manager creates it; Pods cannot be admitted before it exists.
        deadline = time.monotonic() + self.start_timeout
        while self.kubectl("get", "serviceaccount", "default", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise ControlPlaneError("the default ServiceAccount was never created")
            time.sleep(0.5)
