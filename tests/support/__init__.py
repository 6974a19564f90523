"""Shared test builders: the one place tests get ports, waits, resource documents, bundles,
a real redis-server and a running sidecar from (``import support``; ``tests/`` is on the
test path through ``pythonpath`` in ``pyproject.toml``).

Conftests keep only fixtures; a helper two test modules need lives here, not in a copy.
"""

from .bundles import (
    NAMESPACE,
    backend_doc,
    bundle_bytes,
    compile_docs,
    policy_doc,
    route_doc,
)
from .ports import free_port
from .redis import Cluster, RedisServer, SharedRedis
from .waiting import wait_for, wait_until

__all__ = [
    "NAMESPACE",
    "Cluster",
    "RedisServer",
    "SharedRedis",
    "backend_doc",
    "bundle_bytes",
    "compile_docs",
    "free_port",
    "policy_doc",
    "route_doc",
    "wait_for",
    "wait_until",
]
