"""The semantic cache through the real sidecar and the official SDK, with an embeddings
backend (the fake provider) whose vectors the test chooses: a paraphrase above the threshold
is a semantic hit, below it a miss, and the identical prompt from another tenant a miss; the
embedding is a governed, costed call of its own; only the last user turn is ever compared."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from aigw_fakeprovider import FakeProvider

from .caching import OTHER_TENANT, Decisions, cache_gateway, cached_use_case, metric, metrics_text

ASKED = "what is the capital of france"
CLOSE = "which city is the capital of france"  # cosine 0.95 with ASKED
FAR = "what is the capital of spain"  # cosine 0.5 with ASKED
SEMANTIC = cached_use_case(
    "default",
    exact={"enabled": False},
    semantic={"enabled": True, "threshold": 0.9, "embeddingsRoute": "embed", "ttlSeconds": 600},
)


def _vectors(fake: FakeProvider) -> None:
    fake.vectors.set(ASKED, [1.0, 0.0, 0.0, 0.0])
    fake.vectors.set(CLOSE, [0.95, 0.3122, 0.0, 0.0])
    fake.vectors.set(FAR, [0.5, 0.866, 0.0, 0.0])


def _calls(fake: FakeProvider, path: str) -> int:
    return sum(1 for e in fake.recorder.exchanges if e.path.endswith(path))


async def _ask(
    client: openai.AsyncOpenAI, text: str, *, tenant: str | None = None, **kwargs: Any
) -> tuple[str, dict[str, str], str]:
    messages: Any = kwargs.pop("messages", [{"role": "user", "content": text}])
    headers = {"X-AIGW-Tenant": tenant} if tenant else {}
    raw = await client.chat.completions.with_raw_response.create(
        model="chat", messages=messages, extra_headers=headers, **kwargs
    )
    content = raw.parse().choices[0].message.content or ""
    lowered = {k.lower(): v for k, v in raw.headers.items()}
    return lowered["x-aigw-cache"], lowered, content


async def test_a_paraphrase_above_the_threshold_hits_below_it_and_other_tenants_miss(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    _vectors(oai_fake)
    recorder = Decisions()
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [SEMANTIC], recorder=recorder) as gw,
        gw.openai() as client,
    ):
        first = await _ask(client, ASKED)
        assert first[0] == "miss"
        assert "x-aigw-cache-similarity" not in first[1]
        paraphrase = await _ask(client, CLOSE)
        assert paraphrase[0] == "semantic-hit"
        assert float(paraphrase[1]["x-aigw-cache-similarity"]) == pytest.approx(0.95, abs=1e-3)
        assert paraphrase[2] == first[2] == f"Echo: {ASKED}"  # the stored answer
        assert float(paraphrase[1]["x-aigw-cost-usd"]) == 0
        assert _calls(oai_fake, "/chat/completions") == 1
        assert (await _ask(client, FAR))[0] == "miss"  # 0.5 < 0.9
        assert _calls(oai_fake, "/chat/completions") == 2
        other = await _ask(client, ASKED, tenant=OTHER_TENANT)
        assert other[0] == "miss"  # the identical prompt, another tenant: never a candidate
        assert "x-aigw-cache-similarity" not in other[1]
        assert _calls(oai_fake, "/chat/completions") == 3
        assert (await _ask(client, CLOSE, tenant=OTHER_TENANT))[0] == "semantic-hit"  # its own
        assert _calls(oai_fake, "/embeddings") == 5  # every lookup embedded its prompt
        metrics = await metrics_text(gw.admin_url)
    assert metric(metrics, "aigw_cache_hits_total", kind="semantic") == 2
    assert (
        metric(metrics, "aigw_cache_misses_total", kind="semantic", reason="below_threshold") == 1
    )
    assert metric(metrics, "aigw_tokens_total", route="embed") > 0  # the embedding is costed
    assert ("semantic-hit", [("semantic-hit", "cache_semantic_hit")]) in recorder.calls
    embeddings = [e for e in oai_fake.recorder.exchanges if e.path.endswith("/embeddings")]
    assert embeddings[0].body["input"] == ASKED  # the normalised last user text, no more


async def test_only_the_last_user_turn_is_compared(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    _vectors(oai_fake)
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [SEMANTIC]) as gw,
        gw.openai() as client,
    ):
        system: Any = {"role": "system", "content": "answer in one word"}
        assert (await _ask(client, ASKED, messages=[system, {"role": "user", "content": ASKED}]))[
            0
        ] == "miss"
        close = [system, {"role": "user", "content": f"  {CLOSE}\n"}]  # normalised
        assert (await _ask(client, CLOSE, messages=close))[0] == "semantic-hit"
        other_system: Any = [
            {"role": "system", "content": "answer at length"},
            {"role": "user", "content": CLOSE},
        ]
        assert (await _ask(client, CLOSE, messages=other_system))[0] == "miss"
        assert (await _ask(client, CLOSE, temperature=0.2, messages=close))[0] == "miss"
        history: Any = [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": CLOSE},
        ]
        assert (await _ask(client, CLOSE, messages=history))[0] == "miss"  # other earlier turns
        image: Any = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ASKED},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
        assert (await _ask(client, ASKED, messages=image))[0] == "miss"  # not text only
        metrics = await metrics_text(gw.admin_url)
    assert metric(metrics, "aigw_cache_misses_total", kind="semantic", reason="ineligible") == 1


async def test_a_streamed_paraphrase_replays_the_stored_stream(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    _vectors(oai_fake)
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [SEMANTIC]) as gw,
        gw.openai() as client,
    ):
        runs = []
        for text in (ASKED, CLOSE):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": text}], stream=True
            )
            stream = raw.parse()
            assert isinstance(stream, openai.AsyncStream)
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            runs.append((raw.headers["x-aigw-cache"], pieces))
    assert runs[0][0] == "miss"
    assert runs[1] == ("semantic-hit", runs[0][1])
    assert _calls(oai_fake, "/chat/completions") == 1


async def test_a_failed_embedding_is_a_miss_never_an_error(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    _vectors(oai_fake)
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [SEMANTIC]) as gw,
        gw.openai() as client,
    ):
        oai_fake.queue_fault(status=400, count=1)  # the embedding call is refused
        outcome, _, content = await _ask(client, ASKED)
        assert (outcome, content) == ("miss", f"Echo: {ASKED}")
        metrics = await metrics_text(gw.admin_url)
    assert metric(metrics, "aigw_cache_misses_total", reason="embedding_failed") == 1


def test_numpy_is_imported_only_when_a_bundle_enables_the_semantic_cache(
    tmp_path: Path,
) -> None:
    code = (
        "import sys, aigw_sidecar, aigw_sidecar.server, aigw_sidecar.steps\n"
        "from aigw_sidecar.steps import Caching\n"
        "from aigw_sidecar.metrics import Metrics\n"
        "from aigw_sidecar.settings import SidecarSettings\n"
        "caching = Caching(SidecarSettings(bundle_path='x'), Metrics())\n"
        "caching.semantic.prepare(False)\n"
        "print('numpy' in sys.modules)\n"
        "caching.semantic.prepare(True)\n"
        "print('numpy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]


async def test_a_semantic_entry_is_served_for_its_ttl_only(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    _vectors(oai_fake)
    short = cached_use_case(
        "default",
        exact={"enabled": False},
        semantic={"enabled": True, "threshold": 0.9, "embeddingsRoute": "embed", "ttlSeconds": 1},
    )
    async with cache_gateway(tmp_path, oai_fake, claude_fake, [short]) as gw, gw.openai() as c:
        assert (await _ask(c, ASKED))[0] == "miss"
        assert (await _ask(c, CLOSE))[0] == "semantic-hit"
        await asyncio.sleep(1.1)  # past the TTL (not a timing assertion: the entry expired)
        assert (await _ask(c, CLOSE))[0] == "miss"
    assert _calls(oai_fake, "/chat/completions") == 2
