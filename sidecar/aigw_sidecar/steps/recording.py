"""Recording a stream as it passes, for a step that answers later from it (the cache; an
idempotent replay can use the same).

:class:`Recorder` is a :class:`~aigw_sidecar.streaming.StreamTransform` that passes every
batch on unchanged and at once (it adds no time to the first token) and keeps a reference to
it: chunks are copy-on-write (``docs/sidecar.md``), so what it holds stays what the caller
was sent at this point of the walk. It knows whether the stream was complete (every choice
it saw ended with a ``finish_reason``) and stops keeping batches once the stream grows past
its bound (``overflow``), so recording a long answer never holds more than that. Replaying
is :func:`aigw_sidecar.cache.replay.replay`: the same batches, so the caller's encoder
writes the same events at the same chunk boundaries.
"""

from __future__ import annotations

from aigw_sidecar.context import Json
from aigw_sidecar.streaming import StreamTransform

__all__ = ["CHUNK_OVERHEAD", "Recorder"]

CHUNK_OVERHEAD = 160
"""Bytes a recorded chunk is assumed to take besides its text (ids, model, the envelope):
the running estimate that bounds a recording before its exact size is known."""


class Recorder(StreamTransform):
    """Keeps the batches of one stream (bounded); passes them on unchanged."""

    __slots__ = ("_ended", "_seen", "batches", "limit", "overflow", "size")

    def __init__(self, limit: int) -> None:
        self.batches: list[list[Json]] = []
        self.size = 0
        self.limit = limit
        self.overflow = False
        self._seen: set[int] = set()
        self._ended: set[int] = set()

    async def feed(self, batch: list[Json]) -> list[Json]:
        if self.overflow:
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
        self.size = size
        if size > self.limit:
            self.overflow = True
            self.batches = []
        else:
            self.batches.append(list(batch))
        return batch

    @property
    def complete(self) -> bool:
        """Whether every choice of the stream ended with a finish reason."""
        return bool(self._seen) and self._seen <= self._ended
