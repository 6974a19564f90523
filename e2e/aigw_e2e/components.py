"""Command lines of the control-plane components, in one place so they can be read together.

The flags follow what controller-runtime's envtest and kwokctl pass, plus what a test cluster
needs for the parts envtest leaves out: the controller manager (ReplicaSets, Pods, service
accounts, garbage collection, namespace deletion), the scheduler, and KWOK standing in for
kubelets. Every listener binds to 127.0.0.1 on a port chosen at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aigw_e2e.tools import Tools

__all__ = [
    "ArgvBuilder",
    "Layout",
    "Ports",
    "apiserver",
    "controller_manager",
    "etcd",
    "kwok",
    "pod_cidr",
    "scheduler",
]

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class Layout:
    """Where one control plane keeps its files, all under ``root``."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    def pem(self, name: str) -> Path:
        return self.pki / name


ArgvBuilder = Callable[[Tools, Layout, Ports], list[str]]


def etcd(tools: Tools, layout: Layout, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(tools.path("etcd")),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver(tools: Tools, layout: Layout, ports: Ports) -> list[str]:
    pem = layout.pem
    return [
        str(tools.path("kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        f"--secure-port={ports.apiserver}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--cert-dir={layout.pki / 'apiserver-generated'}",
        f"--tls-cert-file={pem('apiserver.crt')}",
        f"--tls-private-key-file={pem('apiserver.key')}",
        f"--client-ca-file={pem('ca.crt')}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pem('sa.pub')}",
        f"--service-account-signing-key-file={pem('sa.key')}",
        # Admission webhooks (mutating and validating) are in the default plugin set.
        "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        # The "kubernetes" Service's Endpoints would point at 127.0.0.1, which validation
        # rejects; kwokctl turns the reconciler off for the same reason.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=1",
    ]


def _component_auth(layout: Layout) -> list[str]:
    kubeconfig = str(layout.kubeconfig)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
    ]


def controller_manager(tools: Tools, layout: Layout, ports: Ports) -> list[str]:
    pem = layout.pem
    return [
        str(tools.path("kube-controller-manager")),
        *_component_auth(layout),
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={layout.pki / 'controller-manager-generated'}",
        f"--service-account-private-key-file={pem('sa.key')}",
        f"--root-ca-file={pem('ca.crt')}",
        f"--cluster-signing-cert-file={pem('ca.crt')}",
        f"--cluster-signing-key-file={pem('ca.key')}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--use-service-account-credentials=false",
        "--v=1",
    ]


def scheduler(tools: Tools, layout: Layout, ports: Ports) -> list[str]:
    return [
        str(tools.path("kube-scheduler")),
        *_component_auth(layout),
        f"--secure-port={ports.scheduler}",
        f"--cert-dir={layout.pki / 'scheduler-generated'}",
        "--v=1",
    ]


def pod_cidr(ports: Ports) -> str:
    """The loopback range KWOK takes pod IPs from: 127.<n>.0.0/24, ``n`` from the control
    plane's own free KWOK port, so two control planes on one machine rarely share one. Pod
    IPs are then addresses of this machine: the stand-in kubelet (aigw_e2e.kubelet) binds the
    pods' sidecars to them, and the operator reaches them as it would reach pods."""
    return f"127.{16 + ports.kwok % 224}.0.1/24"


def kwok(tools: Tools, layout: Layout, ports: Ports) -> list[str]:
    return [
        str(tools.path("kwok")),
        f"--config={tools.kwok_stages}",
        f"--kubeconfig={layout.kubeconfig}",
        "--manage-all-nodes=true",
        f"--server-address=127.0.0.1:{ports.kwok}",
        "--node-ip=127.0.0.1",
        f"--cidr={pod_cidr(ports)}",
    ]
