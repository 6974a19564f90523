"""Fixtures of the governance tests: a real redis-server, bundles built from policy dicts,
a store fixture that runs the same test against memory and Redis state, and a real sidecar
(in-process, loopback) in front of the fake provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from redis.asyncio import Redis

from aigw_contract import Bundle
from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer, SidecarSettings
from aigw_sidecar.governance import MemoryStore, RedisStore, Store, redis_py
from support import NAMESPACE, backend_doc, compile_docs, policy_doc, route_doc
from support.redis import Cluster, RedisServer, SharedRedis, client_tls, make_certificates

Doc = dict[str, Any]
BundleFactory = Callable[..., Bundle]
__all__ = ["NAMESPACE", "RedisServer"]  # re-exported for the tests of this folder
HELLO: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.remove()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (tests that stop and restart it)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.remove()


def counter_values(where: redis.Redis | SharedRedis, part: str) -> list[float]:
    """Levels of the Redis counters whose field contains ``part`` (``:tpm``, ``bu:d:``):
    buckets and budgets are fields of one hash per tenant (see redis_scripts)."""
    if isinstance(where, SharedRedis):
        found: list[float] = []
        for server in where.primaries():
            client = server.client()
            try:
                found += counter_values(client, part)
            finally:
                client.close()
        return found
    values: list[float] = []
    for key in where.keys("aigw:*:c"):
        for name, value in where.hgetall(key).items():
            text = name.decode() if isinstance(name, bytes) else str(name)
            if part in text and text.endswith((".l", ".v")):
                values.append(float(value))
    return values


@pytest.fixture(name="counter_values")
def counter_values_fixture() -> Callable[[redis.Redis | SharedRedis, str], list[float]]:
    """:func:`counter_values`, for tests (this folder is not a package)."""
    return counter_values


def async_client(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedRedis]:
    """A redis-server that speaks only TLS and requires a client certificate."""
    certificates = make_certificates(tmp_path_factory.mktemp("tls"))
    server = RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=certificates)
    server.start()
    yield SharedRedis("tls", server.url, [server], tls=client_tls(certificates))
    server.remove()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedRedis]:
    """A Redis Cluster of three masters on loopback ports."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), masters=3)
    try:
        cluster.start()
        yield SharedRedis("cluster", cluster.url, cluster.nodes, cluster=cluster)
    finally:
        cluster.remove()


@pytest.fixture(params=["single", "cluster", "tls"])
def shared_redis(request: pytest.FixtureRequest) -> SharedRedis:
    """The same test on one redis-server, a Redis Cluster and a TLS redis-server (flushed)."""
    if request.param == "single":
        server: RedisServer = request.getfixturevalue("redis_server")
        shared = SharedRedis("single", server.url, [server])
    elif request.param == "cluster":
        shared = request.getfixturevalue("redis_cluster")
    else:
        shared = request.getfixturevalue("tls_redis")
    shared.flush()
    return shared


