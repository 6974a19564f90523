"""A real sidecar with inspection settings of the test's choosing, and the sensitive values
the inspection tests plant (well-known test numbers and made-up keys, never real ones)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import (
    Json,
    Phase,
    RequestContext,
    Services,
    SidecarServer,
    Step,
    default_steps,
)
from aigw_sidecar.keys import INSPECTION
from aigw_sidecar.steps import Plugin

from .conftest import (
    NAMESPACE,
    Gateway,
    backend,
    bundle_bytes,
    route,
    sidecar_settings,
    write_secrets,
)

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def github_token(seed: str = "aigwcanary") -> str:
    """A classic GitHub token with a valid CRC-32 check (made up: it grants nothing)."""
    payload = (seed * 4)[:30]
    crc = zlib.crc32(payload.encode())
    check = ""
    for _ in range(6):
        crc, digit = divmod(crc, 62)
        check = _BASE62[digit] + check
    return f"ghp_{payload}{check}"


EMAIL = "jane.canary@example.com"
SSN = "123-45-6788"
CARD = "4111 1111 1111 1111"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB = github_token()
IBAN = "DE89 3704 0044 0532 0130 00"
PASSWORD_LINE = "password: Tr0ub4dor&3x"
PASSWORD = "Tr0ub4dor&3x"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zq7" * 30 + "AA"
ALL_VALUES = (EMAIL, SSN, CARD, AWS_KEY, GITHUB, IBAN, PASSWORD, ANTHROPIC_KEY)


class Recorder(Step):
    """A plug-in step in the outermost phase: keeps what an audit record would get
    (decisions and the inspection report) for the test to read."""

    name = "test-recorder"
    phase = Phase.OBSERVE

    def __init__(self) -> None:
        self.decisions: list[Any] = []
        self.reports: list[list[dict[str, str | int]]] = []

    async def on_finish(self, ctx: RequestContext) -> None:
        self.decisions.extend(ctx.decisions)
        report = ctx.state.get(INSPECTION)
        self.reports.append(report.as_list() if report is not None else [])

    def events(self) -> list[dict[str, str | int]]:
        return [e for r in self.reports for e in r]


def docs(
    oai: FakeProvider,
    claude: FakeProvider,
    use_case: Json,
    *,
    mode: str = "enforce",
    tenants: Sequence[str] = (),
) -> list[Json]:
    routes = [
        route("chat", [backend("primary", "openai", oai.openai_base_url, "gpt-4o", key="openai")]),
        route(
            "claude",
            [backend("sonnet", "anthropic", claude.base_url, "claude-sonnet-4-5", key="anthropic")],
        ),
    ]
    policy = {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": "app", "namespace": NAMESPACE},
        "spec": {
            "mode": mode,
            "additionalTenants": list(tenants),
            "useCases": [{"name": "default", "routes": ["chat", "claude"], **use_case}],
        },
    }
    return [*routes, policy]


@asynccontextmanager
async def inspecting_gateway(
    tmp_path: Path,
    oai: FakeProvider,
    claude: FakeProvider,
    use_case: Json,
    *,
    mode: str = "enforce",
    tenants: Sequence[str] = (),
    extra: Callable[[Services], Sequence[Plugin]] | None = None,
    recorder: Recorder | None = None,
    **settings: Any,
) -> AsyncIterator[Gateway]:
    """A sidecar whose one use case has ``use_case``'s inspection settings."""
    secrets_dir = write_secrets(tmp_path)
    documents = docs(oai, claude, use_case, mode=mode, tenants=tenants)
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_bytes(bundle_bytes(documents))

    def steps(services: Services) -> Sequence[Plugin]:
        plugins = list(default_steps(services))
        if extra is not None:
            plugins += extra(services)
        if recorder is not None:
            plugins.append(recorder)
        return plugins

    config = sidecar_settings(bundle_path, secrets_dir, **settings)
    async with SidecarServer(config, steps=steps) as server:
        yield Gateway(server, oai, claude, bundle_path, documents)
