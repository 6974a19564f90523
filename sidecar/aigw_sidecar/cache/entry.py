"""A cache entry: what a caller received, in bytes a store can keep, checked when read back.

An entry holds either a complete canonical answer (``response``) or a stream as its batches
of canonical chunks (``batches``: the original chunk boundaries, so a replay sends the same
events), plus what the accounting of a hit needs (the cost the answer had, the backend that
produced it) and, for the checks on read, the key digest and the partition tag it was
stored under. A store that hands back bytes of another key (a bug, a hand-edited Redis, a
collision of the short hash) gives an entry whose key or tag differs: it is refused as
invalid, counted, and the request is a miss; it is never served.

Encoding: orjson, then zlib (level 1) when ``compress`` is set and the entry is larger than
:data:`COMPRESS_ABOVE`; the first byte says which (``j`` plain JSON, ``z`` zlib). Decoding
is bounded: a compressed value may inflate to at most ``max_bytes``.

The deflate window and hash table are sized to the entry (:func:`_deflate`): zlib's default
(a 32 KiB window, a 64 Ki-slot hash table, about 256 KiB of state set up per call) cost
~110 us for a 600-byte answer on this project's machines, against ~15 us with a window just
larger than the entry, for output of the same size (a window wider than the data finds no
longer match). It is the same zlib stream format: any inflater (this one, older pods')
reads it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["COMPRESS_ABOVE", "Entry", "EntryInvalid", "decode_entry", "encode_entry"]

Json = dict[str, Any]
COMPRESS_ABOVE = 512
_FORMAT = 1


class EntryInvalid(ValueError):
    """Bytes that are not an entry of this key (never served; counted as a miss)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached answer."""

    key: str
    """The key digest it was stored under."""
    tag: str
    """The partition tag it was stored under."""
    created: float
    """Unix time it was stored."""
    cost_nano: int
    """What producing it cost at the provider (the saving of each hit)."""
    backend: str
    """The backend that produced it."""
    response: Json | None = None
    batches: list[list[Json]] | None = None


def encode_entry(entry: Entry, *, compress: bool, max_bytes: int | None = None) -> bytes | None:
    """The bytes a store keeps; None when the entry is larger than ``max_bytes`` before
    compression (the bound :func:`decode_entry` inflates to)."""
    data = orjson.dumps(
        {
            "f": _FORMAT,
            "k": entry.key,
            "t": entry.tag,
            "c": entry.created,
            "$": entry.cost_nano,
            "b": entry.backend,
            "r": entry.response,
            "s": entry.batches,
        }
    )
    if max_bytes is not None and len(data) > max_bytes:
        return None
    if compress and len(data) > COMPRESS_ABOVE:
        return b"z" + _deflate(data)
    return b"j" + data


def _deflate(data: bytes) -> bytes:
    """``zlib.compress(data, 1)``, with a window (9..15 bits) just covering ``data`` and a
    hash table of the same size (memLevel = bits - 7), so small entries set up little."""
    bits = min(15, max(9, (len(data) - 1).bit_length()))
    deflater = zlib.compressobj(1, zlib.DEFLATED, bits, max(1, bits - 7))
    return deflater.compress(data) + deflater.flush()


def decode_entry(data: bytes, *, key: str, tag: str, max_bytes: int) -> Entry:
    """The entry in ``data``, checked against the key and tag it was read for."""
    kind, body = data[:1], data[1:]
    try:
        if kind == b"z":
            inflater = zlib.decompressobj()
            body = inflater.decompress(body, max_bytes + 1)
            if len(body) > max_bytes or inflater.unconsumed_tail:
                raise EntryInvalid("a cache entry inflates past its bound")
        elif kind != b"j":
            raise EntryInvalid("not a cache entry")
        raw = orjson.loads(body)
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise EntryInvalid("a cache entry does not decode") from exc
    if not isinstance(raw, dict) or raw.get("f") != _FORMAT:
        raise EntryInvalid("a cache entry of an unknown format")
    if raw.get("k") != key or raw.get("t") != tag:
        raise EntryInvalid("a cache entry stored under another key")
    response, batches = raw.get("r"), raw.get("s")
    if (response is None) == (batches is None):
        raise EntryInvalid("a cache entry without exactly one answer")
    if response is not None and not isinstance(response, dict):
        raise EntryInvalid("a cache entry with a malformed answer")
    if batches is not None and not (
        isinstance(batches, list)
        and all(isinstance(b, list) and all(isinstance(c, dict) for c in b) for b in batches)
    ):
        raise EntryInvalid("a cache entry with a malformed stream")
    created, cost, backend = raw.get("c"), raw.get("$"), raw.get("b")
    if not isinstance(created, int | float) or not isinstance(cost, int):
        raise EntryInvalid("a cache entry with malformed accounting")
    return Entry(
        key, tag, float(created), cost, backend if isinstance(backend, str) else "", response,
        batches,
    )  # fmt: skip
