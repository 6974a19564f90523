"""Fixtures: fake providers on loopback, a bundle naming them, and a real sidecar in front.

The sidecar runs in-process (``SidecarServer`` on free loopback ports). Provider keys are
canary values written where the kubelet would mount the Secret; tests assert they reach the
fake provider and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer, SidecarSettings
from support import NAMESPACE, backend_doc, bundle_bytes, policy_doc, route_doc, wait_until

CANARY_OPENAI = "sk-canary-openai-5b1e0d9f"
CANARY_ANTHROPIC = "sk-ant-canary-77c2a4e1"
APP_KEY = "app-key-must-not-travel"
HELLO_BODY: dict[str, Any] = {
    "model": "chat",
    "messages": [{"role": "user", "content": "hello there"}],
}


backend = backend_doc
route = route_doc
__all__ = ["NAMESPACE", "backend", "bundle_bytes", "route"]  # re-exported from support


def policy(routes: list[str]) -> dict[str, Any]:
    """The one AIPolicy of these tests: use case ``default`` granting ``routes``."""
    return policy_doc("app", {"useCases": [{"name": "default", "routes": routes}]})


@dataclass
class Gateway:
    """A running sidecar and the fakes behind it."""

    server: SidecarServer
    oai_fake: FakeProvider
    claude_fake: FakeProvider
    bundle_path: Path
    docs: list[dict[str, Any]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.api_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.server.admin_port}"

    def openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=APP_KEY, max_retries=0, **kwargs
        )

    def anthropic(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=APP_KEY, max_retries=0, **kwargs)

    def write_bundle(self, data: bytes) -> None:
        tmp = self.bundle_path.with_name(".bundle.tmp")
        tmp.write_bytes(data)
        tmp.replace(self.bundle_path)

    async def status(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.admin_url}/aigw/status") as response,
        ):
            result: dict[str, Any] = await response.json()
            return result

    async def wait_status(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll /aigw/status until ``predicate`` holds (bounded, never a timed assertion)."""

        async def probe() -> dict[str, Any] | None:
            status = await self.status()
            return status if predicate(status) else None

        return await wait_until("/aigw/status to match", probe)

    async def wait_revision(self, revision: int) -> dict[str, Any]:
        return await self.wait_status(lambda s: s["bundle"]["revision"] == revision)


def standard_docs(oai: FakeProvider, claude: FakeProvider) -> list[dict[str, Any]]:
    docs = [
        route(
            "chat", [backend("primary", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")]
        ),
        route(
            "claude",
            [backend("sonnet", "anthropic", claude.base_url, "claude-sonnet-4-5", key="anthropic")],
        ),
        route(
            "azure",
            [
                backend(
                    "westeurope",
                    "azure-openai",
                    oai.base_url,
                    "gpt-4o",
                    key="openai",
                    api_version="2024-10-21",
                )
            ],
        ),
        route(
            "embed",
            [
                backend(
                    "small", "openai", oai.openai_base_url, "text-embedding-3-small", key="openai"
                )
            ],
        ),
        route(
            "slow",
            [backend("primary", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")],
            timeouts={"connectMs": 1000, "requestMs": 200, "idleMs": 200},
            retry={"attempts": 1},  # the timeout itself reaches the caller
        ),
    ]
    docs.append(
        route(
            "local",
            [backend("vllm", "openai-compatible", oai.openai_base_url, "llama-3.1-8b")],
        )
    )
    docs.append(
        route(
            "canary",
            [
                backend("stable", "openai", oai.openai_base_url, "gpt-4o", key="openai", weight=3),
                backend("next", "openai", oai.openai_base_url, "gpt-4.1", key="openai", weight=1),
                backend("spare", "openai", oai.openai_base_url, "gpt-4o", key="openai", weight=0),
            ],
        )
    )
    docs.append(policy([d["metadata"]["name"] for d in docs]))
    return docs


def write_secrets(root: Path) -> Path:
    secrets = root / "secrets" / "provider-keys"
    secrets.mkdir(parents=True)
    (secrets / "openai").write_text(CANARY_OPENAI + "\n")
    (secrets / "anthropic").write_text(CANARY_ANTHROPIC)
    return root / "secrets"


@pytest.fixture
async def oai_fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("openai", api_key=CANARY_OPENAI) as fake:
        yield fake


@pytest.fixture
async def claude_fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("anthropic", api_key=CANARY_ANTHROPIC) as fake:
        yield fake


def sidecar_settings(bundle_path: Path, secrets_dir: Path, **overrides: Any) -> SidecarSettings:
    values: dict[str, Any] = {
        "bundle_path": bundle_path,
        "port": 0,
        "admin_port": 0,
        "admin_host": "127.0.0.1",
        "secrets_dir": secrets_dir,
        "reload_interval_s": 0.02,
        "drain_timeout_s": 5.0,
        "seed": 7,
        "max_body_bytes": 100_000,
    }
    values.update(overrides)
    return SidecarSettings(**values)


@pytest.fixture
async def gateway(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[Gateway]:
    secrets_dir = write_secrets(tmp_path)
    docs = standard_docs(oai_fake, claude_fake)
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_bytes(bundle_bytes(docs))
    async with SidecarServer(sidecar_settings(bundle_path, secrets_dir)) as server:
        assert server.store.current is not None
        yield Gateway(server, oai_fake, claude_fake, bundle_path, docs)
