"""Hot reload of the mounted bundle: good swaps, refused bundles, and reloads under load."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import (
    CANARY_OPENAI,
    HELLO_BODY,
    Gateway,
    backend,
    bundle_bytes,
    policy,
    route,
    sidecar_settings,
    standard_docs,
    write_secrets,
)


def kubelet_publish(volume: Path, data: bytes, generation: int) -> None:
    """Publish like the kubelet's AtomicWriter: a timestamped dir, then swap ``..data``."""
    target = volume / f"..2026_11_27_08_00_{generation:02d}.000000001"
    target.mkdir()
    (target / "bundle.json").write_bytes(data)
    tmp_link = volume / "..data_tmp"
    tmp_link.symlink_to(target.name)
    tmp_link.replace(volume / "..data")
    link = volume / "bundle.json"
    if not link.is_symlink():
        link.symlink_to("..data/bundle.json")


async def _revision(gateway: Gateway) -> Any:
    return (await gateway.status())["bundle"]["revision"]


async def test_kubelet_symlink_swap(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    volume = tmp_path / "bundle"
    volume.mkdir()
    docs = standard_docs(oai_fake, claude_fake)
    kubelet_publish(volume, bundle_bytes(docs, revision=1), 1)
    settings = sidecar_settings(volume / "bundle.json", write_secrets(tmp_path))
    async with SidecarServer(settings) as server:
        gateway = Gateway(server, oai_fake, claude_fake, volume / "bundle.json", docs)
        assert await _revision(gateway) == 1
        extra = route(
            "extra",
            [backend("b", "openai", oai_fake.openai_base_url, "gpt-4o", key="openai")],
        )
        new_docs = [*docs[:-1], extra, policy(["chat", "extra"])]
        kubelet_publish(volume, bundle_bytes(new_docs, revision=2), 2)
        status = await gateway.wait_status(lambda s: s["bundle"]["revision"] == 2)
        assert "extra" in status["bundle"]["routes"]
        assert status["lastReloadError"] is None
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{gateway.url}/v1/chat/completions", json=HELLO_BODY) as r,
        ):
            assert r.status == 200
            assert r.headers["X-AIGW-Policy-Version"].startswith("2.")


def _corrupt(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _invalid_policy(data: bytes) -> bytes:
    raw = json.loads(data)
    raw["policies"][0]["mode"] = "yolo"
    return json.dumps(raw).encode()


def _unknown_format(data: bytes) -> bytes:
    raw = json.loads(data)
    raw["formatVersion"] = 99
    return json.dumps(raw).encode()


def _hash_mismatch(data: bytes) -> bytes:
    raw = json.loads(data)
    raw["routes"][0]["backends"][0]["model"] = "gpt-tampered"
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (_corrupt, "InvalidBundle: bundle is not JSON"),
        (_invalid_policy, "InvalidBundle"),
        (_unknown_format, "UnsupportedBundleFormat: bundle formatVersion 99"),
        (_hash_mismatch, "does not match its content"),
        (lambda data: b"\xff\xfe" + data, "InvalidBundle"),
    ],
)
async def test_bad_bundles_are_refused_and_the_last_good_one_stays(
    gateway: Gateway, breaker: Any, expected: str
) -> None:
    good = gateway.bundle_path.read_bytes()
    gateway.write_bundle(breaker(bundle_bytes(gateway.docs, revision=5)))
    status = await gateway.wait_status(lambda s: s["loadsFailed"] == 1)
    assert expected in status["lastReloadError"]["message"]
    assert status["bundle"]["revision"] == 1
    assert status["ready"] is True
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.url}/v1/chat/completions", json=HELLO_BODY) as r:
            assert r.status == 200
            assert r.headers["X-AIGW-Policy-Version"].startswith("1.")
        async with session.get(f"{gateway.admin_url}/metrics") as r:
            metrics = await r.text()
    assert 'aigw_bundle_reloads_total{result="failed"} 1.0' in metrics
    assert "aigw_bundle_revision 1.0" in metrics
    # A good bundle afterwards is taken, and the error stays visible as history.
    gateway.write_bundle(bundle_bytes(gateway.docs, revision=6))
    status = await gateway.wait_status(lambda s: s["bundle"]["revision"] == 6)
    assert status["loadsOk"] == 2
    assert good != gateway.bundle_path.read_bytes()


