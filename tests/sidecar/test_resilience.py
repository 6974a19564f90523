"""Retries, fallbacks and circuit breakers against the fake provider's real faults.

Each test runs a real sidecar in front of two fake providers: ``bad`` (OpenAI wire format)
misbehaves as told, ``good`` (Anthropic wire format, so every fallback is also a
translation) behaves. The route sends all traffic to ``bad`` and falls back to ``good``
(weight 0). Upstream counts come from the fakes' own records, never from the sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import (
    APP_KEY,
    CANARY_ANTHROPIC,
    CANARY_OPENAI,
    backend,
    bundle_bytes,
    policy,
    route,
    sidecar_settings,
    write_secrets,
)

HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
REQUESTS = 200
CONCURRENCY = 20


@dataclass
class Rig:
    server: SidecarServer
    bad: FakeProvider
    good: FakeProvider
    bundle_path: Path
    docs: list[dict[str, Any]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.api_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.server.admin_port}"

    def client(self, **headers: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=APP_KEY, max_retries=0, default_headers=headers
        )

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(self.admin + path) as r:
            return await (r.json() if path.startswith("/aigw") else r.text())

    async def metric(self, name: str, **labels: str) -> float:
        text = await self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{"):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def resilient_route(bad: FakeProvider, good: FakeProvider, **spec: Any) -> dict[str, Any]:
    spec.setdefault("fallback", ["good"])
    spec.setdefault(
        "retry",
        {
            "attempts": 2,
            "backoffBaseMs": 10,
            "backoffMaxMs": 2000,
            "retryOn": ["rate_limited", "timeout", "upstream_unavailable", "upstream_error"],
        },
    )
    # requestMs is generous for a loaded machine; the hang faults wait longer.
    spec.setdefault("timeouts", {"connectMs": 2000, "requestMs": 2500, "idleMs": 2500})
    spec.setdefault("circuitBreaker", {"consecutiveFailures": 5, "openSeconds": 30})
    return route(
        "chat",
        [
            backend("bad", "openai", bad.openai_base_url, "gpt-4o-mini", key="openai", weight=1),
            backend(
                "good", "anthropic", good.base_url, "claude-haiku-4-5", key="anthropic", weight=0
            ),
        ],
        **spec,
    )


@contextlib.asynccontextmanager
async def running(tmp_path: Path, docs_of: Any) -> AsyncIterator[Rig]:
    async with (
        FakeProvider("openai", api_key=CANARY_OPENAI) as bad,
        FakeProvider("anthropic", api_key=CANARY_ANTHROPIC) as good,
    ):
        docs = docs_of(bad, good)
        docs.append(policy([d["metadata"]["name"] for d in docs]))
        secrets = write_secrets(tmp_path)
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle_bytes(docs))
        async with SidecarServer(sidecar_settings(path, secrets)) as server:
            yield Rig(server, bad, good, path, docs)


@dataclass
class Result:
    ok: bool
    backend: str | None
    attempts: int
    error: BaseException | None = None


async def call(client: openai.AsyncOpenAI, *, stream: bool) -> Result:
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=HELLO, stream=stream
        )
    except openai.APIError as exc:
        response = getattr(exc, "response", None)
        attempts = response.headers.get("x-aigw-attempts", "0") if response is not None else "0"
        return Result(False, None, int(attempts), exc)
    headers = raw.headers
    result = Result(True, headers.get("x-aigw-backend"), int(headers["x-aigw-attempts"]))
    try:
        answer = raw.parse()
        if isinstance(answer, openai.AsyncStream):
            text = "".join([c.choices[0].delta.content or "" async for c in answer if c.choices])
        else:
            text = answer.choices[0].message.content or ""
    except openai.APIError as exc:
        result.ok, result.error = False, exc
        return result
    assert text == "Echo: hello there"
    return result


async def drive(rig: Rig, *, stream: bool = False, n: int = REQUESTS) -> list[Result]:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with rig.client() as client:

        async def one() -> Result:
            async with gate:
                return await call(client, stream=stream)

        return await asyncio.gather(*(one() for _ in range(n)))


PRE_FIRST_BYTE = {
    "503": ({"status": 503}, False),
    "429 with Retry-After": ({"status": 429, "retry_after": "1"}, False),
    "429 with retry-after-ms": ({"status": 429, "retry_after_ms": "800"}, False),
    "429 with x-ratelimit-reset": ({"status": 429, "ratelimit_reset": "900ms"}, False),
    "hang past the timeout": ({"latency_ms": 6000}, False),
    "connection reset": ({"cut_after_chunks": 0}, False),
    "stream cut before the first byte": ({"cut_after_chunks": 0}, True),
    "stream error event before the first byte": ({"error_after_chunks": 0}, True),
    "stream hangs before the first byte": ({"latency_ms": 6000}, True),
}


@pytest.mark.parametrize(("fault", "stream"), PRE_FIRST_BYTE.values(), ids=PRE_FIRST_BYTE.keys())
async def test_faults_before_the_first_byte_never_reach_the_caller(
    tmp_path: Path, fault: dict[str, Any], stream: bool
) -> None:
    async with running(tmp_path, lambda bad, good: [resilient_route(bad, good)]) as rig:
        rig.bad.queue_fault(count=10 * REQUESTS, **fault)
        loop = asyncio.get_running_loop()
        began = loop.time()
        results = await drive(rig, stream=stream)
        took = loop.time() - began
        assert [r.error for r in results if not r.ok] == []  # 0 client-visible errors
        bad, good = len(rig.bad.recorder), len(rig.good.recorder)
        # No retry storm: at most `attempts` per request, and the fallback served every one
        # of them (the bad backend never answered well).
        assert all(r.attempts <= 2 and r.backend == "good" for r in results)
        assert good == REQUESTS
        assert bad == sum(r.attempts for r in results) - REQUESTS
        assert await rig.metric("aigw_upstream_fallbacks_total", from_backend="bad") == bad
        # The bad backend was left alone once it had shown it was failing.
        pause = _asked_pause(fault)
        if pause is None:  # a health failure: the circuit opened after the first wave
            assert bad < REQUESTS / 2
        else:  # a 429 (no health verdict): never called again before its pause was over,
            # so at most one wave of concurrent requests per pause
            assert bad <= CONCURRENCY * (1 + took / pause)


def _asked_pause(fault: dict[str, Any]) -> float | None:
    if fault.get("status") != 429:
        return None
    if "retry_after_ms" in fault:
        return int(fault["retry_after_ms"]) / 1000
    if "ratelimit_reset" in fault:
        return int(fault["ratelimit_reset"].removesuffix("ms")) / 1000
    return float(fault["retry_after"])


async def test_missing_usage_is_no_failure(tmp_path: Path) -> None:
    async with running(tmp_path, lambda bad, good: [resilient_route(bad, good)]) as rig:
        rig.bad.queue_fault(count=REQUESTS, omit_usage=True)
        results = await drive(rig, stream=True)
        assert all(r.ok for r in results)  # a missing usage is no failure: nothing retried
        assert len(rig.bad.recorder) == REQUESTS
        assert sum(r.backend == "bad" for r in results) == REQUESTS - len(rig.good.recorder)
        assert await rig.metric("aigw_tokens_total", backend="bad", kind="completion") > 0


async def test_a_stream_failing_after_its_first_byte_ends_with_a_typed_event(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, lambda bad, good: [resilient_route(bad, good)]) as rig:
        rig.bad.queue_fault(count=10 * REQUESTS, cut_after_chunks=2)
        results = await drive(rig, stream=True)
        failed = [r for r in results if not r.ok]
        # The caller had bytes: no retry, no fallback; the stream ends with an error event.
        assert len(failed) == len(rig.bad.recorder) > 0
        assert all(r.backend == "bad" and r.attempts == 1 for r in failed)
        assert all("cut the stream" in str(r.error) for r in failed)
        # Mid-stream cuts count against the backend: its circuit opened, the rest fell back.
        assert len(rig.bad.recorder) < REQUESTS / 2
        assert all(r.backend == "good" for r in results if r.ok)


async def test_streams_cut_one_after_another_open_the_circuit(tmp_path: Path) -> None:
    # Each stream's head arrives after the previous stream's cut: if a head counted as a
    # success it would reset the run of failures and the circuit would never open.
    async with running(tmp_path, lambda bad, good: [resilient_route(bad, good)]) as rig:
        rig.bad.queue_fault(count=100, cut_after_chunks=2)
        async with rig.client() as client:
            results = [await call(client, stream=True) for _ in range(12)]
        assert len(rig.bad.recorder) == 5  # consecutiveFailures: 5
        assert [r.ok for r in results] == [False] * 5 + [True] * 7
        assert all(r.backend == "good" for r in results[5:])


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"status": 400}, 400), ({"status": 422}, 400), ({"status": 500}, 502)],
    ids=["provider 400", "provider 422", "provider 500 (not in retryOn)"],
)
async def test_non_retryable_classes_fail_fast(
    tmp_path: Path, fault: dict[str, Any], status: int
) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        # The contract's default retryOn: rate_limited, upstream_unavailable, timeout.
        return [resilient_route(bad, good, retry={"attempts": 3})]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(count=20, **fault)
        results = await drive(rig, n=20)
        assert all(not r.ok and r.attempts == 1 for r in results)
        assert {getattr(r.error, "status_code", None) for r in results} == {status}
        assert len(rig.bad.recorder) == 20
        assert len(rig.good.recorder) == 0
        assert await rig.metric("aigw_upstream_retry_stops_total", reason="not_retryable") == 20


async def test_retries_stop_at_attempts(tmp_path: Path) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        return [resilient_route(bad, good, fallback=[], retry={"attempts": 3, "backoffBaseMs": 1})]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(count=100, status=502)
        async with rig.client() as client:
            result = await call(client, stream=False)
        assert not result.ok
        assert result.attempts == 3
        assert len(rig.bad.recorder) == 3  # the same backend three times, no fallback
        stops = await rig.metric("aigw_upstream_retry_stops_total", reason="attempts_exhausted")
        assert stops == 1


async def test_retry_after_is_never_undercut(tmp_path: Path) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        return [resilient_route(bad, good, fallback=[])]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(status=503, retry_after_ms="400")
        async with rig.client() as client:
            result = await call(client, stream=False)
        assert result.ok
        assert result.attempts == 2
        first, second = rig.bad.recorder.exchanges
        assert second.received_at - first.received_at >= 0.4


async def test_a_retry_after_longer_than_backoff_max_ends_retrying(tmp_path: Path) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        return [resilient_route(bad, good, fallback=[])]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(status=429, retry_after="30", count=5)
        async with rig.client() as client:
            first = await call(client, stream=False)
            second = await call(client, stream=False)
        assert isinstance(first.error, openai.RateLimitError)
        assert first.error.response.headers["retry-after"] == "30"
        # The backend asked for 30 s: the next request is not sent to it at all.
        assert isinstance(second.error, openai.RateLimitError)
        assert second.error.code == "backend_backing_off"
        assert int(second.error.response.headers["retry-after"]) in (29, 30)
        assert len(rig.bad.recorder) == 1


async def test_the_deadline_bounds_every_attempt(tmp_path: Path) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        timeouts = {"connectMs": 1000, "requestMs": 60000, "idleMs": 60000}
        return [resilient_route(bad, good, timeouts=timeouts, retry={"attempts": 5})]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(latency_ms=5000, count=5)
        rig.good.queue_fault(latency_ms=5000, count=5)
        loop = asyncio.get_running_loop()
        async with rig.client(**{"X-AIGW-Max-Latency-Ms": "400"}) as client:
            began = loop.time()
            result = await call(client, stream=False)
            took = loop.time() - began
        assert isinstance(result.error, openai.APIStatusError)
        assert result.error.status_code == 504
        # The first attempt used the whole deadline; no attempt started that could not
        # finish in time, so the fallback was never called.
        assert len(rig.bad.recorder) == 1
        assert len(rig.good.recorder) == 0
        assert took < 0.4 + 1.0  # a scheduling margin, not a speed claim: the fakes wait 5 s


async def test_a_fallback_gets_what_is_left_of_the_deadline(tmp_path: Path) -> None:
    async with running(tmp_path, lambda bad, good: [resilient_route(bad, good)]) as rig:
        rig.bad.queue_fault(status=503, count=5)
        rig.good.queue_fault(latency_ms=5000, count=5)
        async with rig.client(**{"X-AIGW-Max-Latency-Ms": "250"}) as client:
            result = await call(client, stream=True)
        assert isinstance(result.error, openai.APIStatusError)
        assert result.error.status_code == 504
        assert result.attempts == 2
        await rig.good.recorder.wait_for(lambda xs: len(xs) == 1 and xs[0].disconnected)


async def test_breaker_opens_then_lets_exactly_one_probe_through(tmp_path: Path) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        breaker = {"consecutiveFailures": 3, "openSeconds": 1}
        return [resilient_route(bad, good, circuitBreaker=breaker)]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(status=502, count=1000)  # 502: no Retry-After, only the breaker
        async with rig.client() as client:
            for _ in range(3):
                assert (await call(client, stream=False)).ok
            assert len(rig.bad.recorder) == 3
            status = await rig.get("/aigw/status")
            (bad,) = [b for b in status["backends"] if b["backend"] == "bad"]
            assert bad["state"] == "open"
            assert bad["consecutiveFailures"] == 3
            # Open: the failing backend receives nothing while it is open.
            results = await asyncio.gather(*(call(client, stream=False) for _ in range(20)))
            assert all(r.ok and r.attempts == 1 and r.backend == "good" for r in results)
            assert len(rig.bad.recorder) == 3
            # Breaker state survives a reload to a new bundle revision.
            rig.bundle_path.write_bytes(bundle_bytes(rig.docs, revision=2))
            await rig.server.store.reload()
            current = rig.server.store.current
            assert current is not None
            assert current.revision == 2
            status = await rig.get("/aigw/status")
            (bad,) = [b for b in status["backends"] if b["backend"] == "bad"]
            assert bad["state"] == "open"
            await asyncio.sleep(1.1)  # openSeconds pass (waiting, not asserting a duration)
            status = await rig.get("/aigw/status")
            (bad,) = [b for b in status["backends"] if b["backend"] == "bad"]
            assert bad["state"] == "half_open"
            # Half-open: exactly one probe among concurrent requests; it fails: open again.
            results = await asyncio.gather(*(call(client, stream=False) for _ in range(20)))
            assert all(r.ok and r.backend == "good" for r in results)
            assert len(rig.bad.recorder) == 4
            assert sum(r.attempts == 2 for r in results) == 1
            more = await asyncio.gather(*(call(client, stream=False) for _ in range(10)))
            assert all(r.attempts == 1 for r in more)
            assert len(rig.bad.recorder) == 4
            # The backend recovers: the next probe closes the circuit and traffic returns.
            rig.bad.faults.clear()
            await asyncio.sleep(1.1)
            back = [await call(client, stream=False) for _ in range(5)]
            assert all(r.ok and r.backend == "bad" and r.attempts == 1 for r in back)
        transitions = {
            state: await rig.metric("aigw_circuit_breaker_transitions_total", state=state)
            for state in ("open", "half_open", "closed")
        }
        assert transitions == {"open": 2, "half_open": 2, "closed": 1}
        assert await rig.metric("aigw_circuit_breaker_state", backend="bad") == 0


async def test_open_circuits_renormalise_weights_and_fail_fast_when_all_are_open(
    tmp_path: Path,
) -> None:
    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        return [
            route(
                "chat",
                [
                    backend(
                        "bad", "openai", bad.openai_base_url, "gpt-4o", key="openai", weight=99
                    ),
                    backend(
                        "next", "anthropic", good.base_url, "claude", key="anthropic", weight=1
                    ),
                ],
                retry={"attempts": 1},
                circuitBreaker={"consecutiveFailures": 1, "openSeconds": 60},
            )
        ]

    async with running(tmp_path, docs) as rig:
        rig.bad.queue_fault(status=502, count=1000)
        async with rig.client() as client:
            for _ in range(20):  # until the 99% backend has failed once
                if len(rig.bad.recorder):
                    break
                await call(client, stream=False)
            assert len(rig.bad.recorder) == 1
            results = await drive(rig, n=50)
            assert all(r.ok and r.backend == "next" for r in results)  # 1% now takes 100%
            assert len(rig.bad.recorder) == 1
            rig.good.queue_fault(status=502)
            await call(client, stream=False)  # the canary fails too: every circuit is open
            served = len(rig.good.recorder)
            refused = await call(client, stream=False)
        assert isinstance(refused.error, openai.APIStatusError)
        assert refused.error.status_code == 503
        assert refused.error.code == "circuit_open"
        assert 1 <= int(refused.error.response.headers["retry-after"]) <= 60
        assert refused.attempts == 0
        assert (len(rig.bad.recorder), len(rig.good.recorder)) == (1, served)


async def test_a_spent_budget_still_falls_back_to_its_route(tmp_path: Path) -> None:
    """onExhausted: fallback reroutes, and the rerouted request still gets retries."""

    def docs(bad: FakeProvider, good: FakeProvider) -> list[dict[str, Any]]:
        economy = resilient_route(bad, good)
        economy["metadata"]["name"] = "economy"
        return [
            route("chat", [backend("x", "openai", bad.openai_base_url, "gpt-4o", key="openai")]),
            economy,
        ]

    async with running(tmp_path, docs) as rig:
        policy_doc = rig.docs[-1]
        policy_doc["spec"]["useCases"][0]["budgets"] = [
            {
                "name": "daily",
                "period": "day",
                "tokens": 1,
                "onExhausted": "fallback",
                "fallbackRoute": "economy",
            }
        ]
        rig.bundle_path.write_bytes(bundle_bytes(rig.docs, revision=2))
        await rig.server.store.reload()
        rig.bad.queue_fault(status=503)
        async with rig.client() as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=HELLO
            )
        assert raw.headers["x-aigw-route"] == "economy"
        assert raw.headers["x-aigw-backend"] == "good"
        assert raw.headers["x-aigw-attempts"] == "2"
