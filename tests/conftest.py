"""Fixtures and markers shared by every test tier (builders live in ``tests/support``)."""

from __future__ import annotations

import pytest

# control_plane and e2e_tools: the real Kubernetes control plane (see aigw_e2e.pytest_plugin).
pytest_plugins = ("aigw_e2e.pytest_plugin",)

REDIS_FIXTURES = frozenset({"redis_server", "own_redis"})
"""Fixtures that start a real redis-server."""
REDIS_PARAMS = frozenset({"redis", "redis-py"})
"""Parameter values of the store fixtures that run a test against Redis."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``redis`` every test that needs a real redis-server: it requests a Redis fixture
    or runs with a Redis store parameter (``-m "not redis"`` then skips exactly those)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = list(callspec.params.values()) if callspec is not None else []
        uses = REDIS_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or any(isinstance(p, str) and p in REDIS_PARAMS for p in params):
            item.add_marker(pytest.mark.redis)
