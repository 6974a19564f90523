"""Idempotency-Key through a real sidecar (memory store), the official SDKs as clients.

The fake provider's own request log proves whether upstream was called; the budget counters
in ``/aigw/status`` prove whether a budget was charged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer
from aigw_sidecar.app_keys import PIPELINE
from aigw_sidecar.idempotency import MemoryIdempotencyStore
from aigw_sidecar.steps.idempotency import MAX_RECORD_BYTES, Idempotency

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


@dataclass
class Rig:
    server: SidecarServer
    fake: FakeProvider

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.api_port}"

    def client(self, key: str | None = None) -> openai.AsyncOpenAI:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=APP_KEY, max_retries=0, default_headers=headers
        )

    async def used_tokens(self) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.server.admin_port}/aigw/status") as r,
        ):
            status = await r.json()
        (counter,) = [c for c in status["governance"]["counters"] if "daily" in c["counter"]]
        return int(counter["used"])


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, **idempotency: Any) -> AsyncIterator[Rig]:
    async with FakeProvider("openai", api_key=CANARY_OPENAI) as fake:
        docs = [
            route(
                "chat",
                [backend("main", "openai", fake.openai_base_url, "gpt-4o", key="openai")],
                retry={"attempts": 1},
            ),
            {
                "apiVersion": "aigw.dev/v1alpha1",
                "kind": "AIPolicy",
                "metadata": {"name": "app", "namespace": NAMESPACE},
                "spec": {
                    "useCases": [
                        {
                            "name": "default",
                            "routes": ["chat"],
                            "idempotency": idempotency,
                            "budgets": [{"name": "daily", "period": "day", "tokens": 100000}],
                        }
                    ]
                },
            },
        ]
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle_bytes(docs))
        async with SidecarServer(sidecar_settings(path, write_secrets(tmp_path))) as server:
            yield Rig(server, fake)


async def test_the_same_key_and_body_answer_the_first_result_without_calling_upstream(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r, r.client("order-1234") as client:
        first = await client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        charged = await r.used_tokens()
        again = await client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        assert again.parse().model_dump() == first.parse().model_dump()  # the same id too
        assert again.headers["x-aigw-idempotent-replay"] == "true"
        assert "x-aigw-idempotent-replay" not in first.headers
        assert again.headers["x-aigw-backend"] == "main"
        assert again.headers["x-aigw-attempts"] == "0"
        assert len(r.fake.recorder) == 1
        assert await r.used_tokens() == charged > 0  # no second budget charge
        # A stream is replayed as a stream, chunk for chunk.
        async with r.client("order-5678") as streaming:
            texts = []
            for _ in range(2):
                stream = await streaming.chat.completions.create(
                    model="chat", messages=HELLO, stream=True
                )
                texts.append([c.model_dump() async for c in stream])
        assert texts[0] == texts[1]
        assert len(r.fake.recorder) == 2
        # No key, or another key: a new call.
        async with r.client() as plain:
            await plain.chat.completions.create(model="chat", messages=HELLO)
        assert len(r.fake.recorder) == 3
        # Another end user of the app, same key and body: never this user's answer.
        other = openai.AsyncOpenAI(
            base_url=f"{r.url}/v1", api_key=APP_KEY, max_retries=0,
            default_headers={"Idempotency-Key": "order-1234", "X-AIGW-User": "someone-else"},
        )  # fmt: skip
        async with other:
            theirs = await other.chat.completions.with_raw_response.create(
                model="chat", messages=HELLO
            )
        assert "x-aigw-idempotent-replay" not in theirs.headers
        assert len(r.fake.recorder) == 4


async def test_a_different_body_with_the_same_key_is_422(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, r.client("k-1") as client:
        await client.chat.completions.create(model="chat", messages=HELLO)
        with pytest.raises(openai.UnprocessableEntityError) as reused:
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "something else"}]
            )
        assert reused.value.code == "idempotency_key_reused"
        claude = anthropic.AsyncAnthropic(
            base_url=r.url, api_key=APP_KEY, max_retries=0,
            default_headers={"Idempotency-Key": "k-1"},
        )  # fmt: skip
        async with claude:
            with pytest.raises(anthropic.UnprocessableEntityError):  # another endpoint
                await claude.messages.create(model="chat", max_tokens=20, messages=HELLO)
        assert len(r.fake.recorder) == 1


async def test_disabled_ignores_the_key(tmp_path: Path) -> None:
    async with rig(tmp_path, enabled=False) as r, r.client("k-1") as client:
        for _ in range(2):
            await client.chat.completions.create(model="chat", messages=HELLO)
    assert len(r.fake.recorder) == 2


@pytest.mark.parametrize("in_flight", ["wait", "conflict"])
async def test_in_flight_duplicates_wait_or_conflict(tmp_path: Path, in_flight: str) -> None:
    async with rig(tmp_path, inFlight=in_flight, waitMs=5000) as r, r.client("k-2") as client:
        r.fake.queue_fault(latency_ms=600)
        first = asyncio.create_task(client.chat.completions.create(model="chat", messages=HELLO))
        await r.fake.recorder.wait_for(lambda xs: len(xs) == 1)  # the first is upstream now
        if in_flight == "wait":
            second = await client.chat.completions.create(model="chat", messages=HELLO)
            assert second.model_dump() == (await first).model_dump()
        else:
            with pytest.raises(openai.ConflictError) as busy:
                await client.chat.completions.create(model="chat", messages=HELLO)
            assert busy.value.code == "idempotency_key_in_use"
            await first
    assert len(r.fake.recorder) == 1


async def test_a_bounded_wait_ends_in_409(tmp_path: Path) -> None:
    async with rig(tmp_path, waitMs=100) as r, r.client("k-3") as client:
        r.fake.queue_fault(latency_ms=1500)
        first = asyncio.create_task(client.chat.completions.create(model="chat", messages=HELLO))
        await r.fake.recorder.wait_for(lambda xs: len(xs) == 1)
        with pytest.raises(openai.ConflictError):
            await client.chat.completions.create(model="chat", messages=HELLO)
        await first
    assert len(r.fake.recorder) == 1


@pytest.mark.parametrize("store_failures", [False, True])
async def test_failures_are_kept_only_when_the_policy_says_so(
    tmp_path: Path, store_failures: bool
) -> None:
    async with rig(tmp_path, storeFailures=store_failures) as r, r.client("k-4") as client:
        r.fake.queue_fault(status=400, error_message="max_tokens is too large")
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="chat", messages=HELLO)
        if store_failures:
            with pytest.raises(openai.BadRequestError) as replayed:
                await client.chat.completions.create(model="chat", messages=HELLO)
            assert "max_tokens is too large" in replayed.value.message
            assert replayed.value.response.headers["x-aigw-idempotent-replay"] == "true"
            assert len(r.fake.recorder) == 1
        else:
            await client.chat.completions.create(model="chat", messages=HELLO)  # runs again
            assert len(r.fake.recorder) == 2
        # A 503 is never kept: it means "try later".
        async with r.client("k-5") as other:
            r.fake.queue_fault(status=503, retry_after="0")
            with pytest.raises(openai.InternalServerError):
                await other.chat.completions.create(model="chat", messages=HELLO)
            await other.chat.completions.create(model="chat", messages=HELLO)


async def test_a_result_is_kept_for_ttl_seconds(tmp_path: Path) -> None:
    async with rig(tmp_path, ttlSeconds=1) as r, r.client("k-6") as client:
        await client.chat.completions.create(model="chat", messages=HELLO)
        await client.chat.completions.create(model="chat", messages=HELLO)
        assert len(r.fake.recorder) == 1
        await asyncio.sleep(1.2)  # the TTL passes (waiting, not asserting a duration)
        await client.chat.completions.create(model="chat", messages=HELLO)
    assert len(r.fake.recorder) == 2


@pytest.mark.parametrize(
    "value", ["", "spaced out", '"unterminated', "x" * 256, "a,b", '"quote"inside"']
)
async def test_malformed_keys_are_typed_400s(tmp_path: Path, value: str) -> None:
    async with rig(tmp_path) as r, r.client(value) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model="chat", messages=HELLO)
    assert bad.value.code == "invalid_header"
    assert len(r.fake.recorder) == 0


async def test_a_repeated_key_header_is_refused(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, aiohttp.ClientSession() as session:
        headers = [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
        body = {"model": "chat", "messages": HELLO}
        async with session.post(
            f"{r.url}/v1/chat/completions", json=body, headers=headers
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "duplicate_header"
    assert len(r.fake.recorder) == 0


def _pieces(count: int, size: int) -> list[str]:
    """``count`` stream pieces of ``size`` characters of prose (words, so the redaction
    window releases them as they come)."""
    word = "lorem ipsum dolor sit amet "
    return [(word * (size // len(word) + 1))[:size] for _ in range(count)]


async def test_a_huge_streamed_answer_is_not_kept_and_recording_stays_bounded(
    tmp_path: Path,
) -> None:
    """A caller that makes the answer huge (a long stream under an Idempotency-Key) gets it
    whole, but the sidecar holds at most the bound while recording it (the shared recorder
    drops what it held at the bound, mid-stream), stores only a small not-kept record, and a
    duplicate is a 409 that runs nothing; a stream under the bound still replays exactly."""
    async with rig(tmp_path) as r:
        (step,) = [s for s in r.server.api[PIPELINE].steps if isinstance(s, Idempotency)]
        store = step.store
        assert isinstance(store, MemoryIdempotencyStore)
        # Under the bound (256 KiB): recorded, stored and replayed chunk for chunk.
        async with r.client("ok-stream") as client:
            r.fake.queue_fault(reply_pieces=_pieces(32, 8 << 10))
            runs = []
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model="chat", messages=HELLO, stream=True
                )
                runs.append([c.model_dump() async for c in stream])
        assert runs[0] == runs[1]
        assert (
            sum(len(c["choices"][0]["delta"].get("content") or "") for c in runs[0] if c["choices"])
            == 32 << 13
        )
        assert len(r.fake.recorder) == 1
        assert 256 << 10 <= step.recording.peak <= MAX_RECORD_BYTES
        assert step.recording.held == 0  # given back once stored
        stored = store.bytes
        assert stored > 256 << 10  # the replayable record
        # Past the bound (4 MiB): the caller gets every byte; the recorder lets go mid-stream.
        async with r.client("huge-stream") as client:
            r.fake.queue_fault(reply_pieces=_pieces(64, 64 << 10))
            stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
            received = 0
            held_past_the_bound = []
            async for chunk in stream:
                if chunk.choices:
                    received += len(chunk.choices[0].delta.content or "")
                if received > 2 * MAX_RECORD_BYTES:  # the sidecar recorded before it sent
                    held_past_the_bound.append(step.recording.held)
            assert received == 64 << 16
            assert held_past_the_bound
            assert set(held_past_the_bound) == {0}
            assert step.recording.peak <= MAX_RECORD_BYTES  # one batch past it is never taken
            assert store.bytes - stored < 1024  # only the not-kept record
            # The duplicate is answered without running (and charging) it again.
            with pytest.raises(openai.ConflictError) as again:
                await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
            assert again.value.code == "idempotency_result_not_kept"
            assert again.value.response.headers["x-aigw-idempotent-replay"] == "true"
        assert len(r.fake.recorder) == 2
        assert step.recording.held == 0
