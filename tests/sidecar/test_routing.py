"""Intent routing (family, quality tier, region) and residency, through a real sidecar.

Three fake providers stand for three places: ``us`` and ``eu`` (OpenAI wire format, keyed)
and ``local`` (a self-hosted OpenAI-compatible server, no key). Which fake received a
request is the proof of where data went; the sidecar's headers are only cross-checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import (
    APP_KEY,
    CANARY_OPENAI,
    NAMESPACE,
    backend,
    bundle_bytes,
    route,
    sidecar_settings,
    write_secrets,
)

HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
ALL_CLASSES = ["public", "internal", "confidential", "restricted"]


@dataclass
class Places:
    us: FakeProvider
    eu: FakeProvider
    local: FakeProvider
    server: SidecarServer

    def client(self, **headers: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{self.server.api_port}/v1",
            api_key=APP_KEY,
            max_retries=0,
            default_headers=headers,
        )

    def counts(self) -> tuple[int, int, int]:
        return len(self.us.recorder), len(self.eu.recorder), len(self.local.recorder)


def _docs(us: FakeProvider, eu: FakeProvider, local: FakeProvider) -> list[dict[str, Any]]:
    retry = {"attempts": 3, "backoffBaseMs": 1, "retryOn": ["upstream_unavailable"]}
    routes = [
        route(
            "chat",
            [
                {
                    **backend("us1", "openai", us.openai_base_url, "gpt-4o", key="openai"),
                    "region": "us",
                },
                {
                    **backend(
                        "eu1", "openai", eu.openai_base_url, "gpt-4o", key="openai", weight=0
                    ),
                    "region": "eu",
                },
                {
                    **backend(
                        "self", "openai-compatible", local.openai_base_url, "llama", weight=0
                    ),
                    "region": "eu",
                },
            ],
            intent={"family": "general", "qualityTier": "standard", "regions": ["us"]},
            fallback=["eu1", "self"],
            retry=retry,
        ),
        route(
            "chat-premium",
            [
                {
                    **backend("p", "openai", us.openai_base_url, "gpt-4.1", key="openai"),
                    "region": "us",
                }
            ],
            intent={"family": "general", "qualityTier": "premium", "regions": ["us"]},
        ),
        route(
            "chat-cheap",
            [
                {
                    **backend("c", "openai", eu.openai_base_url, "gpt-4o-mini", key="openai"),
                    "region": "eu",
                }
            ],
            intent={"family": "general", "qualityTier": "cheap", "regions": ["eu"]},
        ),
        route(
            "other",
            [backend("o", "openai", us.openai_base_url, "gpt-4o", key="openai")],
            intent={"family": "other-family"},
        ),
    ]
    names = ["chat", "chat-premium", "chat-cheap"]
    policy = {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": "app", "namespace": NAMESPACE},
        "spec": {
            "useCases": [
                {"name": "default", "routes": names, "qualityTier": "standard",
                 "dataClassifications": ALL_CLASSES},
                {"name": "explore", "routes": names, "dataClassifications": ALL_CLASSES},
            ],
            "residency": [
                {"name": "eu-only", "dataClassifications": ["restricted", "confidential"],
                 "regions": ["eu"]},
                {"name": "self-hosted", "dataClassifications": ["confidential"],
                 "providers": ["openai-compatible"]},
            ],
        },
    }  # fmt: skip
    return [*routes, policy]


@contextlib.asynccontextmanager
async def places(tmp_path: Path) -> AsyncIterator[Places]:
    async with (
        FakeProvider("openai", api_key=CANARY_OPENAI) as us,
        FakeProvider("openai", api_key=CANARY_OPENAI) as eu,
        FakeProvider("openai") as local,
    ):
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle_bytes(_docs(us, eu, local)))
        async with SidecarServer(sidecar_settings(path, write_secrets(tmp_path))) as server:
            yield Places(us, eu, local, server)


async def _ask(client: openai.AsyncOpenAI, model: str = "chat") -> tuple[str, str, str]:
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    assert raw.parse().choices[0].message.content == "Echo: hello there"
    return (
        raw.headers["x-aigw-route"],
        raw.headers["x-aigw-backend"],
        raw.headers["x-aigw-attempts"],
    )


async def test_restricted_data_never_reaches_a_backend_outside_its_regions(tmp_path: Path) -> None:
    async with places(tmp_path) as p:
        async with p.client() as internal:
            assert await _ask(internal) == ("chat", "us1", "1")  # no rule for internal data
        assert p.counts() == (1, 0, 0)
        async with p.client(**{"X-AIGW-Data-Classification": "restricted"}) as restricted:
            # The primary is in the US: restricted data starts at the first EU fallback.
            assert await _ask(restricted) == ("chat", "eu1", "1")
            # The EU backend fails: the fallback stays in the EU, never the US primary.
            p.eu.queue_fault(status=503, retry_after="0", count=100)
            assert await _ask(restricted) == ("chat", "self", "2")
            p.local.queue_fault(status=503, retry_after="0", count=100)
            with pytest.raises(openai.InternalServerError) as failed:
                await _ask(restricted)
            assert failed.value.status_code == 503
            # A route with no EU backend at all: refused, naming the rule, nothing called.
            before = p.counts()
            with pytest.raises(openai.PermissionDeniedError) as denied:
                await _ask(restricted, "chat-premium")
            assert denied.value.code == "residency_denied"
            assert "eu-only" in denied.value.message
            assert p.counts() == before
        assert p.counts()[0] == 1  # the US fake only ever saw the internal request


async def test_a_provider_rule_keeps_data_on_self_hosted_backends(tmp_path: Path) -> None:
    async with places(tmp_path) as p:
        async with p.client(**{"X-AIGW-Data-Classification": "confidential"}) as client:
            for _ in range(5):  # eu-only and self-hosted both apply: only the local server
                assert await _ask(client) == ("chat", "self", "1")
            p.local.queue_fault(status=503, retry_after="0", count=100)
            with pytest.raises(openai.InternalServerError):
                await _ask(client)
        assert p.counts() == (0, 0, 8)  # 5 answers + 3 attempts of the failing one


async def test_region_header_keeps_every_attempt_in_the_region(tmp_path: Path) -> None:
    async with places(tmp_path) as p:
        async with p.client(**{"X-AIGW-Region": "eu"}) as client:
            assert await _ask(client) == ("chat", "eu1", "1")
            p.eu.queue_fault(status=503, retry_after="0", count=100)
            assert await _ask(client) == ("chat", "self", "2")
        assert p.counts()[0] == 0
        async with p.client(**{"X-AIGW-Region": "ap-south"}) as nowhere:
            with pytest.raises(openai.PermissionDeniedError) as denied:
                await _ask(nowhere)
        assert denied.value.code == "region_unavailable"
        assert p.counts()[0] == 0


async def test_quality_tier_selects_among_the_use_case_routes(tmp_path: Path) -> None:
    async with places(tmp_path) as p:
        async with p.client() as default:  # the use case's qualityTier: standard
            assert (await _ask(default, "general"))[0] == "chat"
        for tier, expected in (("premium", "chat-premium"), ("cheap", "chat-cheap")):
            async with p.client(**{"X-AIGW-Quality-Tier": tier}) as tiered:
                assert (await _ask(tiered, "general"))[0] == expected
        async with p.client(**{"X-AIGW-Quality-Tier": "gold"}) as gold:
            with pytest.raises(openai.BadRequestError) as unknown:
                await _ask(gold, "general")
        assert unknown.value.code == "quality_tier_unavailable"
        assert "chat-cheap (tier cheap)" in unknown.value.message
        async with p.client(**{"X-AIGW-Quality-Tier": "premium"}) as mismatch:
            with pytest.raises(openai.BadRequestError) as named:
                await _ask(mismatch, "chat")  # a named route is never silently swapped
        assert named.value.code == "quality_tier_mismatch"
        async with p.client(**{"X-AIGW-Use-Case": "explore"}) as explore:  # no default tier
            with pytest.raises(openai.BadRequestError) as ambiguous:
                await _ask(explore, "general")
        assert ambiguous.value.code == "ambiguous_route"
        for name in ("chat (tier standard)", "chat-premium (tier premium)", "chat-cheap"):
            assert name in ambiguous.value.message
        async with p.client() as client:  # a family the use case has no route of
            with pytest.raises(openai.PermissionDeniedError) as other:
                await _ask(client, "other-family")
        assert other.value.code == "route_not_allowed"


async def test_region_header_picks_the_route_serving_it(tmp_path: Path) -> None:
    async with places(tmp_path) as p:
        explore = {"X-AIGW-Use-Case": "explore"}
        async with p.client(**explore, **{"X-AIGW-Region": "eu"}) as eu:
            assert await _ask(eu, "general") == ("chat-cheap", "c", "1")
        async with p.client(**explore, **{"X-AIGW-Region": "us"}) as us:
            with pytest.raises(openai.BadRequestError) as ambiguous:  # chat and chat-premium
                await _ask(us, "general")
        assert "chat-cheap" not in ambiguous.value.message
        headers = {**explore, "X-AIGW-Region": "us", "X-AIGW-Quality-Tier": "premium"}
        async with p.client(**headers) as premium:
            assert await _ask(premium, "general") == ("chat-premium", "p", "1")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-AIGW-Quality-Tier": "a b"},
        {"X-AIGW-Region": "x" * 64},
        {"X-AIGW-Region": "eu,us"},
        {"Idempotency-Key": ""},
    ],
)
async def test_bad_intent_headers_are_typed_400s(tmp_path: Path, headers: dict[str, str]) -> None:
    async with places(tmp_path) as p, p.client(**headers) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await _ask(client, "general")
    assert bad.value.code == "invalid_header"
    assert p.counts() == (0, 0, 0)
