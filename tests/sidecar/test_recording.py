"""The shared bounded stream recorder (``steps/recording.py``): one stream past its bound,
and many streams past their shared budget, hold nothing more; a stream's completeness is
still known after it overflowed."""

from __future__ import annotations

from typing import Any

from aigw_sidecar.steps.recording import CHUNK_OVERHEAD, Recorder, RecordingBudget


def chunk(text: str, *, finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"id": "c", "choices": [choice]}


async def test_a_stream_past_its_bound_is_dropped_and_still_known_complete() -> None:
    recorder = Recorder(10_000)
    for _ in range(100):
        batch = [chunk("x" * 500)]
        assert await recorder.feed(batch) is batch  # passed on unchanged
    assert recorder.overflow
    assert recorder.batches == []
    await recorder.feed([chunk("", finish="stop")])
    assert recorder.complete  # the finish after the bound is still seen


async def test_recorders_sharing_a_budget_cannot_add_up_past_it() -> None:
    budget = RecordingBudget(50_000)
    recorders = [Recorder(30_000, budget) for _ in range(4)]
    for _ in range(40):
        for recorder in recorders:
            await recorder.feed([chunk("y" * 1_000)])
        assert budget.held <= budget.limit
    assert budget.peak <= budget.limit
    kept = [r for r in recorders if not r.overflow]
    assert len(kept) < len(recorders)  # some had to let go
    for recorder in recorders:
        recorder.release()
        recorder.release()  # idempotent
    assert budget.held == 0


async def test_log_probabilities_count_against_the_bound() -> None:
    alternatives = [{"token": "tok", "logprob": -0.5, "bytes": [116, 111, 107]}] * 20
    logprobs = {"content": [{"token": "a", "logprob": -0.1, "top_logprobs": alternatives}]}
    plain, rich = Recorder(1 << 30), Recorder(1 << 30)
    await plain.feed([chunk("a")])
    await rich.feed([chunk("a", logprobs=logprobs)])
    assert plain.size == CHUNK_OVERHEAD + 1
    assert rich.size > plain.size + 20 * 40
