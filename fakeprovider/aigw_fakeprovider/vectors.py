"""Embedding vectors a test chooses: the fake's embeddings endpoint answers a text with the
vector registered for it (exactly as given) instead of the seeded pseudo-random one.

A semantic cache is tested by the similarity of the vectors it is handed, so the test must
decide them: ``fake.vectors.set("what is the capital of france", [1, 0, 0])``, or over the
control API ``POST /_fake/embeddings`` with ``{"vectors": {"<text>": [floats]}}``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

from aiohttp import web

__all__ = ["VECTORS_KEY", "Vectors"]

_MAX_DIMENSIONS = 8192


class Vectors:
    """Text -> vector, safe to use from a test's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vectors: dict[str, list[float]] = {}

    def set(self, text: str, vector: list[float]) -> None:
        if not vector or len(vector) > _MAX_DIMENSIONS:
            raise ValueError(f"a vector has 1 to {_MAX_DIMENSIONS} dimensions")
        values = [float(v) for v in vector]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("a vector's values are finite numbers")
        with self._lock:
            self._vectors[text] = values

    def update(self, vectors: Mapping[str, list[float]]) -> None:
        for text, vector in vectors.items():
            self.set(text, vector)

    def get(self, text: str) -> list[float] | None:
        with self._lock:
            return self._vectors.get(text)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


VECTORS_KEY = web.AppKey("aigw_fake_vectors", Vectors)
