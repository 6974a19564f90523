"""A table of hostile requests, each a typed 4xx or a correct answer; never a 5xx, a
traceback or a hang; on both state stores (this pod's memory and a real redis-server).

The sidecar under test governs with a concurrency limit of 1, a requests-per-minute limit
and a daily token budget, so every request that gets past its edge reserves and settles in
the store. Requests go over raw sockets (framing, encodings and headers exactly as written,
repeats included); each one is bounded in time. After the table the sidecar must serve a
normal call (a leaked lease would refuse it: concurrency 1), and its log must hold no error.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aigw_contract import compile_bundle, parse_documents
from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer, SidecarSettings

NAMESPACE = "team-a"
CHAT = b"/v1/chat/completions"
EMBED = b"/v1/embeddings"
MESSAGES = b"/v1/messages"
WAIT = 15.0
"""Longest a case may take before it counts as a hang."""
USER = [{"role": "user", "content": "hi"}]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def chat(**fields: Any) -> bytes:
    return _json({"model": "chat", "messages": USER, **fields})


def deep(depth: int) -> bytes:
    """A chat body nested ``depth`` levels in all (the body object is one of them)."""
    inner = "[" * (depth - 2) + "1" + "]" * (depth - 2)
    return chat(metadata={"m": "X"}).replace(b'"X"', inner.encode())


def request(
    path: bytes = CHAT,
    body: bytes | None = None,
    headers: tuple[bytes, ...] = (),
    *,
    method: bytes = b"POST",
    version: bytes = b"HTTP/1.1",
    length: bool = True,
) -> bytes:
    """One raw request (``Connection: close``, so the answer ends with the connection)."""
    body = chat() if body is None else body
    lines = [method + b" " + path + b" " + version, b"Host: 127.0.0.1", b"Connection: close"]
    lines += [b"Content-Type: application/json", *headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass(frozen=True)
class Case:
    """``data`` is sent as is (a callable sends in its own way); the answer's status must be
    in ``ok`` (default: 200 or any 4xx) and, when ``code`` is set, its error code is that."""

    id: str
    data: bytes | Callable[[int], Awaitable[bytes]]
    ok: frozenset[int] = frozenset({200, *range(400, 500)})
    code: str | None = None


def case(
    id: str,
    data: bytes | Callable[[int], Awaitable[bytes]],
    *statuses: int,
    code: str | None = None,
) -> Case:
    return Case(id, data, frozenset(statuses) if statuses else Case.ok, code)


async def _exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        answer = b""
        while chunk := await reader.read(65536):
            answer += chunk
        return answer
    except ConnectionError:
        return b"HTTP/1.1 499 reset\r\n\r\n"
    finally:
        writer.close()


async def _truncated(port: int) -> bytes:
    """Content-Length 1000, 20 bytes, then the caller stops sending (half-close): a 400, or
    the connection closed without an answer (the caller ended it), never a hang."""
    data = request(body=b'{"model": "chat", "m', headers=(), length=False)
    data = data.replace(b"\r\n\r\n", b"\r\nContent-Length: 1000\r\n\r\n", 1)
    return await _exchange(port, data, half_close=True) or b"HTTP/1.1 499 caller-ended\r\n\r\n"


def _stalled(port: int) -> Awaitable[bytes]:
    """Content-Length 1000, 20 bytes, then silence: the body timeout answers 408."""
    data = request(body=b'{"model": "chat", "m', length=False)
    return _exchange(port, data.replace(b"\r\n\r\n", b"\r\nContent-Length: 1000\r\n\r\n", 1))


async def _silent(port: int) -> bytes:
    """A connection that sends nothing is closed by the idle timeout."""
    answer = await _exchange(port, b"")
    assert answer == b""
    return b"HTTP/1.1 408 closed-silently\r\n\r\n"


async def _trickled(port: int) -> bytes:
    """A request head sent one byte every 50 ms is closed by the idle timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = request()[:120]

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        assert await reader.read() == b""
    finally:
        sender.cancel()
        writer.close()
    return b"HTTP/1.1 408 closed-while-trickling\r\n\r\n"


