"""The Dockerfile cannot be built here (no Docker engine); check what it promises statically."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _copied() -> set[str]:
    sources: set[str] = set()
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *srcs, _dest = line.split()[1:]
            sources.update(s.rstrip("/") for s in srcs)
    return sources


def test_the_build_stage_copies_every_package_of_the_wheel() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = _copied()
    assert {"pyproject.toml", "README.md"} <= copied
    for package in packages:
        assert any(package == c or package.startswith(c + "/") for c in copied), package


def test_the_image_is_pinned_non_root_and_runs_aigw() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert base is not None
    # A full version (or a digest), never a moving tag like 3.11-slim.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    user = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert user == ["65532:65532"]
    assert 'ENTRYPOINT ["aigw"]' in DOCKERFILE
    # The chart runs the operator as that user.
    values = (REPO / "charts" / "aigw" / "values.yaml").read_text()
    assert "runAsUser: 65532" in values
