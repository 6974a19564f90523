"""Fixtures shared by every test tier."""

# control_plane and e2e_tools: the real Kubernetes control plane (see aigw_e2e.pytest_plugin).
pytest_plugins = ("aigw_e2e.pytest_plugin",)
