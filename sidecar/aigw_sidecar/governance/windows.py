"""Calendar-aligned budget windows in UTC: day, week (Monday-start) and month.

A budget counts spend from the start of the current window to its end; the next window
starts from zero. Windows are computed from the clock, never from a timer, so a sidecar that
was idle over midnight still counts into the right window. Each window has a label that
becomes part of its counter key (``d2026-11-27``, ``w2026-11-23``, ``m2026-11``), so a new
window is simply a new key and the old one expires by its TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aigw_contract import BudgetPeriod

__all__ = ["Window", "window_at"]

_DAY = 86_400
_EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday: weekday 3 when Monday is 0."""


@dataclass(frozen=True, slots=True)
class Window:
    """One budget window: [start, end) in epoch seconds, and its key label."""

    start: int
    end: int
    label: str

    def seconds_left(self, now: float) -> float:
        """Seconds until the window ends (what Retry-After says once a budget is spent)."""
        return max(0.0, self.end - now)


def window_at(period: BudgetPeriod, now: float) -> Window:
    """The window of ``period`` that contains ``now``."""
    days = int(now // _DAY)
    if period is BudgetPeriod.DAY:
        start = days * _DAY
        return Window(start, start + _DAY, "d" + _date(start))
    if period is BudgetPeriod.WEEK:
        monday = days - (days + _EPOCH_WEEKDAY) % 7
        start = monday * _DAY
        return Window(start, start + 7 * _DAY, "w" + _date(start))
    moment = datetime.fromtimestamp(days * _DAY, UTC)
    first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    if moment.month == 12:
        following = datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    else:
        following = datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
    return Window(
        int(first.timestamp()), int(following.timestamp()), f"m{moment.year:04d}-{moment.month:02d}"
    )


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")
