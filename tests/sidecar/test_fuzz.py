"""Property-based fuzzing of the three caller APIs: no generated body or header set is a 5xx.

For each of ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/messages``, hypothesis
generates 2,000 bodies (near-valid requests with every field replaced, now and then, by any
JSON value; stray fields; numbers at and past their limits; deep nesting; streams) and 200
header sets (every governance header with valid, malformed, non-ASCII, huge and repeated
values) and sends each to a real sidecar on loopback in front of the fake providers. Every
answer must be below 500, carry no traceback and no ``internal_error``; the sidecar logs no
error and serves normally afterwards. Fixed seed (derandomized), no example database, a
socket timeout per request: the run is reproducible and bounded.

The sidecar runs in a thread with its own event loop, because hypothesis drives a plain
(synchronous) test function; requests go over raw ``http.client`` connections, so the
headers are sent exactly as generated, repeats included.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer

from .conftest import (
    CANARY_ANTHROPIC,
    CANARY_OPENAI,
    bundle_bytes,
    sidecar_settings,
    standard_docs,
    write_secrets,
)

BODIES = 2000
HEADER_SETS = 200
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Threaded:
    """A sidecar and both fakes on an event loop of their own thread."""

    port: int = 0
    errors: list[logging.LogRecord] = field(default_factory=list)


class _Errors(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("aigw_sidecar", "aigw.", "aiohttp")):
            self.into.append(record)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Threaded]:
    tmp = tmp_path_factory.mktemp("fuzz")
    state = Threaded()
    handler = _Errors(state.errors)
    logging.getLogger().addHandler(handler)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with (
            FakeProvider("openai", api_key=CANARY_OPENAI) as oai,
            FakeProvider("anthropic", api_key=CANARY_ANTHROPIC) as claude,
        ):
            bundle = tmp / "bundle.json"
            bundle.write_bytes(bundle_bytes(standard_docs(oai, claude)))
            config = sidecar_settings(bundle, write_secrets(tmp), max_body_bytes=200_000)
            async with SidecarServer(config) as server:
                state.port = server.api_port
                ready.set()
                await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60), "the sidecar did not start"
    yield state
    loop.call_soon_threadsafe(stop.set)
    thread.join(60)
    loop.close()
    logging.getLogger().removeHandler(handler)


def send(
    port: int, path: str, body: bytes, headers: Sequence[tuple[str, bytes]] = ()
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check(status: int, payload: bytes) -> None:
    assert status < 500, payload[:500]
    assert b"Traceback" not in payload
    assert b"internal_error" not in payload
    assert CANARY_OPENAI.encode() not in payload
    assert CANARY_ANTHROPIC.encode() not in payload


# -- strategies ---------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
INTS = st.integers(min_value=-5, max_value=10) | st.sampled_from([0, 1, 2**31, 2**63, 2**64])


def _deep(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"type": value}
    return value


DEEP = st.sampled_from([30, 62, 63, 64, 65, 200]).map(_deep)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, sometimes any JSON value at all."""
    return st.one_of(valid, valid, valid, ANY_JSON)


