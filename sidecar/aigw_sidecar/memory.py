"""Giving the memory of large requests back to the operating system once they are over.

A sidecar that refuses or serves a few maximum-size bodies (``max_body_bytes``, 8 MiB by
default) at once needs tens of MB for a moment: the body's chunks as they arrive, the joined
bytes, the parsed JSON. Python frees all of it when the call ends, but glibc's allocator
keeps freed heap pages mapped (they are fragmented by the small objects allocated in
between), so the pod's RSS stays at its peak while idle, near the injected memory limit.

:class:`HeapTrimmer` counts requests with a large body in flight; when the last of them ends
it calls ``malloc_trim(0)``, which returns every free page of every arena to the system
(one call per burst of large requests, a few milliseconds; never for ordinary requests).
Where the C library has no ``malloc_trim`` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ["LARGE_BODY_BYTES", "HeapTrimmer"]

LARGE_BODY_BYTES = 1 << 20
"""A body at least this large counts as a large request."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Trims the C heap after the last large request in flight ends."""

    __slots__ = ("_in_flight", "_trim", "trims")

    def __init__(self) -> None:
        self._trim = _malloc_trim()
        self._in_flight = 0
        self.trims = 0
        """How many times the heap was trimmed (for tests and status)."""

    def enter(self) -> None:
        """A request with a large body started."""
        self._in_flight += 1

    def leave(self) -> None:
        """It ended: trim when no other large request is in flight."""
        self._in_flight -= 1
        if self._in_flight == 0 and self._trim is not None:
            self._trim(0)
            self.trims += 1
