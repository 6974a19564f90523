"""Time as the governance engine sees it: one injectable clock.

Rate limits refill with time and budgets roll over at calendar boundaries, so every piece
of the engine asks a :class:`Clock` instead of calling ``time.time()``. Production uses
:class:`SystemClock`; tests and benchmarks use :class:`ManualClock` and move time by hand,
which is how window refill, month ends, leap days and year ends are tested without sleeping.
Time is UTC seconds since the epoch as a float (what Redis scripts receive too).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """A source of wall-clock time in UTC epoch seconds."""

    def now(self) -> float:
        """Seconds since the epoch, UTC."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to (tests, benchmarks)."""

    __slots__ = ("_now",)

    def __init__(self, start: float) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward (never backward: counters assume monotonic time)."""
        if seconds < 0:
            raise ValueError("a clock does not run backward")
        self._now += seconds

    def set(self, when: float) -> None:
        """Jump to ``when`` (tests crossing calendar boundaries)."""
        if when < self._now:
            raise ValueError("a clock does not run backward")
        self._now = when
