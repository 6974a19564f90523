"""Pinned Go-built tools and a real Kubernetes control plane for tests and people.

`e2e/build-tools.sh` builds etcd, the Kubernetes control-plane binaries, kubectl, KWOK, helm and
an OpenTelemetry Collector into a cache keyed by `e2e/tools/versions.env`. This package finds
them (:mod:`aigw_e2e.tools`), runs a control plane from them (:mod:`aigw_e2e.controlplane`)
and an OpenTelemetry Collector (:mod:`aigw_e2e.collector`):
pytest fixtures use it, and so does ``make cluster-up`` (:mod:`aigw_e2e.cluster`). It imports
nothing of aigw, so any tier's tests can use it.
"""

from aigw_e2e.collector import Collector
from aigw_e2e.controlplane import ControlPlane
from aigw_e2e.errors import ControlPlaneError, E2EError, ToolsMissingError
from aigw_e2e.tools import Tools

__all__ = [
    "Collector",
    "ControlPlane",
    "ControlPlaneError",
    "E2EError",
    "Tools",
    "ToolsMissingError",
]