async def test_not_ready_without_a_bundle_then_ready(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    path = tmp_path / "bundle.json"
    settings = sidecar_settings(path, write_secrets(tmp_path))
    async with SidecarServer(settings) as server, aiohttp.ClientSession() as session:
        admin = f"http://127.0.0.1:{server.admin_port}"
        api = f"http://127.0.0.1:{server.api_port}"
        async with session.get(f"{admin}/readyz") as r:
            assert r.status == 503
        async with session.post(f"{api}/v1/chat/completions", json=HELLO_BODY) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["code"] == "no_bundle_loaded"
        async with session.get(f"{admin}/healthz") as r:
            assert r.status == 200
        path.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
        async with asyncio.timeout(10):
            while True:
                async with session.get(f"{admin}/readyz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.02)


async def test_fifty_reloads_under_steady_traffic(gateway: Gateway) -> None:
    """50 bundle swaps (alternating symlink-free replace and rewrite) with zero failures."""
    failures: list[str] = []
    done = asyncio.Event()
    served = 0

    async def client(session: aiohttp.ClientSession, stream: bool) -> None:
        nonlocal served
        body = {**HELLO_BODY, "stream": stream}
        while not done.is_set():
            async with session.post(f"{gateway.url}/v1/chat/completions", json=body) as r:
                text = await r.text()
                complete = "[DONE]" in text if stream else "Echo: hello there" in text
                if r.status != 200 or not complete:
                    failures.append(f"{r.status}: {text[:200]}")
                served += 1

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(client(session, i % 2 == 1)) for i in range(4)]
        for revision in range(2, 52):
            gateway.write_bundle(bundle_bytes(gateway.docs, revision=revision))
            await gateway.wait_revision(revision)
        done.set()
        await asyncio.gather(*tasks)
    status = await gateway.status()
    assert failures == []
    assert status["loadsOk"] == 51
    assert status["loadsFailed"] == 0
    assert served > 50


async def test_plain_replacement_in_place(gateway: Gateway) -> None:
    """An in-place rewrite (same inode) is seen too."""
    with gateway.bundle_path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(bundle_bytes(gateway.docs, revision=9))
    os.utime(gateway.bundle_path, ns=(1, 10**18))
    await gateway.wait_status(lambda s: s["bundle"]["revision"] == 9)


async def test_rotated_credential_is_picked_up_without_a_new_bundle(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    """The kubelet swaps a Secret's ``..data`` too: the sidecar reloads with the new key."""
    secrets = tmp_path / "secrets"
    volume = secrets / "provider-keys"
    volume.mkdir(parents=True)

    def publish(generation: int, openai_key: str) -> None:
        target = volume / f"..2026_11_27_{generation:02d}"
        target.mkdir()
        (target / "openai").write_text(openai_key)
        (target / "anthropic").write_text("sk-ant-unused")
        tmp_link = volume / "..data_tmp"
        tmp_link.symlink_to(target.name)
        tmp_link.replace(volume / "..data")
        for key in ("openai", "anthropic"):
            if not (volume / key).is_symlink():
                (volume / key).symlink_to(f"..data/{key}")

    publish(1, "sk-old-key")
    docs = standard_docs(oai_fake, claude_fake)
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(docs))
    async with (
        SidecarServer(sidecar_settings(path, secrets)) as server,
        aiohttp.ClientSession() as session,
    ):
        gateway = Gateway(server, oai_fake, claude_fake, path, docs)
        url = f"{gateway.url}/v1/chat/completions"
        async with session.post(url, json=HELLO_BODY) as r:
            assert r.status == 502  # the fake wants CANARY_OPENAI
        assert oai_fake.recorder.last.header("authorization") == "Bearer sk-old-key"
        publish(2, CANARY_OPENAI)
        await gateway.wait_status(lambda s: s["loadsOk"] == 2)
        async with session.post(url, json=HELLO_BODY) as r:
            assert r.status == 200
        assert (await gateway.status())["bundle"]["revision"] == 1