@pytest.fixture(params=["memory", "redis", "redis-py", "cluster", "tls"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The same test against each state store: memory, Redis through the lean client,
    Redis through a redis-py client passed in, a Redis Cluster and a TLS Redis."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param in ("cluster", "tls"):
        shared: SharedRedis = request.getfixturevalue(
            f"{'redis_cluster' if request.param == 'cluster' else 'tls_redis'}"
        )
        shared.flush()
        redis_store = RedisStore.from_url(shared.url, tls=shared.tls)
        yield redis_store
        await redis_store.client.aclose()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    if request.param == "redis":
        redis_store = RedisStore.from_url(server.url)
    else:
        redis_store = RedisStore(async_client(server.url), failures=redis_py.FAILURES)
    yield redis_store
    await redis_store.client.aclose()


def route(name: str, input_price: str = "1.00", output_price: str = "2.00") -> Doc:
    pricing = {"inputPerMillionTokensUSD": input_price, "outputPerMillionTokensUSD": output_price}
    main = backend_doc("main", "openai", "http://127.0.0.1:9/v1", "gpt-4o-mini", pricing=pricing)
    del main["weight"]
    return route_doc(name, [main])


def policy(name: str, spec: Doc) -> Doc:
    return policy_doc(name, spec)


def make_bundle(*docs: Doc) -> Bundle:
    """A bundle of these resources, plus routes ``chat`` and ``cheap`` unless given."""
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ModelRoute"}
    extra = [route(n, p, q) for n, p, q in (("chat", "1.00", "2.00"), ("cheap", "0.10", "0.20"))]
    all_docs = list(docs) + [r for r in extra if r["metadata"]["name"] not in names]
    return compile_docs(all_docs, revision=0, generated_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def bundle_of() -> Callable[..., Bundle]:
    """``bundle_of(spec, name=..., routes=...)``: a bundle with one policy (or several docs)."""

    def build(*specs: Doc, routes: tuple[Doc, ...] = ()) -> Bundle:
        docs = [s if "kind" in s else policy(f"p{i}", s) for i, s in enumerate(specs)]
        return make_bundle(*docs, *routes)

    return build


def sidecar_route(name: str, base_url: str, price: str = "1.00") -> dict[str, Any]:
    pricing = {"inputPerMillionTokensUSD": price, "outputPerMillionTokensUSD": price}
    main = backend_doc("main", "openai", base_url, "gpt-4o-mini", pricing=pricing)
    del main["weight"]
    return route_doc(name, [main], retry={"attempts": 1})


class Sidecar:
    def __init__(self, server: SidecarServer, fake: FakeProvider) -> None:
        self.server = server
        self.fake = fake
        self.url = f"http://127.0.0.1:{server.api_port}"
        self.admin = f"http://127.0.0.1:{server.admin_port}"

    async def post(
        self, body: dict[str, Any] | None = None, **headers: str
    ) -> tuple[int, dict[str, str], Any]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.post(
                f"{self.url}/v1/chat/completions",
                json=body or HELLO,
                headers={k.replace("_", "-"): v for k, v in headers.items()},
            ) as response,
        ):
            text = await response.text()
            payload = json.loads(text) if response.content_type == "application/json" else text
            return response.status, dict(response.headers), payload

    async def get(self, path: str) -> str:
        async with aiohttp.ClientSession() as session, session.get(self.admin + path) as r:
            return await r.text()


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("openai") as provider:
        yield provider


@pytest.fixture
def sidecar_with(tmp_path: Path, fake: FakeProvider) -> Callable[..., Any]:
    """``async with sidecar_with(policy_spec, **settings) as sidecar``."""

    def make(spec: dict[str, Any], **settings: Any) -> Any:
        docs = [
            sidecar_route("chat", fake.openai_base_url),
            sidecar_route("cheap", fake.openai_base_url, "0.10"),
            policy_doc("app", spec),
        ]
        bundle = compile_docs(docs)
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle.to_json_bytes())
        values: dict[str, Any] = {
            "bundle_path": path, "port": 0, "admin_port": 0, "admin_host": "127.0.0.1",
            "secrets_dir": tmp_path, "reload_interval_s": 0.05, "drain_timeout_s": 2.0,
            "pod_labels": {"app": "support"}, **settings,
        }  # fmt: skip
        return _Running(SidecarServer(SidecarSettings(**values)), fake)

    return make


class _Running:
    def __init__(self, server: SidecarServer, fake: FakeProvider) -> None:
        self.server = server
        self.fake = fake

    async def __aenter__(self) -> Sidecar:
        await self.server.__aenter__()
        return Sidecar(self.server, self.fake)

    async def __aexit__(self, *exc: object) -> None:
        await self.server.__aexit__(None, None, None)


def use_case(**extra: Any) -> dict[str, Any]:
    return {"name": "reply", "routes": ["chat"], **extra}
