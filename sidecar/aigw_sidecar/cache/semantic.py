"""The semantic cache's logic: which prompts may be matched by meaning, their partition, and
the in-process vector index.

**The safety rule.** Only the *last user turn* is ever compared by meaning; everything else
the model sees must match exactly. A request is eligible when its last message is a ``user``
message whose content is text only (a string or text parts; no image, audio or file), the
text is at most :data:`MAX_PROMPT_CHARS` after normalisation, and the operation is chat.
The partition (:func:`semantic_partition`) is the exact key's material with that one text
left out: the same namespace, policy, tenant and use case (the semantic cache has no shared
scope: similarity across tenants is exactly the leak it must not have), the same route and
backends, the same answer-transforming settings, the same caller API, carriage, system
prompt, earlier turns, tools, tool results and every parameter. So a single-turn question
matches a paraphrase of itself under the same system prompt and parameters, and a follow-up
question matches a paraphrase only after the very same conversation. Answers that call tools
are never stored (their arguments quote the original wording).

Normalisation (what is embedded and compared): Unicode NFKC, whitespace runs collapsed to
one space, stripped.

**The index** (:class:`VectorIndex`): per partition, a matrix of unit vectors (float32) and
their entry ids; a lookup is one matrix-vector product over the partition's candidates (exact
cosine similarity, no approximation) and the best one above the threshold wins. Bounded in
bytes (``max_bytes``: least recently used partitions go first); entries past their TTL are
dropped before each search. numpy is imported only when a bundle enables the semantic cache
(:func:`load_numpy`): it costs a sidecar ~20 MB of RSS (docs/cache.md has the measurements
and why no approximate index library).
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .key import KEY_VERSION, Partition, digest, keyed_body

__all__ = [
    "MAX_PROMPT_CHARS",
    "VectorIndex",
    "entry_id",
    "load_numpy",
    "normalise",
    "semantic_partition",
    "semantic_prompt",
]

MAX_PROMPT_CHARS = 16_384
PARTITION_OVERHEAD = 512
"""Bytes a partition is charged besides its vectors (its key, lists, object headers), so
that many empty partitions (every distinct system prompt makes one) count against the bound."""
Json = dict[str, Any]


def load_numpy() -> ModuleType:
    """numpy, single-threaded: a sidecar's searches are small, and BLAS threads spinning on
    a shared node cost more than they save (measured in docs/cache.md)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy  # noqa: PLC0415 - only when a bundle enables the semantic cache

    return numpy


def normalise(text: str) -> str:
    """The form of a prompt that is embedded and compared."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def semantic_prompt(body: Mapping[str, Any]) -> tuple[str, Json] | None:
    """(the normalised last user text, the body without it), or None: not eligible."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    text = _text_only(last.get("content"))
    if text is None:
        return None
    prompt = normalise(text)
    if not prompt or len(prompt) > MAX_PROMPT_CHARS:
        return None
    rest = dict(body)
    rest["messages"] = [*messages[:-1], {**last, "content": None}]
    return prompt, rest


