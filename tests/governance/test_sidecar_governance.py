"""Governance through a real sidecar (in-process) in front of the fake provider.

Enforce blocks with the right error type, status and Retry-After; observe and warn never
block and record each decision; responses carry warning and remaining-budget headers;
streams without usage, failed calls and spent budgets are accounted; /aigw/status and
/metrics show it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from aigw_sidecar.governance import EstimateCounter

from .conftest import HELLO, use_case

Post = Callable[..., Any]


async def test_enforce_refuses_ungranted_claims_and_routes(sidecar_with: Any) -> None:
    spec = {"tenant": "acme", "useCases": [use_case()]}
    async with sidecar_with(spec) as sidecar:
        status, headers, body = await sidecar.post()
        assert status == 200
        assert "X-AIGW-Warning" not in headers
        status, _, body = await sidecar.post(X_AIGW_Tenant="globex")
        assert (status, body["error"]["type"], body["error"]["code"]) == (
            403, "permission_denied", "tenant_not_granted",
        )  # fmt: skip
        status, _, body = await sidecar.post({**HELLO, "model": "cheap"})
        assert (status, body["error"]["code"]) == (403, "route_not_allowed")


async def test_rate_limit_429_with_retry_after(sidecar_with: Any) -> None:
    spec = {"useCases": [use_case(rateLimits={"requestsPerMinute": 2})]}
    async with sidecar_with(spec) as sidecar:
        for _ in range(2):
            assert (await sidecar.post())[0] == 200
        status, headers, body = await sidecar.post()
        assert (status, body["error"]["type"]) == (429, "rate_limited")
        assert 1 <= int(headers["Retry-After"]) <= 30
        assert len(sidecar.fake.recorder.exchanges) == 2  # the refused one never went out


async def test_budget_headers_exhaustion_and_status(sidecar_with: Any) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 250}
    spec = {"useCases": [use_case(budgets=[budget])]}
    async with sidecar_with(spec) as sidecar:
        status, headers, body = await sidecar.post({**HELLO, "max_tokens": 100})
        assert status == 200
        remaining = int(headers["X-AIGW-Budget-Remaining-Tokens"])
        used = body["usage"]["total_tokens"]
        assert remaining == 250 - used  # settled to the provider's usage before the answer
        for _ in range(100):  # each call uses ~10 tokens, each reservation needs 111
            status, headers, body = await sidecar.post({**HELLO, "max_tokens": 100})
            if status != 200:
                break
        assert (status, body["error"]["type"]) == (429, "budget_exceeded")
        assert int(headers["Retry-After"]) >= 1
        status_doc = json.loads(await sidecar.get("/aigw/status"))
        (row,) = [
            r for r in status_doc["governance"]["counters"] if r["counter"] == "budget:daily:tokens"
        ]
        assert row["limit"] == 250
        assert 0 <= row["remaining"] < 111  # 111 = one reservation (11 prompt + 100)


async def test_max_tokens_clamped_and_cost_limit(sidecar_with: Any) -> None:
    spec = {"useCases": [use_case(limits={"maxTokens": 50, "maxCostUSD": "0.001"})]}
    async with sidecar_with(spec) as sidecar:
        assert (await sidecar.post({**HELLO, "max_tokens": 5000}))[0] == 200
        assert sidecar.fake.recorder.last.body["max_tokens"] == 50
        status, _, body = await sidecar.post(X_AIGW_Max_Cost_USD="0.00000001")
        assert (status, body["error"]["type"]) == (400, "cost_limit_exceeded")


@pytest.mark.parametrize("mode", ["observe", "warn"])
async def test_observe_and_warn_never_block_and_record(sidecar_with: Any, mode: str) -> None:
    spec = {
        "mode": mode,
        "useCases": [use_case(rateLimits={"requestsPerMinute": 1}, tools=[])],
    }
    async with sidecar_with(spec) as sidecar:
        tool_body = {**HELLO, "tools": [{"type": "function", "function": {"name": "rm"}}]}
        for body in (HELLO, HELLO, tool_body):
            status, headers, _ = await sidecar.post(body)
            assert status == 200
        assert ("X-AIGW-Warning" in headers) is (mode == "warn")
        verdict = "warned" if mode == "warn" else "observed"
        metrics = await sidecar.get("/metrics")
        assert (
            f'aigw_limit_events_total{{counter="requests_per_minute",verdict="{verdict}"}} 2.0'
            in metrics
        )
        assert f'step="authorize",verdict="{verdict}"' in metrics


async def test_stream_without_usage_is_counted(sidecar_with: Any) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 100_000}
    async with sidecar_with({"useCases": [use_case(budgets=[budget])]}) as sidecar:
        sidecar.fake.queue_fault(omit_usage=True)
        body = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
        status, _, text = await sidecar.post(body)
        assert status == 200
        assert '"usage"' not in text
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
        pieces = [c["delta"].get("content") for e in events for c in e["choices"]]
        counted = sum(EstimateCounter().count(p) for p in pieces if p)
        assert counted > 0
        status_doc = json.loads(await sidecar.get("/aigw/status"))
        (row,) = [r for r in status_doc["governance"]["counters"] if r["unit"] == "tokens"]
        prompt_estimate = 4 + 4 + 3  # "hello there": 11 bytes -> 4, framing 4, priming 3
        assert row["used"] == prompt_estimate + counted


async def test_failed_call_releases_its_reservation(sidecar_with: Any) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 100_000}
    async with sidecar_with({"useCases": [use_case(budgets=[budget])]}) as sidecar:
        sidecar.fake.queue_fault(status=500)
        status, _, _ = await sidecar.post()
        assert status >= 500
        status_doc = json.loads(await sidecar.get("/aigw/status"))
        assert status_doc["governance"]["counters"][0]["used"] == 0


async def test_spent_budget_degrades_to_the_fallback_route(sidecar_with: Any) -> None:
    budget = {
        "name": "monthly", "period": "month", "costUSD": "0.000001",
        "onExhausted": "fallback", "fallbackRoute": "cheap",
    }  # fmt: skip
    async with sidecar_with({"useCases": [use_case(budgets=[budget])]}) as sidecar:
        status, headers, _ = await sidecar.post({**HELLO, "max_tokens": 5000})
        assert status == 200
        assert headers["X-AIGW-Route"] == "cheap"
        assert headers["X-AIGW-Budget-Remaining-USD"].startswith("0.000000")


async def test_redis_down_fails_closed_through_the_sidecar(
    sidecar_with: Any, own_redis: Any
) -> None:
    spec = {"failMode": "closed", "useCases": [use_case(rateLimits={"requestsPerMinute": 100})]}
    async with sidecar_with(spec, redis_url=own_redis.url) as sidecar:
        assert (await sidecar.post())[0] == 200
        own_redis.stop()
        status, headers, body = await sidecar.post()
        assert (status, body["error"]["type"], headers["Retry-After"]) == (
            503, "upstream_unavailable", "1",
        )  # fmt: skip
        metrics = await sidecar.get("/metrics")
        assert (
            'aigw_state_unavailable_total{operation="reserve",outcome="fail_closed"} 1.0' in metrics
        )
        own_redis.start()
        statuses = set()
        for _ in range(400):  # the store probes Redis again after its 0.5 s back-off
            statuses.add((await sidecar.post())[0])
            if 200 in statuses:
                break
            await asyncio.sleep(0.025)
        assert 200 in statuses


async def test_answer_without_usage_is_counted(sidecar_with: Any) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 100_000}
    async with sidecar_with({"useCases": [use_case(budgets=[budget])]}) as sidecar:
        sidecar.fake.queue_fault(omit_usage=True)
        status, _, body = await sidecar.post()
        assert status == 200
        text = body["choices"][0]["message"]["content"]
        status_doc = json.loads(await sidecar.get("/aigw/status"))
        (row,) = [r for r in status_doc["governance"]["counters"] if r["unit"] == "tokens"]
        assert row["used"] == 4 + 4 + 3 + EstimateCounter().count(text)


async def test_embeddings_reserve_no_output(sidecar_with: Any) -> None:
    budget = {"name": "daily", "period": "day", "tokens": 40}
    spec = {"useCases": [use_case(budgets=[budget], limits={"maxTokens": 10})]}
    async with sidecar_with(spec) as sidecar, aiohttp.ClientSession() as session:
        body = {"model": "chat", "input": "hello there"}
        async with session.post(f"{sidecar.url}/v1/embeddings", json=body) as response:
            assert response.status == 200
            # Only the input was reserved (4 tokens), never an output bound; settled to the
            # provider's 2.
            assert response.headers["X-AIGW-Budget-Remaining-Tokens"] == str(40 - 2)
        assert "max_tokens" not in sidecar.fake.recorder.last.body


async def test_an_exact_tokenizer_that_is_not_installed_falls_back_to_the_estimate(
    sidecar_with: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if importlib.util.find_spec("bpe_openai") is not None:
        pytest.skip("bpe-openai is installed here")
    async with sidecar_with({"useCases": [use_case()]}, tokenizer="o200k_base") as sidecar:
        assert (await sidecar.post())[0] == 200
    assert "using the conservative estimate" in caplog.text


async def test_with_redis_a_stream_without_usage_is_counted_in_the_background(
    sidecar_with: Any, redis_server: Any
) -> None:
    redis_server.flush()
    budget = {"name": "daily", "period": "day", "tokens": 100_000}
    spec = {"useCases": [use_case(budgets=[budget])]}
    async with sidecar_with(spec, redis_url=redis_server.url) as sidecar:
        sidecar.fake.queue_fault(omit_usage=True)
        status, _, text = await sidecar.post({**HELLO, "stream": True})
        assert status == 200
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
        pieces = [c["delta"].get("content") for e in events for c in e["choices"]]
        expected = 4 + 4 + 3 + sum(EstimateCounter().count(p) for p in pieces if p)
        used = None
        for _ in range(400):  # the settlement runs in the background: poll, bounded
            status_doc = json.loads(await sidecar.get("/aigw/status"))
            assert status_doc["governance"]["state"] == "redis"
            (row,) = [r for r in status_doc["governance"]["counters"] if r["unit"] == "tokens"]
            used = row["used"]
            if used == expected:
                break
            await asyncio.sleep(0.025)
        assert used == expected