async def _disconnects(port: int) -> bytes:
    """A caller that goes away while the upstream is thinking: its lease must be released
    (the next cases would otherwise hit the concurrency limit of 1)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(body=chat(stream=True)))
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")  # the 200 of the stream: then go away
    writer.close()
    return b"HTTP/1.1 200 went-away\r\n\r\n"


def _gzip_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    return compressor.compress(b"\0" * 50_000_000) + compressor.flush()


CASES = [
    # -- framing --------------------------------------------------------------------------
    case("valid-baseline", request(), 200),
    case("truncated-body", _truncated, 400, 408, 499),
    case("stalled-body", _stalled, 408, code="body_timeout"),
    case("silent-connection", _silent, 408),
    case("trickled-head", _trickled, 408),
    case("client-goes-away-mid-stream", _disconnects, 200),
    case("chunked-and-length", request(headers=(b"Transfer-Encoding: chunked",)), 400),
    case(
        "bad-chunk-size",
        request(
            body=b"zz\r\n{}\r\n0\r\n\r\n", headers=(b"Transfer-Encoding: chunked",), length=False
        ),
        400,
    ),
    case(
        "chunked-valid",
        request(
            body=b"%x\r\n" % len(chat()) + chat() + b"\r\n0\r\n\r\n",
            headers=(b"Transfer-Encoding: chunked",),
            length=False,
        ),
        200,
    ),
    case(
        "transfer-encoding-gzip",
        request(headers=(b"Transfer-Encoding: gzip",), length=False),
        400,
        411,
        501,
    ),
    case(
        "negative-length",
        request(length=False).replace(b"\r\n\r\n", b"\r\nContent-Length: -5\r\n\r\n", 1),
        400,
    ),
    case("two-lengths", request(headers=(b"Content-Length: 3",)), 400),
    case("http-1.0", request(version=b"HTTP/1.0"), 200),
    case("absolute-form-target", request(path=b"http://evil.example/v1/chat/completions")),
    case("huge-path", request(path=b"/v1/" + b"a" * 20_000), 400),
    case("get-with-body", request(method=b"GET"), 405),
    case("options", request(method=b"OPTIONS", body=b""), 405),
    case("unknown-method", request(method=b"BREW"), 400, 405),
    case("nul-in-path", request(path=b"/v1/chat\0/completions"), 400, 404),
    case("dot-segments", request(path=b"/v1/../v1/chat/completions"), 200, 404),
    case("query-string", request(path=CHAT + b"?debug=1"), 200),
    case("expect-continue", request(headers=(b"Expect: 100-continue",)), 200),
    case("expect-unknown", request(headers=(b"Expect: 200-ok",)), 417, code="expectation_failed"),
    case("encoded-slash", request(path=b"/v1/chat%2Fcompletions"), 404, code="unknown_endpoint"),
    case("trailing-slash", request(path=CHAT + b"/"), 404, code="unknown_endpoint"),
    case(
        "pipelined-garbage",
        request(length=False).replace(
            b"\r\n\r\n", b"\r\nContent-Length: %d\r\n\r\n" % len(chat()), 1
        )
        + b"GARBAGE\r\n\r\n",
        200,
        400,  # aiohttp answers a batch whose second request is garbage with one 400
    ),
    case("bare-lf", request().replace(b"\r\n", b"\n"), 400),
    case("obs-fold", request(headers=(b"X-AIGW-User: alice", b" continued")), 400),
    case("header-without-colon", request(headers=(b"X-AIGW-User alice",)), 400),
    case("too-many-headers", request(headers=tuple(b"X-H-%d: v" % i for i in range(150))), 400),
    # -- encodings ------------------------------------------------------------------------
    case("gzip-on-plain", request(headers=(b"Content-Encoding: gzip",)), 400),
    case("deflate-on-plain", request(headers=(b"Content-Encoding: deflate",)), 400),
    case("br-unsupported", request(headers=(b"Content-Encoding: br",)), 400),
    case("zstd-unsupported", request(headers=(b"Content-Encoding: zstd",)), 400),
    case(
        "gzip-valid", request(body=gzip.compress(chat()), headers=(b"Content-Encoding: gzip",)), 200
    ),
    case("gzip-bomb", request(body=_gzip_bomb(), headers=(b"Content-Encoding: gzip",)), 413),
    case("utf16-body", request(body=chat().decode().encode("utf-16")), 400),
    case("bom-prefix", request(body=b"\xef\xbb\xbf" + chat()), 400),
    case("lone-surrogate", request(body=chat(user="x").replace(b'"x"', b'"\\ud800"'))),
    case("overlong-utf8", request(body=chat(user="x").replace(b'"x"', b'"\xc0\xaf"')), 400),
    case("latin1-header", request(headers=(b"X-AIGW-User: caf\xe9",)), 400),
    # -- numbers at and past their limits --------------------------------------------------
    case("max-tokens-0", request(body=chat(max_tokens=0)), 400),
    case("max-tokens-at-int32", request(body=chat(max_tokens=2**31 - 1)), 200),
    case("max-tokens-past-int32", request(body=chat(max_tokens=2**31)), 400),
    case("max-tokens-int64", request(body=chat(max_tokens=2**63 - 1)), 400),
    case(
        "messages-max-tokens-past",
        request(
            path=MESSAGES, body=_json({"model": "chat", "max_tokens": 2**31, "messages": USER})
        ),
        400,
    ),
    case("n-at-limit", request(body=chat(n=128, max_tokens=5)), 200),
    case("max-tokens-2^64", request(body=chat(max_tokens=2**64)), 400),
    case("max-tokens-1e309", request(body=chat(max_tokens=1).replace(b": 1}", b": 1e309}")), 400),
    case("n-past-limit", request(body=chat(n=129)), 400),
    case("n-huge", request(body=chat(n=2**31)), 400),
    case("temperature-past-2", request(body=chat(temperature=2.0000001)), 400),
    case("latency-at-limit", request(headers=(b"X-AIGW-Max-Latency-Ms: 3600000",)), 200),
    case(
        "latency-past-limit",
        request(headers=(b"X-AIGW-Max-Latency-Ms: 3600001",)),
        400,
        code="invalid_header",
    ),
    case("latency-1e20", request(headers=(b"X-AIGW-Max-Latency-Ms: 100000000000000000000",)), 400),
    case("latency-5000-nines", request(headers=(b"X-AIGW-Max-Latency-Ms: " + b"9" * 5000,)), 400),
    case("cost-at-limit", request(headers=(b"X-AIGW-Max-Cost-USD: 999999999.999999999",)), 200),
    case(
        "cost-past-limit",
        request(headers=(b"X-AIGW-Max-Cost-USD: 1000000000",)),
        400,
        code="invalid_header",
    ),
    case("cost-1e999999", request(headers=(b"X-AIGW-Max-Cost-USD: 1e999999",)), 400),
    case(
        "cost-zero", request(headers=(b"X-AIGW-Max-Cost-USD: 0",)), 400, code="cost_limit_exceeded"
    ),
    case("cost-ten-decimals", request(headers=(b"X-AIGW-Max-Cost-USD: 0.0000000001",)), 400),
    case("too-many-messages", request(body=chat(messages=USER * 10_001)), 400),
    case("model-256", request(body=chat(model="m" * 256)), 404),
    case("model-257", request(body=chat(model="m" * 257)), 400),
    case("body-over-limit", request(body=chat(user="u" * 1_100_000)), 413),
    # -- depth -------------------------------------------------------------------------------
    case("depth-64", request(body=deep(64)), 200),
    case("depth-65", request(body=deep(65)), 400, code="json_too_deep"),
    case("depth-1000", request(body=deep(1000)), 400),
    case("depth-100000", request(body=b"[" * 100_000 + b"]" * 100_000), 400),
    case(
        "embeddings-deep",
        request(
            path=EMBED,
            body=_json({"model": "embed", "input": "hi", "x": "X"}).replace(
                b'"X"', b"[" * 300 + b"]" * 300
            ),
        ),
        400,
    ),
    case(
        "messages-deep",
        request(
            path=MESSAGES,
            body=_json({"model": "chat", "max_tokens": 5, "messages": USER, "x": "X"}).replace(
                b'"X"', b"[" * 300 + b"]" * 300
            ),
        ),
        400,
    ),
    # -- unicode digits and look-alikes ---------------------------------------------------------
    case("latency-superscript", request(headers=("X-AIGW-Max-Latency-Ms: ²".encode(),)), 400),
    case(
        "latency-arabic-indic",
        request(headers=("X-AIGW-Max-Latency-Ms: \u0661\u0662".encode(),)),
        400,
    ),
    case(
        "latency-fullwidth", request(headers=("X-AIGW-Max-Latency-Ms: \uff11\uff12".encode(),)), 400
    ),
    case(
        "cost-arabic-indic", request(headers=("X-AIGW-Max-Cost-USD: \u0660.\u0665".encode(),)), 400
    ),
    case("tenant-fullwidth", request(headers=("X-AIGW-Tenant: \uff41cme".encode(),)), 400),
    case("max-tokens-string", request(body=chat(max_tokens="\u0661\u0660")), 400),
    # -- repeated and conflicting claims ------------------------------------------------------
    case(
        "dup-classification",
        request(
            headers=(
                b"X-AIGW-Data-Classification: public",
                b"X-AIGW-Data-Classification: restricted",
            )
        ),
        400,
        code="duplicate_header",
    ),
    case(
        "dup-cost",
        request(headers=(b"X-AIGW-Max-Cost-USD: 1", b"X-AIGW-Max-Cost-USD: 0.0000001")),
        400,
        code="duplicate_header",
    ),
    case(
        "dup-tenant",
        request(headers=(b"X-AIGW-Tenant: acme", b"x-aigw-tenant: evil-corp")),
        400,
        code="duplicate_header",
    ),
    case(
        "dup-latency",
        request(headers=(b"X-AIGW-Max-Latency-Ms: 100", b"X-AIGW-Max-Latency-Ms: 5")),
        400,
        code="duplicate_header",
    ),
    case(
        "comma-tenant",
        request(headers=(b"X-AIGW-Tenant: acme, evil-corp",)),
        400,
        code="invalid_header",
    ),
    case(
        "header-vs-metadata",
        request(body=chat(metadata={"tenant": "evil-corp"}), headers=(b"X-AIGW-Tenant: acme",)),
        400,
        code="conflicting_claims",
    ),
    case("tenant-not-granted", request(headers=(b"X-AIGW-Tenant: evil-corp",)), 403),
    case("use-case-not-granted", request(headers=(b"X-AIGW-Use-Case: admin",)), 403),
    case("restricted-data", request(headers=(b"X-AIGW-Data-Classification: restricted",)), 403),
    case("dup-request-id", request(headers=(b"X-Request-Id: a", b"X-Request-Id: b")), 200),
    case("dup-content-type", request(headers=(b"Content-Type: text/plain",)), 400),
    # -- internal carriage and odd fields ----------------------------------------------------
    case(
        "x-aigw-anthropic-object",
        request(
            body=chat(
                model="claude",
                x_aigw_anthropic={"params": {"model": "claude-opus-4-1", "max_tokens": 64000}},
            )
        ),
    ),
    case("x-aigw-anthropic-string", request(body=chat(model="claude", x_aigw_anthropic="x"))),
    case("role-object", request(body=chat(messages=[{"role": {}, "content": "x"}])), 400),
    case("nested-type-object", request(body=chat(metadata={"a": {"type": {"b": 1}}})), 200),
    case("stream-n-3", request(body=chat(stream=True, n=3)), 200),
]


@dataclass
class Sidecar:
    server: SidecarServer
    fake: FakeProvider


def _bundle(fake: FakeProvider, tmp: Path) -> Path:
    def route(name: str, model: str) -> dict[str, Any]:
        backend = {
            "name": "main",
            "provider": "openai",
            "model": model,
            "baseURL": fake.openai_base_url,
            "pricing": {"inputPerMillionTokensUSD": "1.00", "outputPerMillionTokensUSD": "2.00"},
        }
        return {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "ModelRoute",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"backends": [backend], "retry": {"attempts": 1}},
        }

    use_case = {
        "name": "default",
        "routes": ["chat", "embed", "claude"],
        "limits": {"maxTokens": 2048},
        "rateLimits": {"requestsPerMinute": 100_000, "concurrency": 1},
        "budgets": [{"name": "daily", "period": "day", "tokens": 10_000_000_000}],
    }
    docs = [
        route("chat", "gpt-4o-mini"),
        route("embed", "text-embedding-3-small"),
        route("claude", "gpt-4o"),
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "AIPolicy",
            "metadata": {"name": "app", "namespace": NAMESPACE},
            "spec": {"tenant": "acme", "useCases": [use_case]},
        },
    ]
    parsed, problems = parse_documents("\n---\n".join(json.dumps(d) for d in docs).encode(), "t")
    assert not problems, problems
    bundle = compile_bundle(
        [d.resource for d in parsed],
        namespace=NAMESPACE,
        generated_at=datetime(2026, 11, 27, tzinfo=UTC),
        revision=1,
    )
    path = tmp / "bundle.json"
    path.write_bytes(bundle.to_json_bytes())
    return path


@pytest.fixture(params=["memory", "redis"])
async def sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sidecar]:
    redis_url = None
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        redis_url = server.url
    async with FakeProvider("openai") as fake:
        settings = SidecarSettings(
            bundle_path=_bundle(fake, tmp_path),
            port=0,
            admin_port=0,
            admin_host="127.0.0.1",
            secrets_dir=tmp_path,
            max_body_bytes=1_000_000,
            idle_timeout_s=0.5,
            body_timeout_s=0.5,
            send_timeout_s=2.0,
            drain_timeout_s=2.0,
            redis_url=redis_url,
        )
        async with SidecarServer(settings) as running:
            yield Sidecar(running, fake)


def _status(answer: bytes) -> tuple[int, bytes, bytes]:
    while answer.startswith(b"HTTP/1.1 100 "):  # an interim answer to Expect: 100-continue
        answer = answer.partition(b"\r\n\r\n")[2]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), answer[:200]
    return int(head.split()[1]), head, body


async def _run(sidecar: Sidecar, item: Case) -> None:
    port = sidecar.server.api_port
    async with asyncio.timeout(WAIT):
        if isinstance(item.data, bytes):
            answer = await _exchange(port, item.data)
        else:
            answer = await item.data(port)
    status, head, body = _status(answer)
    assert status in item.ok, (item.id, head + body[:300])
    assert b"Traceback" not in answer
    assert b"aiohttp" not in head
    assert status < 500, item.id
    if item.code is not None:
        assert json.loads(body)["error"]["code"] == item.code, (item.id, body[:300])


async def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


async def test_hostile_requests(sidecar: Sidecar, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    failures = []
    for item in CASES:
        try:
            await _run(sidecar, item)
        except (AssertionError, TimeoutError) as exc:
            failures.append(f"{item.id}: {type(exc).__name__} {exc}"[:400])
    assert failures == [], "\n".join(failures)
    # Serves normally afterwards, under the same concurrency limit of 1 (no lease leaked).
    for _ in range(3):
        status, head, body = _status(await _exchange(sidecar.server.api_port, request()))
        assert status == 200, head + body
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors][:5]
