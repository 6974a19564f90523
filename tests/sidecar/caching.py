"""Builders for the cache tests: a real sidecar on a policy whose use cases cache, the
fake providers behind it, and readers of what the cache decided and counted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import Phase, RequestContext, Services, SidecarServer, Step, default_steps
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

TENANT = "team-a"
OTHER_TENANT = "team-b"


def cached_use_case(
    name: str,
    *,
    exact: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    **cache: Any,
) -> dict[str, Any]:
    """A use case calling ``chat``/``chat-b``/``claude``/``embed`` with the exact cache on;
    ``cache``: more of its ``cache`` settings, ``extra``: more use-case fields."""
    return {
        "name": name,
        "routes": ["chat", "claude", "embed", "chat-b"],
        "dataClassifications": ["public", "internal", "confidential", "restricted"],
        "redaction": {"profile": "off"},
        "promptInjection": {"mode": "off"},
        "cache": {"exact": {"enabled": True, "ttlSeconds": 600, **(exact or {})}, **cache},
        **(extra or {}),
    }


def cache_docs(
    oai: FakeProvider, claude: FakeProvider, use_cases: list[dict[str, Any]], **spec: Any
) -> list[dict[str, Any]]:
    """Routes ``chat`` (and ``chat-b``, same backend), ``claude``, ``embed`` and one policy."""
    docs = [
        route(
            "chat", [backend("primary", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")]
        ),
        route(
            "chat-b",
            [backend("primary", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")],
        ),
        route(
            "claude",
            [backend("sonnet", "anthropic", claude.base_url, "claude-sonnet-4-5", key="anthropic")],
        ),
        route(
            "embed",
            [
                backend(
                    "small", "openai", oai.openai_base_url, "text-embedding-3-small", key="openai"
                )
            ],
        ),
    ]
    docs.append(
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "AIPolicy",
            "metadata": {"name": "app", "namespace": NAMESPACE},
            "spec": {
                "tenant": TENANT,
                "additionalTenants": [OTHER_TENANT],
                "useCases": use_cases,
                **spec,
            },
        }
    )
    return docs


class Decisions(Step):
    """The outermost plug-in step: keeps each request's cache decisions and outcome."""

    name = "test-cache-decisions"
    phase = Phase.OBSERVE

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    async def on_finish(self, ctx: RequestContext) -> None:
        cache = [(d.action, d.code) for d in ctx.decisions if d.step == "cache"]
        self.calls.append((ctx.cache, cache))


@contextlib.asynccontextmanager
async def cache_gateway(
    tmp: Path,
    oai: FakeProvider,
    claude: FakeProvider,
    use_cases: list[dict[str, Any]],
    *,
    recorder: Decisions | None = None,
    spec: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Gateway]:
    """An in-process sidecar on a policy with ``use_cases``."""
    docs = cache_docs(oai, claude, use_cases, **(spec or {}))
    bundle = tmp / "bundle.json"
    bundle.write_bytes(bundle_bytes(docs))
    secrets = tmp / "secrets"
    if not secrets.exists():
        write_secrets(tmp)

    def steps(services: Services) -> list[Plugin]:
        extra: list[Plugin] = [recorder] if recorder is not None else []
        return [*default_steps(services), *extra]

    config = sidecar_settings(bundle, secrets, pod_namespace=NAMESPACE, **settings)
    async with SidecarServer(config, steps=steps) as server:
        assert server.store.current is not None
        yield Gateway(server, oai, claude, bundle, docs)


async def metrics_text(gateway_admin_url: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway_admin_url}/metrics") as response,
    ):
        return await response.text()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
