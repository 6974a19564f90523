"""pytest fixtures for the real control plane, shared by every test tier that needs one.

Load it with ``pytest_plugins = ("aigw_e2e.pytest_plugin",)`` in the top-level conftest.
``control_plane`` is session-scoped: one etcd/apiserver/controller-manager/scheduler/KWOK set
per test run, under pytest's temporary directory, stopped at the end of the session. When the
tools have not been built the fixtures fail (never skip): CI builds them first, and a person
is told to run ``make tools``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw_e2e.collector import Collector
from aigw_e2e.controlplane import ControlPlane
from aigw_e2e.errors import ToolsMissingError
from aigw_e2e.tools import Tools

__all__ = ["control_plane", "e2e_tools", "otel_collector"]


@pytest.fixture(scope="session")
def e2e_tools() -> Tools:
    """The pinned Go-built tools (kubectl, helm, otelcol, ...)."""
    try:
        return Tools.from_cache()
    except ToolsMissingError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def control_plane(
    e2e_tools: Tools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """A running control plane with Ready KWOK nodes; torn down after the session."""
    with ControlPlane(e2e_tools, tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture
def otel_collector(e2e_tools: Tools, tmp_path: Path) -> Iterator[Collector]:
    """A running OpenTelemetry Collector writing what it receives under ``tmp_path``."""
    with Collector(e2e_tools, tmp_path / "otelcol") as collector:
        yield collector
