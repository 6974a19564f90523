"""The step interface: extra steps plug into the real sidecar without touching it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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

from .conftest import Gateway, bundle_bytes, sidecar_settings, standard_docs, write_secrets

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
