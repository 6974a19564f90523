"""Recording a stream as it passes, for a step that answers later from it: the response cache
and Idempotency-Key replays share this one bounded recorder.

:class:`Recorder` is a :class:`~aigw_sidecar.streaming.StreamTransform` that passes every
batch on unchanged and at once (it adds no time to the first token) and keeps a reference to
it: chunks are copy-on-write (``docs/sidecar.md``), so what it holds stays what the caller
was sent at this point of the walk. It knows whether the stream was complete (every choice
it saw ended with a ``finish_reason``, tracked past the bound too) and stops keeping batches
once the stream grows past its bound (``overflow``), so recording a long answer never holds
more than that, however long the caller makes the answer. A :class:`RecordingBudget` shared
by the recorders of one step bounds what all of them hold together (many concurrent long
streams cannot add up past it either): a recorder whose growth the budget cannot take
overflows the same way. Replaying is :func:`aigw_sidecar.cache.replay.replay`: the same
batches, so the caller's encoder writes the same events at the same chunk boundaries.

Sizes are estimates made as the chunks pass (no serialisation on the hot path): text fields
of each delta, tool-call and log-probability entries, plus :data:`CHUNK_OVERHEAD` per chunk.
A step that stores the recording checks the exact serialised size again.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_sidecar.context import Json
from aigw_sidecar.streaming import StreamTransform

__all__ = ["BUDGET_BYTES", "CHUNK_OVERHEAD", "Recorder", "RecordingBudget"]

CHUNK_OVERHEAD = 160
"""Bytes a recorded chunk is assumed to take besides its text (ids, model, the envelope):
the running estimate that bounds a recording before its exact size is known."""


BUDGET_BYTES = 16 << 20
"""What the streams one step records may hold together in one sidecar (the cache's, and the
idempotency step's, each have one budget of this size)."""


class RecordingBudget:
    """Bytes held by the in-flight recorders that share it, bounded by ``limit``; ``peak`` is
    the most they ever held together (what a test or an operator reads)."""

    __slots__ = ("held", "limit", "peak")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        self.peak = max(self.peak, self.held)
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


def _extra_size(choice: Json) -> int:
    """Log probabilities ride beside the delta (``logprobs: true`` makes every chunk carry
    them, with up to 20 alternatives per token): counted by their encoded length."""
    logprobs: Any = choice.get("logprobs")
    return len(orjson.dumps(logprobs)) if logprobs else 0


class Recorder(StreamTransform):
    """Keeps the batches of one stream (bounded); passes them on unchanged."""

    __slots__ = ("_budget", "_charged", "_ended", "_seen", "batches", "limit", "overflow", "size")

    def __init__(self, limit: int, budget: RecordingBudget | None = None) -> None:
        self.batches: list[list[Json]] = []
        self.size = 0
        """Estimated bytes of the batches kept (frozen at the bound once it overflows)."""
        self.limit = limit
        self.overflow = False
        self._budget = budget
        self._charged = 0
        self._seen: set[int] = set()
        self._ended: set[int] = set()

    async def feed(self, batch: list[Json]) -> list[Json]:
        if self.overflow:
            self._track_ends(batch)
            return batch
        size = self.size
        for chunk in batch:
            size += CHUNK_OVERHEAD
            for choice in chunk.get("choices") or ():
                index = choice.get("index", 0)
                self._seen.add(index)
                if choice.get("finish_reason"):
                    self._ended.add(index)
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    for value in delta.values():
                        if isinstance(value, str):
                            size += len(value)
                        elif isinstance(value, list):
                            size += 64 * len(value) + len(str(value)) // 2
                if "logprobs" in choice:
                    size += _extra_size(choice)
        budget = self._budget
        if size > self.limit or (budget is not None and not budget.take(size - self.size)):
            self.overflow = True
            self.release()
        else:
            self._charged += size - self.size
            self.batches.append(list(batch))
        self.size = size
        return batch

    def _track_ends(self, batch: list[Json]) -> None:
        for chunk in batch:
            for choice in chunk.get("choices") or ():
                index = choice.get("index", 0)
                self._seen.add(index)
                if choice.get("finish_reason"):
                    self._ended.add(index)

    def release(self) -> None:
        """Drop the batches and give their bytes back to the budget (idempotent)."""
        self.batches = []
        if self._budget is not None and self._charged:
            self._budget.give_back(self._charged)
        self._charged = 0

    @property
    def complete(self) -> bool:
        """Whether every choice of the stream ended with a finish reason."""
        return bool(self._seen) and self._seen <= self._ended
