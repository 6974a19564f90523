"""The sidecar in a fleet: bundle format 2 from a kubelet-laid volume, model aliases through
the official SDKs, and the ``/aigw/rollout`` report the operator polls."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai

from aigw_contract import compile_bundle, parse_documents
from aigw_contract.codec import encode_bundle
from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import (
    APP_KEY,
    NAMESPACE,
    Gateway,
    backend,
    policy,
    route,
    sidecar_settings,
    write_secrets,
)


def _files(docs: list[dict[str, Any]], revision: int, **encode: Any) -> dict[str, bytes]:
    text = "\n---\n".join(json.dumps(d) for d in docs).encode()
    parsed, problems = parse_documents(text, "test")
    assert not problems, problems
    bundle = compile_bundle(
        [d.resource for d in parsed],
        namespace=NAMESPACE,
        generated_at=datetime(2026, 11, 27, tzinfo=UTC),
        revision=revision,
        format_version=2,
    )
    return dict(encode_bundle(bundle, **encode).files)


def kubelet_publish(volume: Path, files: dict[str, bytes], generation: int) -> None:
    """Publish several keys like the kubelet's AtomicWriter: one ``..data`` swap for all."""
    target = volume / f"..2026_11_27_09_00_{generation:02d}.000000001"
    target.mkdir()
    for name, data in files.items():
        (target / name).write_bytes(data)
    tmp_link = volume / "..data_tmp"
    tmp_link.symlink_to(target.name)
    tmp_link.replace(volume / "..data")
    for name in files:
        link = volume / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def _docs(oai: FakeProvider, aliases: list[str]) -> list[dict[str, Any]]:
    primary = backend("primary", "openai", oai.openai_base_url, "gpt-4o-mini", key="openai")
    return [route("chat", [primary], modelAliases=aliases), policy(["chat"])]


async def _rollout(gateway: Gateway) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.admin_url}/aigw/rollout") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


async def test_format_2_sharded_bundle_loads_and_aliases_resolve(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    volume = tmp_path / "bundle"
    volume.mkdir()
    docs = _docs(oai_fake, ["gpt-4.1-mini", "Org/Model-1.5"])
    kubelet_publish(volume, _files(docs, 1, part_bytes=300), 1)
    assert len(list(volume.glob("part-*.gz"))) > 1  # really sharded
    settings = sidecar_settings(
        volume / "bundle.json", write_secrets(tmp_path), pod_name="app-1", pod_namespace=NAMESPACE
    )
    async with SidecarServer(settings) as server:
        gateway = Gateway(server, oai_fake, claude_fake, volume / "bundle.json", docs)
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=APP_KEY, max_retries=0)
        async with client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}]
            )
            # The alias resolves to the route, which the policy grants by its own name.
            assert raw.headers["X-AIGW-Route"] == "chat"
            assert raw.headers["X-AIGW-Policy-Version"].startswith("1.")
            listed = {m.id async for m in client.models.list()}
            assert listed == {"chat", "gpt-4.1-mini", "Org/Model-1.5"}
        # The app's own key never travels: the fake saw only the mounted canary.
        exchanges = oai_fake.recorder.exchanges
        assert exchanges
        assert all(APP_KEY not in json.dumps(e.to_json()) for e in exchanges)
        report = await _rollout(gateway)
        assert report["pod"] == {"namespace": NAMESPACE, "name": "app-1"}
        assert report["serving"]["revision"] == 1
        assert report["serving"]["formatVersion"] == 2
        assert report["lastRefused"] is None


async def test_a_refused_bundle_is_reported_and_the_last_good_one_serves(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    volume = tmp_path / "bundle"
    volume.mkdir()
    docs = _docs(oai_fake, [])
    good = _files(docs, 4)
    kubelet_publish(volume, good, 1)
    settings = sidecar_settings(volume / "bundle.json", write_secrets(tmp_path))
    async with SidecarServer(settings) as server:
        gateway = Gateway(server, oai_fake, claude_fake, volume / "bundle.json", docs)
        future = json.loads(_files(docs, 5)["bundle.json"]) | {"formatVersion": 9}
        kubelet_publish(volume, {**good, "bundle.json": json.dumps(future).encode()}, 2)
        status = await gateway.wait_status(lambda s: s["loadsFailed"] == 1)
        assert status["bundle"]["revision"] == 4
        report = await _rollout(gateway)
        assert report["serving"]["revision"] == 4
        refused = report["lastRefused"]
        assert refused["revision"] == 5
        assert refused["formatVersion"] == 9
        assert "formatVersion 9 is not supported" in refused["reason"]
        assert refused["at"] >= report["serving"]["loadedAt"]
        # A part of another revision beside a good envelope: refused whole, still serving 4.
        newer = _files(_docs(oai_fake, ["x"]), 6)
        kubelet_publish(volume, {**newer, "part-0.gz": good["part-0.gz"]}, 3)
        await gateway.wait_status(lambda s: s["loadsFailed"] == 2)
        report = await _rollout(gateway)
        assert report["serving"]["revision"] == 4
        assert report["lastRefused"]["revision"] == 6
        assert "does not match the envelope" in report["lastRefused"]["reason"]
