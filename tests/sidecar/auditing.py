"""Builders for the audit tests: bundles of chosen policies, a sidecar writing an audit
file (in-process or the real ``aigw sidecar`` process), and reading the records back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer
from aigw_sidecar.settings import AuditConfig

from .conftest import (
    NAMESPACE,
    Gateway,
    backend,
    bundle_bytes,
    sidecar_settings,
    write_secrets,
)

AIGW = Path(sys.executable).with_name("aigw")
LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+) \(admin 127\.0\.0\.1:(\d+)\)")


def aigw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``aigw ARGS`` (the real console script), its output captured."""
    return subprocess.run(
        [str(AIGW), *map(str, args)], check=False, capture_output=True, text=True, timeout=120
    )


def priced(name: str, url: str, model: str, price_in: str, price_out: str, **kw: Any) -> Any:
    spec = backend(name, "openai", url, model, key="openai", **kw)
    spec["pricing"] = {"inputPerMillionTokensUSD": price_in, "outputPerMillionTokensUSD": price_out}
    return spec


def policy_doc(spec: dict[str, Any], name: str = "app") -> dict[str, Any]:
    return {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def records(path: Path, kind: str = "call") -> list[dict[str, Any]]:
    """Every record of ``kind`` in ``path`` and its rotated siblings, in chain order."""
    found = []
    for file in audit_files(path):
        for line in file.read_bytes().splitlines():
            if line.strip():
                found.append(json.loads(line))
    found.sort(key=lambda r: (r["chain"], r["seq"]))
    return [r for r in found if r["kind"] == kind]


def audit_files(path: Path) -> list[Path]:
    """The audit file and its rotated siblings."""
    rotated = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))
    return [*rotated, path] if path.exists() else rotated


@contextlib.asynccontextmanager
async def audited_gateway(
    tmp: Path,
    docs: list[dict[str, Any]],
    oai: FakeProvider,
    claude: FakeProvider,
    **audit: Any,
) -> AsyncIterator[tuple[Gateway, Path]]:
    """An in-process sidecar on ``docs`` writing ``tmp/audit/audit.jsonl``; the file is
    complete (queue written, chain ended) once the block exits."""
    path = tmp / "audit" / "audit.jsonl"
    bundle = tmp / "bundle.json"
    bundle.write_bytes(bundle_bytes(docs))
    secrets = tmp / "secrets"
    if not secrets.exists():
        write_secrets(tmp)
    settings = sidecar_settings(
        bundle, secrets, audit=AuditConfig(file=path, **audit), pod_namespace=NAMESPACE
    )
    async with SidecarServer(settings) as server:
        yield Gateway(server, oai, claude, bundle, docs), path


@dataclass
class SidecarProcess:
    process: asyncio.subprocess.Process
    api: int
    admin: int
    log: bytearray
    terminated: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    def terminate(self) -> None:
        """SIGTERM, once (as the kubelet sends it; a second one is not part of the drain)."""
        if not self.terminated:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    async def stop(self) -> int:
        """SIGTERM (unless it got one already); the exit code (the drain and the audit
        flush happen before it)."""
        with contextlib.suppress(ProcessLookupError):
            self.terminate()
        assert self.process.stderr is not None
        async with asyncio.timeout(60):
            self.log += await self.process.stderr.read()
            return await self.process.wait()


@contextlib.asynccontextmanager
async def sidecar_process(
    tmp: Path, docs: list[dict[str, Any]], *args: str, stdout: int | None = None
) -> AsyncIterator[SidecarProcess]:
    """The real ``aigw sidecar`` process on ``docs`` (killed if the test did not stop it)."""
    bundle = tmp / "bundle.json"
    bundle.write_bytes(bundle_bytes(docs))
    secrets = tmp / "secrets"
    if not secrets.exists():
        write_secrets(tmp)
    process = await asyncio.create_subprocess_exec(
        str(AIGW),
        "sidecar",
        "--bundle",
        str(bundle),
        "--port",
        "0",
        "--admin-port",
        "0",
        "--admin-host",
        "127.0.0.1",
        "--secrets-dir",
        str(secrets),
        *args,
        stderr=asyncio.subprocess.PIPE,
        stdout=stdout,
        env={"AIGW_POD_NAMESPACE": NAMESPACE, "PATH": "/usr/bin:/bin"},
    )
    assert process.stderr is not None
    log = bytearray()
    try:
        async with asyncio.timeout(60):
            while (match := LISTENING.search(log)) is None:
                line = await process.stderr.readline()
                assert line, log.decode()
                log += line
        api, admin = (int(port) for port in match.groups())
        yield SidecarProcess(process, api, admin, log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
