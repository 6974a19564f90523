"""Where the pinned Go-built tools live, computed exactly as e2e/build-tools.sh computes it.

The cache key is the first 16 hex digits of the SHA-256 of ``versions.env`` followed by
``otelcol-builder.yaml`` (both in ``e2e/tools/``), so bumping a version selects a new, separately
built set and never mixes binaries of two versions.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from aigw_e2e.errors import ToolsMissingError

__all__ = ["TOOL_NAMES", "Tools", "default_cache_dir", "read_versions", "tools_key"]

TOOLS_SOURCE_DIR = Path(__file__).resolve().parent.parent / "tools"
TOOL_NAMES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "otelcol",
)


def default_cache_dir() -> Path:
    """``$AIGW_CACHE`` or ``~/.cache/aigw``: the only place this package reads the environment."""
    configured = os.environ.get("AIGW_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "aigw"


def tools_key(source_dir: Path = TOOLS_SOURCE_DIR) -> str:
    """The cache key of the pinned versions, identical to build-tools.sh's."""
    digest = hashlib.sha256()
    for name in ("versions.env", "otelcol-builder.yaml"):
        digest.update((source_dir / name).read_bytes())
    return digest.hexdigest()[:16]


def read_versions(source_dir: Path = TOOLS_SOURCE_DIR) -> dict[str, str]:
    """The ``NAME=value`` pairs of versions.env (comments and blank lines skipped)."""
    versions: dict[str, str] = {}
    for line in (source_dir / "versions.env").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            name, _, value = stripped.partition("=")
            versions[name.strip()] = value.strip()
    return versions


@dataclass(frozen=True)
class Tools:
    """Paths of the built tools for one cache key."""

    root: Path

    @classmethod
    def from_cache(cls, cache_dir: Path | None = None) -> Tools:
        """The tools for the pinned versions; raises ToolsMissingError if any is not built."""
        tools = cls((cache_dir or default_cache_dir()) / "tools" / tools_key())
        tools.check()
        return tools

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def kwok_stages(self) -> Path:
        return self.root / "share" / "kwok-stages.yaml"

    def path(self, name: str) -> Path:
        """The executable called ``name`` (one of TOOL_NAMES)."""
        if name not in TOOL_NAMES:
            raise KeyError(name)
        return self.bin_dir / name

    def check(self) -> None:
        missing = [n for n in TOOL_NAMES if not os.access(self.path(n), os.X_OK)]
        if not self.kwok_stages.is_file():
            missing.append("kwok-stages.yaml")
        if missing:
            raise ToolsMissingError(
                f"the pinned Go-built tools are missing from {self.root} ({', '.join(missing)}): "
                "run `make tools` (e2e/build-tools.sh) first"
            )