def _text_only(content: object) -> str | None:
    """A message's text when it has nothing but text (None: images, files, audio...)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    parts = []
    for part in content:
        value = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
        if not isinstance(value, str):
            return None
        parts.append(value)
    return "\n".join(parts)


def semantic_partition(
    partition: Partition,
    *,
    route: str,
    route_fp: str,
    answer_fp: str,
    api: str,
    carriage: list[Any],
    rest: Mapping[str, Any],
) -> str:
    """The digest naming the candidates of a request: everything but its last user text."""
    return digest(
        [
            KEY_VERSION,
            "semantic",
            partition.material(),
            route,
            route_fp,
            answer_fp,
            api,
            "chat",
            carriage,
            keyed_body(rest),
        ]
    )


def entry_id(partition_digest: str, prompt: str) -> str:
    """The id of the entry a prompt stores (the same prompt replaces its entry)."""
    return digest([partition_digest, prompt])


@dataclass(slots=True)
class _Candidates:
    ids: list[str] = field(default_factory=list)
    expires: list[float] = field(default_factory=list)
    """Monotonic time each entry expires."""
    matrix: Any = None
    """numpy (len(ids), dims) float32 unit rows, or None when empty."""
    synced: float = -1e9
    """Monotonic time the partition was last read from the shared store."""

    @property
    def nbytes(self) -> int:
        matrix = self.matrix  # rows, not ids: callers change ids before the matrix is rebuilt
        vectors = 0 if matrix is None else int(matrix.nbytes) + 96 * int(matrix.shape[0])
        return PARTITION_OVERHEAD + vectors


class VectorIndex:
    """Unit vectors per partition, bounded in bytes; exact cosine search."""

    def __init__(self, max_bytes: int, *, clock: Any = time.monotonic) -> None:
        self.np = load_numpy()
        self.max_bytes = max_bytes
        self.bytes = 0
        self._parts: OrderedDict[tuple[str, str], _Candidates] = OrderedDict()
        self._clock = clock

    def unit(self, vector: list[float]) -> Any | None:
        """``vector`` as a float32 unit vector (None: not a usable vector)."""
        np = self.np
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1 or not array.size or not np.all(np.isfinite(array)):
            return None
        norm = float(np.linalg.norm(array))
        return array / norm if norm > 0 else None

    def candidates(self, tag: str, part: str) -> _Candidates:
        key = (tag, part)
        found = self._parts.get(key)
        if found is None:
            found = self._parts[key] = _Candidates()
            self.bytes += found.nbytes
            self._bound(found)
        self._parts.move_to_end(key)
        return found

    def _rebuild(self, found: _Candidates, rows: list[Any]) -> None:
        self.bytes -= found.nbytes
        found.matrix = self.np.vstack(rows) if rows else None
        self.bytes += found.nbytes

    def _expire(self, found: _Candidates) -> None:
        now = self._clock()
        if found.matrix is None or all(e > now for e in found.expires):
            return
        keep = [i for i, e in enumerate(found.expires) if e > now]
        rows = [found.matrix[i] for i in keep]
        found.ids = [found.ids[i] for i in keep]
        found.expires = [found.expires[i] for i in keep]
        self._rebuild(found, rows)

    def search(self, tag: str, part: str, unit: Any) -> tuple[str, float] | None:
        """The most similar entry of the partition: (entry id, cosine similarity)."""
        found = self._parts.get((tag, part))
        if found is None:
            return None
        self._parts.move_to_end((tag, part))
        self._expire(found)
        matrix = found.matrix
        if matrix is None or matrix.shape[1] != unit.shape[0]:
            return None
        scores = matrix @ unit
        best = int(scores.argmax())
        return found.ids[best], float(scores[best])

    def add(self, tag: str, part: str, entry: str, unit: Any, ttl_s: float) -> None:
        found = self.candidates(tag, part)
        self._expire(found)
        rows = [] if found.matrix is None else list(found.matrix)
        if found.matrix is not None and found.matrix.shape[1] != unit.shape[0]:
            rows, found.ids, found.expires = [], [], []  # the embeddings route changed model
        if entry in found.ids:
            index = found.ids.index(entry)
            del rows[index], found.ids[index], found.expires[index]
        rows.append(unit)
        found.ids.append(entry)
        found.expires.append(self._clock() + ttl_s)
        self._rebuild(found, rows)
        self._bound(found)

    def remove(self, tag: str, part: str, entry: str) -> None:
        found = self._parts.get((tag, part))
        if found is None or entry not in found.ids:
            return
        index = found.ids.index(entry)
        rows = list(found.matrix)
        del rows[index], found.ids[index], found.expires[index]
        self._rebuild(found, rows)

    def replace(
        self, tag: str, part: str, entries: Mapping[str, tuple[Any, float]], synced: float
    ) -> None:
        """The partition as the shared store holds it: id -> (unit vector, TTL left in s)."""
        found = self.candidates(tag, part)
        now = self._clock()
        found.ids = list(entries)
        found.expires = [now + ttl for _, ttl in entries.values()]
        self._rebuild(found, [unit for unit, _ in entries.values()])
        found.synced = synced
        self._bound(found)

    def _bound(self, keep: _Candidates) -> None:
        while self.bytes > self.max_bytes and self._parts:
            key, oldest = next(iter(self._parts.items()))
            if oldest is keep:  # the newest partition alone is too large: drop its oldest
                if len(keep.ids) <= 1 or keep.matrix is None:
                    break
                rows = list(keep.matrix)[1:]
                keep.ids, keep.expires = keep.ids[1:], keep.expires[1:]
                self._rebuild(keep, rows)
                continue
            self.bytes -= oldest.nbytes
            del self._parts[key]

    def known(self, tag: str, part: str) -> dict[str, Any]:
        """id -> unit vector of what the partition holds now."""
        found = self._parts.get((tag, part))
        if found is None or found.matrix is None:
            return {}
        return {entry: found.matrix[i] for i, entry in enumerate(found.ids)}
