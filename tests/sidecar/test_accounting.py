"""One usage and money model through the real sidecar: the cost header, the cost metric and
the budget charge agree to the nano-dollar; an answer without provider usage is costed with
its output; prompt-cache reads and writes are priced at their own prices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer
from aigw_sidecar.governance import format_usd

from .conftest import Gateway, bundle_bytes, policy, route, sidecar_settings, write_secrets

WORDS = "one two three four five six seven"  # the fake: 7 words + 1 message = 8 prompt tokens
PRICING = {
    "inputPerMillionTokensUSD": "1.00",  # 1,000 nano-USD per token
    "outputPerMillionTokensUSD": "2.00",  # 2,000
    "cachedInputPerMillionTokensUSD": "0.10",  # 100
    "cacheWritePerMillionTokensUSD": "1.25",  # 1,250
}


def _backend(name: str, provider: str, url: str, model: str, key: str) -> dict[str, Any]:
    return {
        "name": name, "provider": provider, "model": model, "baseURL": url, "pricing": PRICING,
        "credentialSecretRef": {"name": "provider-keys", "key": key},
    }  # fmt: skip


@dataclass
class Priced:
    gateway: Gateway

    async def _get(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway.admin_url}{path}") as response,
        ):
            return await (response.json() if path.startswith("/aigw") else response.text())

    async def spent(self) -> str:
        status = await self._get("/aigw/status")
        (row,) = [r for r in status["governance"]["counters"] if r["counter"].endswith(":usd")]
        used: str = row["used"]
        return used

    async def cost_metric(self, route_name: str) -> float:
        for line in (await self._get("/metrics")).splitlines():
            if line.startswith("aigw_cost_usd_total{") and f'route="{route_name}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def post(self, body: dict[str, Any], **headers: str) -> tuple[dict[str, str], Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.gateway.url}/v1/chat/completions", json=body,
                         headers=headers) as response,
        ):  # fmt: skip
            assert response.status == 200, await response.text()
            return dict(response.headers), await response.json()


@pytest.fixture
async def priced(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[Priced]:
    docs = [
        route("chat", [_backend("main", "openai", oai_fake.openai_base_url, "gpt-4o", "openai")]),
        route("claude", [_backend("main", "anthropic", claude_fake.base_url, "claude-x",
                                  "anthropic")]),
        policy(["chat", "claude"]),
    ]  # fmt: skip
    docs[-1]["spec"]["useCases"][0]["budgets"] = [
        {"name": "money", "period": "day", "costUSD": "100"}
    ]
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(docs))
    async with SidecarServer(sidecar_settings(path, write_secrets(tmp_path))) as server:
        yield Priced(Gateway(server, oai_fake, claude_fake, path, docs))


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": WORDS}], **extra}


async def test_cached_prompt_tokens_are_priced_as_cache_reads(priced: Priced) -> None:
    priced.gateway.oai_fake.queue_fault(cached_tokens=5)
    headers, body = await priced.post(_chat("chat"))
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (8, 8)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 5
    expected = 3 * 1_000 + 5 * 100 + 8 * 2_000  # plain input, cache reads, output
    assert headers["X-AIGW-Cost-USD"] == format_usd(expected)
    assert await priced.spent() == format_usd(expected)
    assert await priced.cost_metric("chat") == pytest.approx(expected / 1e9)


async def test_anthropic_cache_reads_and_writes_have_their_prices(priced: Priced) -> None:
    priced.gateway.claude_fake.queue_fault(cached_tokens=4, cache_write_tokens=2)
    headers, body = await priced.post(_chat("claude"))
    assert body["usage"]["prompt_tokens"] == 8
    expected = 2 * 1_000 + 4 * 100 + 2 * 1_250 + 8 * 2_000
    assert headers["X-AIGW-Cost-USD"] == format_usd(expected)
    assert await priced.spent() == format_usd(expected)

    # The same through a stream: the budget is charged the same, at the same prices.
    priced.gateway.claude_fake.queue_fault(cached_tokens=4, cache_write_tokens=2)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{priced.gateway.url}/v1/chat/completions",
                     json=_chat("claude", stream=True)) as response,
    ):  # fmt: skip
        await response.read()
    assert await priced.spent() == format_usd(2 * expected)
    assert await priced.cost_metric("claude") == pytest.approx(2 * expected / 1e9)


async def test_an_answer_without_usage_is_costed_with_its_output(priced: Priced) -> None:
    priced.gateway.oai_fake.queue_fault(omit_usage=True)
    headers, body = await priced.post(_chat("chat"))
    assert "usage" not in body
    answer = body["choices"][0]["message"]["content"]
    assert answer == "Echo: " + WORDS  # 39 bytes: 13 tokens by ceil(bytes / 3)
    prompt = 4 + 11 + 3  # message framing, 33 bytes of text, reply priming: the estimate
    expected = prompt * 1_000 + 13 * 2_000
    assert headers["X-AIGW-Cost-USD"] == format_usd(expected)  # not the prompt alone
    assert await priced.spent() == format_usd(expected)
