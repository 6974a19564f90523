"""Cache entry bytes: what one pod writes, every pod reads back (any size, compressed or not),
and bytes of another key, or ones that inflate past the bound, are refused."""

from __future__ import annotations

import random
import zlib

import pytest

from aigw_sidecar.cache import COMPRESS_ABOVE, Entry, EntryInvalid, decode_entry, encode_entry


def _answer(size: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    words = ["cache", "answer", "model", "token", "stream", "hello", "a", "the", "Zürich"]
    text = " ".join(rng.choice(words) for _ in range(size // 5))
    return {"id": f"chatcmpl-{seed}", "choices": [{"message": {"content": text}}]}


@pytest.mark.parametrize(
    "size", [COMPRESS_ABOVE - 100, COMPRESS_ABOVE + 50, 3_000, 40_000, 300_000]
)
def test_entries_of_every_size_read_back_the_same(size: int) -> None:
    answer = _answer(size, size)
    entry = Entry("k" * 64, "ns:t", 12.5, 7, "primary", answer)
    data, plain = encode_entry(entry, compress=True), encode_entry(entry, compress=False)
    assert data is not None
    assert plain is not None
    assert decode_entry(data, key="k" * 64, tag="ns:t", max_bytes=1 << 22) == entry
    assert data[:1] == (b"z" if len(plain) - 1 > COMPRESS_ABOVE else b"j")
    if data[:1] == b"z":
        # A plain inflater (what an older pod runs) reads it, and it compresses as well as
        # zlib's default window would (within a few bytes).
        assert zlib.decompress(data[1:]) == plain[1:]
        assert len(data) <= len(zlib.compress(plain[1:], 1)) + 16 + 1


def test_a_compressed_entry_larger_than_the_bound_is_refused() -> None:
    entry = Entry("k", "ns:t", 0.0, 0, "b", _answer(50_000, 1))
    data = encode_entry(entry, compress=True)
    assert data is not None
    assert data[:1] == b"z"
    with pytest.raises(EntryInvalid, match="inflates past"):
        decode_entry(data, key="k", tag="ns:t", max_bytes=10_000)
    with pytest.raises(EntryInvalid, match="another key"):
        decode_entry(data, key="other", tag="ns:t", max_bytes=1 << 20)