# Routes whose backends are configured right (the bundle's "local" has no key and "slow" a
# 200 ms timeout: their 502/504 would be the configuration's, not the caller's).
MODEL = st.sampled_from(["chat", "claude", "canary", "embed", "azure", "nope", ""])
TEXT = st.text(max_size=40)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(TEXT)}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": maybe(st.fixed_dictionaries({"url": TEXT}))}
    ),
    st.dictionaries(st.sampled_from(["type", "text", "extra"]), ANY_JSON, max_size=3),
)
CHAT_MESSAGE = st.fixed_dictionaries(
    {
        "role": maybe(st.sampled_from(["system", "developer", "user", "assistant", "tool"])),
        "content": maybe(TEXT | st.lists(PART, max_size=3)),
    },
    optional={
        "tool_call_id": maybe(TEXT),
        "tool_calls": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": TEXT,
                        "type": st.just("function"),
                        "function": st.fixed_dictionaries(
                            {"name": TEXT, "arguments": maybe(st.just('{"a": 1}') | TEXT)}
                        ),
                    }
                ),
                max_size=2,
            )
        ),
        "name": TEXT,
        "nested": DEEP,
    },
)
TOOLS = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": maybe(TEXT)}, optional={"parameters": maybe(st.just({"type": "object"}))}
            ),
        }
    ),
    max_size=3,
)
CHAT_BODY = st.fixed_dictionaries(
    {"model": maybe(MODEL), "messages": maybe(st.lists(CHAT_MESSAGE, min_size=1, max_size=4))},
    optional={
        "max_tokens": maybe(INTS),
        "max_completion_tokens": maybe(INTS),
        "n": maybe(st.integers(min_value=-1, max_value=3)),
        "temperature": maybe(st.floats(min_value=-1, max_value=3, allow_nan=False)),
        "top_p": maybe(st.floats(min_value=-1, max_value=2, allow_nan=False)),
        "stream": maybe(st.booleans()),
        "stream_options": maybe(st.fixed_dictionaries({"include_usage": st.booleans()})),
        "stop": maybe(TEXT | st.lists(TEXT, max_size=6)),
        "tools": maybe(TOOLS),
        "tool_choice": maybe(st.sampled_from(["none", "auto", "required", "maybe"])),
        "response_format": maybe(st.just({"type": "json_object"}) | DEEP.map(lambda d: {"s": d})),
        "metadata": maybe(st.dictionaries(st.sampled_from(["tenant", "use_case", "x"]), TEXT)),
        "user": maybe(TEXT),
        "x_aigw_anthropic": ANY_JSON,
        "extra": ANY_JSON,
    },
)
EMBED_BODY = st.fixed_dictionaries(
    {
        "model": maybe(MODEL),
        "input": maybe(
            TEXT
            | st.lists(TEXT, min_size=1, max_size=4)
            | st.lists(INTS, min_size=1, max_size=4)
            | st.lists(st.lists(INTS, max_size=3), min_size=1, max_size=3)
        ),
    },
    optional={
        "encoding_format": maybe(st.sampled_from(["float", "base64", "hex"])),
        "dimensions": maybe(INTS),
        "user": maybe(TEXT),
        "stream": ANY_JSON,
        "extra": ANY_JSON | DEEP,
    },
)
BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(TEXT)}),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": TEXT, "name": maybe(TEXT), "input": ANY_JSON}
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": maybe(TEXT), "content": ANY_JSON}
    ),
    st.fixed_dictionaries(
        {"type": st.just("image"), "source": maybe(st.fixed_dictionaries({"type": TEXT}))}
    ),
    st.dictionaries(st.sampled_from(["type", "text", "cache_control"]), ANY_JSON, max_size=3),
)
ANTHROPIC_MESSAGE = st.fixed_dictionaries(
    {
        "role": maybe(st.sampled_from(["user", "assistant"])),
        "content": maybe(TEXT | st.lists(BLOCK, max_size=3)),
    }
)
MESSAGES_BODY = st.fixed_dictionaries(
    {
        "model": maybe(MODEL),
        "max_tokens": maybe(INTS),
        "messages": maybe(st.lists(ANTHROPIC_MESSAGE, min_size=1, max_size=4)),
    },
    optional={
        "system": maybe(TEXT | st.lists(BLOCK, max_size=2)),
        "stream": maybe(st.booleans()),
        "temperature": maybe(st.floats(min_value=-1, max_value=2, allow_nan=False)),
        "top_k": maybe(INTS),
        "top_p": maybe(st.floats(allow_nan=False, allow_infinity=False)),
        "stop_sequences": maybe(st.lists(TEXT, max_size=3)),
        "tools": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"name": maybe(TEXT)}, optional={"input_schema": maybe(st.just({}))}
                ),
                max_size=2,
            )
        ),
        "tool_choice": maybe(st.fixed_dictionaries({"type": st.sampled_from(["auto", "any"])})),
        "thinking": ANY_JSON,
        "metadata": maybe(st.fixed_dictionaries({"user_id": TEXT})),
        "extra": ANY_JSON | DEEP,
    },
)


SERVED_CHAT = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["chat", "claude", "canary", "azure"]),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["system", "user", "assistant"]), "content": TEXT}
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={
        "max_tokens": st.integers(min_value=1, max_value=2**40),
        "temperature": st.floats(min_value=0, max_value=1),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "stop": st.lists(TEXT, max_size=2),
        "metadata": st.dictionaries(st.text(max_size=5), TEXT, max_size=2),
        "user": TEXT,
        "extra": ANY_JSON,
    },
)
SERVED_EMBED = st.fixed_dictionaries(
    {"model": st.just("embed"), "input": TEXT | st.lists(TEXT, min_size=1, max_size=3)},
    optional={"encoding_format": st.sampled_from(["float", "base64"]), "extra": ANY_JSON},
)
SERVED_MESSAGES = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["chat", "claude", "canary"]),
        "max_tokens": st.integers(min_value=1, max_value=2**31),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": TEXT}),
            min_size=1,
            max_size=2,
        ),
    },
    optional={
        "system": TEXT,
        "stream": st.booleans(),
        "temperature": st.floats(min_value=0, max_value=1),
        "metadata": st.fixed_dictionaries({"user_id": TEXT}),
    },
)


