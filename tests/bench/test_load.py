"""The load tools make every request unique when asked (so a cache misses), and only then."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from aigw_fakeprovider import FakeProviderSettings, FakeProviderThread
from load import UNIQUE, run_stream, run_wrk, unique_word
from measure import soak_chunk_seconds

KEY = "sk-load"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk comes from `make deps`")


def _body(text: str, *, stream: bool = False) -> bytes:
    chat = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 4}
    return json.dumps({**chat, "stream": True} if stream else chat).encode()


def _prompts(fake: object) -> list[str]:
    return [e.body["messages"][0]["content"] for e in fake.recorder.exchanges]  # type: ignore[attr-defined]


@needs_wrk
def test_wrk_sends_a_new_number_in_every_request_and_counts_its_whole_duration() -> None:
    # The recorder keeps every exchange: on a quiet machine wrk sends over 10,000 (its default
    # bound) in its second, and the check below needs all of them.
    settings = FakeProviderSettings("openai", KEY, record_limit=1_000_000)
    with FakeProviderThread("openai", settings=settings) as fake:
        url = f"{fake.openai_base_url}/chat/completions"
        result = run_wrk(url, _body(f"n {UNIQUE}"), HEADERS, connections=2, seconds=1, cpus="0-63")
        prompts = _prompts(fake)
    assert result.requests > 0
    assert result.errors == 0
    assert len(prompts) >= result.requests
    assert len(set(prompts)) == len(prompts)  # every request differed
    assert all(p.startswith("n ") and p[2:].isalpha() and p[2:].islower() for p in prompts)
    assert result.seconds >= 1.0  # the rate divides by the time the requests took


@needs_wrk
def test_wrk_repeats_a_body_without_the_marker() -> None:
    with FakeProviderThread("openai", api_key=KEY) as fake:
        url = f"{fake.openai_base_url}/chat/completions"
        result = run_wrk(url, _body("same"), HEADERS, connections=2, seconds=1, cpus="0-63")
        prompts = _prompts(fake)
    assert result.requests > 0
    assert set(prompts) == {"same"}


def test_stream_client_sends_a_new_number_in_every_request() -> None:
    with FakeProviderThread("openai", api_key=KEY) as fake:
        url = f"{fake.openai_base_url}/chat/completions"
        result = run_stream(
            url, _body(f"s {UNIQUE}", stream=True), HEADERS, concurrency=2, total=20,
            max_seconds=30, cpus="0-63", python=sys.executable,
        )  # fmt: skip
        prompts = _prompts(fake)
    assert (result.requests, result.errors) == (20, 0)
    assert result.ttft_p50_us is not None
    assert result.ttft_p50_us <= result.p50_us
    assert len(set(prompts)) == 20


def test_unique_words_are_letters_and_differ_for_every_number() -> None:
    words = [unique_word(n) for n in range(0, 100_000, 7)] + [unique_word(2**52 + 1)]
    assert len(set(words)) == len(words)
    assert all(w.isalpha() and w.islower() for w in words)
    assert unique_word(0) == "a"
    assert unique_word(27) == "bb"


@pytest.mark.parametrize(
    ("remaining", "rate", "time_left", "seconds"),
    [
        (100_000, 1000.0, 70.0, 70),  # capped by the time left
        (10_000, 1000.0, 70.0, 11),  # enough for what is left, plus 5%
        (50, 1000.0, 70.0, 1),  # at least one whole second
        (0, 1000.0, 70.0, 0),  # done
        (5_000, 1000.0, 0.6, 0),  # no whole second left
        (5_000, 0.0, 30.0, 30),  # no rate seen yet: run what the time allows
    ],
)
def test_soak_runs_are_sized_from_the_rate_and_bounded_by_time(
    remaining: int, rate: float, time_left: float, seconds: int
) -> None:
    assert soak_chunk_seconds(remaining, rate, time_left) == seconds
