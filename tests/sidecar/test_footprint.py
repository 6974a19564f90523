"""The sidecar runs in every pod: what it imports is part of its memory footprint."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "redis",
    "opentelemetry",
    "cryptography",
    "kopf",
    "pydantic_settings",
    "bpe_openai",
    "numpy",
)


def test_a_sidecar_without_tls_redis_imports_nothing_heavy() -> None:
    # redis-py alone adds ~20 MB of RSS (it pulls in cryptography and opentelemetry); the
    # default lean Redis client and an in-memory store must not load it.
    code = (
        "import sys, aigw_sidecar, aigw_sidecar.server, aigw_sidecar.steps.govern\n"
        "from aigw_sidecar.governance import RedisStore\n"
        "RedisStore.from_url('redis://127.0.0.1:1')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_tls_and_cluster_redis_urls_import_nothing_heavy_either() -> None:
    # TLS and Cluster run on the lean clients too (resp.py, resp_cluster.py).
    code = (
        "import sys, aigw_sidecar.server\n"
        "from aigw_sidecar.governance import RedisStore\n"
        "a = RedisStore.from_url('rediss://127.0.0.1:1')\n"
        "b = RedisStore.from_url('redis+cluster://127.0.0.1:1,127.0.0.1:2')\n"
        "c = RedisStore.from_url('rediss+cluster://127.0.0.1:1')\n"
        "print(type(a.client).__name__, type(b.client).__name__, type(c.client).__name__)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["RespClient ClusterClient ClusterClient", "[]"]


def test_the_sidecar_does_not_load_the_compiler_or_yaml() -> None:
    # The sidecar reads compiled bundles: the contract's compiler and YAML loader (and
    # PyYAML) are imported on first use only, by the CLI and the operator.
    code = (
        "import sys, aigw_sidecar.server, aigw_contract\n"
        "lazy = ('yaml', 'aigw_contract.compiler', 'aigw_contract.loader')\n"
        "print(sorted(m for m in lazy if m in sys.modules))\n"
        "print(aigw_contract.compile_bundle.__module__, aigw_contract.load_paths.__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == [
        "[]",
        "aigw_contract.compiler aigw_contract.loader",
    ]
