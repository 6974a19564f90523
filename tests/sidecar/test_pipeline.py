"""The step interface: extra steps plug into the real sidecar without touching it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import (
    Json,
    Key,
    PermissionDenied,
    Phase,
    Plugin,
    RequestContext,
    RuntimeConfig,
    Services,
    SidecarServer,
    Step,
    StreamTransform,
    chunk_text,
    default_steps,
    with_text,
)
from aigw_sidecar.app_keys import PIPELINE
from support.probes import Journal, Probe

from .conftest import (
    Gateway,
    bundle_bytes,
    route,
    sidecar_settings,
    standard_docs,
    write_secrets,
)

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


ROUTES = Key[dict[str, list[str]]]("test.shout.routes")


class Upper(StreamTransform):
    async def feed(self, batch: list[Json]) -> list[Json]:
        return [with_text(c, chunk_text(c).upper()) if chunk_text(c) else c for c in batch]


class Shout(Step):
    """Upper-cases streamed text and answers; refuses requests from tenant 'blocked'."""

    name = "shout"
    phase = Phase.ROUTE + 1

    def __init__(self) -> None:
        self.finished: list[str] = []

    def prepare(self, config: RuntimeConfig) -> None:
        if config.revision == 13:
            raise ValueError("revision 13 is unlucky")
        config.prepared[ROUTES] = {"routes": sorted(config.routes)}

    async def on_request(self, ctx: RequestContext) -> None:
        assert ctx.config.prepared[ROUTES] == {"routes": sorted(ctx.config.routes)}
        if ctx.headers.get("X-AIGW-Tenant") == "blocked":
            raise PermissionDenied("tenant 'blocked' may not call models", code="tenant_denied")

    def stream_transform(self, ctx: RequestContext) -> StreamTransform:
        return Upper()

    async def on_response(self, ctx: RequestContext) -> None:
        if ctx.response is not None:
            message = ctx.response["choices"][0]["message"]
            message["content"] = message["content"].upper()

    async def on_finish(self, ctx: RequestContext) -> None:
        self.finished.append(type(ctx.error).__name__ if ctx.error else "ok")


@pytest.fixture
async def shouting(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[tuple[Gateway, Shout]]:
    shout = Shout()

    def steps(services: Services) -> Sequence[Plugin]:
        return [*default_steps(services), shout]

    docs = standard_docs(oai_fake, claude_fake)
    # Governance (always in the pipeline) must let "blocked" through for this step to judge it.
    docs[-1]["spec"]["additionalTenants"] = ["blocked"]
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(docs))
    settings = sidecar_settings(path, write_secrets(tmp_path))
    async with SidecarServer(settings, steps=steps) as server:
        yield Gateway(server, oai_fake, claude_fake, path, docs), shout


async def test_a_step_sees_requests_chunks_answers_and_the_end(
    shouting: tuple[Gateway, Shout],
) -> None:
    gateway, shout = shouting
    async with gateway.openai() as client:
        completion = await client.chat.completions.create(model="chat", messages=HELLO)
        assert completion.choices[0].message.content == "ECHO: HELLO THERE"
        stream = await client.chat.completions.create(model="claude", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "ECHO: HELLO THERE"
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await client.chat.completions.create(
                model="chat", messages=HELLO, extra_headers={"X-AIGW-Tenant": "blocked"}
            )
    assert denied.value.code == "tenant_denied"
    assert shout.finished == ["ok", "ok", "PermissionDenied"]
    assert len(gateway.oai_fake.recorder) == 1  # the denied request never went upstream


async def test_a_step_that_refuses_a_bundle_keeps_the_last_good_one(
    shouting: tuple[Gateway, Shout],
) -> None:
    gateway, _ = shouting
    gateway.write_bundle(bundle_bytes(gateway.docs, revision=13))
    status = await gateway.wait_status(lambda s: s["loadsFailed"] == 1)
    assert "revision 13 is unlucky" in status["lastReloadError"]["message"]
    assert status["bundle"]["revision"] == 1
    gateway.write_bundle(bundle_bytes(gateway.docs, revision=14))
    await gateway.wait_revision(14)


SWITCH_ROUTE = "loud"
"""The route whose presence in the bundle turns :class:`Switch` on."""


class Switch(Probe):
    """Can act only under a bundle with the route ``loud``."""

    name = "switch"
    phase = Phase.INSPECT

    def active(self, config: RuntimeConfig) -> bool:
        return SWITCH_ROUTE in config.routes


class Gate(Probe):
    """Before the switch: holds a request carrying ``X-Test-Gate`` until released; refuses
    one carrying ``X-Test-Refuse``."""

    name = "gate"
    phase = Phase.ROUTE + 1

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def on_request(self, ctx: RequestContext) -> None:
        await super().on_request(ctx)
        if "X-Test-Gate" in ctx.headers:
            self.entered.set()
            await self.release.wait()


class Refuse(Probe):
    """After the switch: refuses a request carrying ``X-Test-Refuse``."""

    name = "refuse"
    phase = Phase.LIMIT + 10

    async def on_request(self, ctx: RequestContext) -> None:
        await super().on_request(ctx)
        if "X-Test-Refuse" in ctx.headers:
            raise PermissionDenied("refused by the test", code="test_refused")


class Inner(Probe):
    """After the refusing step: never reached by a refused request."""

    name = "inner"
    phase = Phase.ANSWER + 10


@dataclass
class Switched:
    gateway: Gateway
    journal: Journal
    gate: Gate

    def active(self) -> tuple[str, ...]:
        config = self.gateway.server.store.current
        assert config is not None
        return self.gateway.server.api[PIPELINE].active(config)

    async def switch_on(self) -> None:
        docs = [*self.gateway.docs, route(SWITCH_ROUTE, self.gateway.docs[0]["spec"]["backends"])]
        self.gateway.write_bundle(bundle_bytes(docs, revision=2))
        await self.gateway.wait_revision(2)


@pytest.fixture
async def switched(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> AsyncIterator[Switched]:
    journal = Journal()
    gate = Gate(journal)

    def steps(services: Services) -> Sequence[Plugin]:
        return [*default_steps(services), gate, Switch(journal), Refuse(journal), Inner(journal)]

    docs = standard_docs(oai_fake, claude_fake)
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(docs))
    settings = sidecar_settings(path, write_secrets(tmp_path))
    async with SidecarServer(settings, steps=steps) as server:
        yield Switched(Gateway(server, oai_fake, claude_fake, path, docs), journal, gate)


async def test_an_inactive_step_is_skipped_until_a_reload_turns_it_on(switched: Switched) -> None:
    journal = switched.journal
    assert "switch" not in switched.active()
    async with switched.gateway.openai() as client:
        await client.chat.completions.create(model="chat", messages=HELLO)
        stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
        assert [c async for c in stream]
    assert journal.of("switch") == []
    assert journal.of("inner") == [
        "on_request", "on_response", "on_finish",
        "on_request", "stream_transform", "on_response", "on_finish",
    ]  # fmt: skip

    await switched.switch_on()
    assert "switch" in switched.active()
    async with switched.gateway.openai() as client:
        await client.chat.completions.create(model="chat", messages=HELLO)
        stream = await client.chat.completions.create(model="chat", messages=HELLO, stream=True)
        assert [c async for c in stream]
    assert journal.of("switch") == [
        "on_request", "on_response", "on_finish",
        "on_request", "stream_transform", "on_response", "on_finish",
    ]  # fmt: skip


async def test_unwinding_covers_only_the_steps_reached(switched: Switched) -> None:
    journal = switched.journal
    refuse = {"X-Test-Refuse": "1"}
    async with switched.gateway.openai() as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="chat", messages=HELLO, extra_headers=refuse)
        await switched.switch_on()
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="chat", messages=HELLO, extra_headers=refuse)
    assert journal.of("inner") == []  # never reached: not one hook, not even on_finish
    assert journal.of("refuse") == ["on_request", "on_finish"] * 2
    assert journal.of("switch") == ["on_request", "on_finish"]  # the second bundle only
    assert journal.of("gate") == ["on_request", "on_finish"] * 2


async def test_a_request_keeps_the_walk_of_the_bundle_it_started_with(
    switched: Switched,
) -> None:
    async with switched.gateway.openai() as client:
        call = asyncio.create_task(
            client.chat.completions.create(
                model="chat", messages=HELLO, extra_headers={"X-Test-Gate": "1"}
            )
        )
        await switched.gate.entered.wait()
        await switched.switch_on()  # swapped in while the request is in the gate
        switched.gate.release.set()
        await call
    assert switched.journal.of("switch") == []  # neither its on_finish nor its on_response
    assert switched.journal.of("inner") == ["on_request", "on_response", "on_finish"]


@pytest.mark.parametrize(
    ("use_case", "inactive"),
    [
        ({}, {"cache", "cache.answer"}),  # the defaults redact secrets and check injections
        (
            {
                "redaction": {"profile": "off"},
                "promptInjection": {"mode": "off"},
                "idempotency": {"enabled": False},
            },
            {"cache", "cache.answer", "inspect", "inspect-answer", "idempotency"},
        ),
        (
            {
                "redaction": {"profile": "off"},
                "promptInjection": {"mode": "off"},
                "tools": ["lookup"],
                "cache": {"exact": {"enabled": True}},
            },
            set(),
        ),
    ],
)
async def test_the_builtin_steps_a_bundle_turns_off_are_inactive(
    tmp_path: Path,
    oai_fake: FakeProvider,
    claude_fake: FakeProvider,
    use_case: dict[str, Any],
    inactive: set[str],
) -> None:
    docs = standard_docs(oai_fake, claude_fake)
    docs[-1]["spec"]["useCases"][0].update(use_case)
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(docs))
    async with SidecarServer(sidecar_settings(path, write_secrets(tmp_path))) as server:
        config = server.store.current
        assert config is not None
        pipeline = server.api[PIPELINE]
        active = set(pipeline.active(config))
        assert {s.name for s in pipeline.steps} - active == inactive
        assert {"admit", "limit", "account", "route", "residency", "telemetry.metrics"} <= active
