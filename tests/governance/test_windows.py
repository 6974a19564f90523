"""Calendar-aligned windows: day, Monday weeks, months; month ends, leap days, year ends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aigw_contract import BudgetPeriod
from aigw_sidecar.governance import ManualClock, window_at


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "moment", "start", "end", "label"),
    [
        (
            BudgetPeriod.DAY,
            ts(2026, 11, 27, 13, 5),
            ts(2026, 11, 27),
            ts(2026, 11, 28),
            "d2026-11-27",
        ),
        (
            BudgetPeriod.DAY,
            ts(2026, 12, 31, 23, 59, 59),
            ts(2026, 12, 31),
            ts(2027, 1, 1),
            "d2026-12-31",
        ),
        (BudgetPeriod.DAY, ts(2028, 2, 29, 12), ts(2028, 2, 29), ts(2028, 3, 1), "d2028-02-29"),
        # Weeks start on Monday; 2026-11-23 is a Monday.
        (BudgetPeriod.WEEK, ts(2026, 11, 27), ts(2026, 11, 23), ts(2026, 11, 30), "w2026-11-23"),
        (BudgetPeriod.WEEK, ts(2026, 11, 23), ts(2026, 11, 23), ts(2026, 11, 30), "w2026-11-23"),
        (
            BudgetPeriod.WEEK,
            ts(2026, 11, 22, 23, 59),
            ts(2026, 11, 16),
            ts(2026, 11, 23),
            "w2026-11-16",
        ),
        # A week across the year end belongs to the year of its Monday.
        (BudgetPeriod.WEEK, ts(2027, 1, 2), ts(2026, 12, 28), ts(2027, 1, 4), "w2026-12-28"),
        (
            BudgetPeriod.MONTH,
            ts(2026, 1, 31, 23, 59, 59),
            ts(2026, 1, 1),
            ts(2026, 2, 1),
            "m2026-01",
        ),
        (BudgetPeriod.MONTH, ts(2026, 2, 1), ts(2026, 2, 1), ts(2026, 3, 1), "m2026-02"),
        (BudgetPeriod.MONTH, ts(2028, 2, 29, 23), ts(2028, 2, 1), ts(2028, 3, 1), "m2028-02"),
        (
            BudgetPeriod.MONTH,
            ts(2026, 12, 31, 23, 59, 59),
            ts(2026, 12, 1),
            ts(2027, 1, 1),
            "m2026-12",
        ),
        (BudgetPeriod.MONTH, ts(2027, 1, 1), ts(2027, 1, 1), ts(2027, 2, 1), "m2027-01"),
    ],
)
def test_window_bounds(
    period: BudgetPeriod, moment: float, start: float, end: float, label: str
) -> None:
    window = window_at(period, moment)
    assert (window.start, window.end, window.label) == (start, end, label)
    assert window.seconds_left(moment) == end - moment


def test_consecutive_windows_tile_time_without_gaps() -> None:
    clock = ManualClock(ts(2027, 12, 25))
    for period in BudgetPeriod:
        window = window_at(period, clock.now())
        for _ in range(40):
            following = window_at(period, window.end)
            assert following.start == window.end
            assert window_at(period, window.end - 0.001) == window
            window = following


def test_manual_clock_never_runs_backward() -> None:
    clock = ManualClock(100.0)
    clock.advance(5)
    assert clock.now() == 105.0
    with pytest.raises(ValueError, match="backward"):
        clock.set(1.0)
    with pytest.raises(ValueError, match="backward"):
        clock.advance(-1)