def encoded(
    body: st.SearchStrategy[Any], served: st.SearchStrategy[Any]
) -> st.SearchStrategy[bytes]:
    """JSON bytes: a request that should be served, a fuzzed near-valid one, any JSON value,
    or not JSON at all."""
    return st.one_of(
        *[served.map(lambda b: json.dumps(b).encode())] * 4,
        *[body.map(lambda b: json.dumps(b).encode())] * 8,
        ANY_JSON.map(lambda b: json.dumps(b).encode()),
        st.binary(max_size=60),
    )


HEADER_NAMES = [
    "X-AIGW-Tenant",
    "X-AIGW-Use-Case",
    "X-AIGW-User",
    "X-AIGW-Channel",
    "X-AIGW-Data-Classification",
    "X-AIGW-Max-Cost-USD",
    "X-AIGW-Max-Latency-Ms",
    "X-AIGW-Quality-Tier",
    "X-AIGW-Region",
    "X-Request-Id",
    "Idempotency-Key",
    "traceparent",
]
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "team-a",
            "evil-corp",
            "default",
            "public",
            "internal",
            "restricted",
            "0.05",
            "1e999999",
            "0.0000000001",
            "100000000000000000000",
            "3600000",
            "3600001",
            "0",
            "-1",
            "NaN",
            "9" * 5000,
            "a, b",
            "",
        ]
    ).map(str.encode),
    st.sampled_from(["²", "\u0661\u0662", "é", "\U0001f600", "\uff54\uff45\uff41\uff4d"]).map(
        str.encode
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.encode),
    st.binary(max_size=30).map(
        lambda b: bytes(c for c in b if c not in (0, 10, 13)) or b"x"
    ),  # any byte but NUL, CR and LF (the parser's own 400s are tested elsewhere)
)
HEADER_SET = st.lists(
    st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUES), min_size=1, max_size=8
)
VALID = {
    "/v1/chat/completions": {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/embeddings": {"model": "embed", "input": "hi"},
    "/v1/messages": {
        "model": "chat",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    },
}


def _fuzz_bodies(
    sidecar: Threaded,
    path: str,
    strategy: st.SearchStrategy[Any],
    served: st.SearchStrategy[Any],
) -> None:
    seen: list[int] = []

    @settings(FUZZ, max_examples=BODIES)
    @given(body=encoded(strategy, served))
    def run(body: bytes) -> None:
        status, payload = send(sidecar.port, path, body)
        seen.append(status)
        check(status, payload)

    run()
    _still_serves(sidecar, path)
    _reached_both_sides(seen)


def _reached_both_sides(seen: list[int]) -> None:
    """The generated requests were neither all refused nor all served (a strategy that only
    ever reaches one side would test nothing). Deadline headers among the fuzzed ones make
    how many are served depend on the machine's load, so the bound is one of each."""
    served = sum(status == 200 for status in seen)
    refused = sum(400 <= status < 500 for status in seen)
    statuses = sorted(Counter(seen).items())
    assert served >= 1, statuses
    assert refused >= 1, statuses


def _fuzz_headers(sidecar: Threaded, path: str) -> None:
    body = json.dumps(VALID[path]).encode()

    seen: list[int] = []

    @settings(FUZZ, max_examples=HEADER_SETS)
    @given(headers=HEADER_SET)
    def run(headers: list[tuple[str, bytes]]) -> None:
        status, payload = send(sidecar.port, path, body, headers)
        seen.append(status)
        check(status, payload)

    run()
    _still_serves(sidecar, path)
    _reached_both_sides(seen)


def _still_serves(sidecar: Threaded, path: str) -> None:
    status, payload = send(sidecar.port, path, json.dumps(VALID[path]).encode())
    assert status == 200, payload[:300]
    assert sidecar.errors == [], [r.getMessage() for r in sidecar.errors][:5]


@pytest.mark.slow
def test_fuzzed_chat_bodies(sidecar: Threaded) -> None:
    _fuzz_bodies(sidecar, "/v1/chat/completions", CHAT_BODY, SERVED_CHAT)


@pytest.mark.slow
def test_fuzzed_embeddings_bodies(sidecar: Threaded) -> None:
    _fuzz_bodies(sidecar, "/v1/embeddings", EMBED_BODY, SERVED_EMBED)


@pytest.mark.slow
def test_fuzzed_messages_bodies(sidecar: Threaded) -> None:
    _fuzz_bodies(sidecar, "/v1/messages", MESSAGES_BODY, SERVED_MESSAGES)


@pytest.mark.slow
@pytest.mark.parametrize("path", list(VALID))
def test_fuzzed_header_sets(sidecar: Threaded, path: str) -> None:
    _fuzz_headers(sidecar, path)
