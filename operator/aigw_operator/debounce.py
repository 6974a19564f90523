"""Coalescing bursts of changes into few compilations, per key (a namespace).

A change schedules a run after ``quiet`` seconds; changes during the wait push it back, but
never past ``max_delay`` after the first change of the burst, so a steady stream of edits
still produces a bundle every ``max_delay``. A change while a run is in progress schedules
exactly one more run after it, so the last edit is always compiled. Runs of one key never
overlap; different keys run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Debouncer"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Slot:
    first: float
    """Loop time of the first change not yet handled."""
    last: float
    """Loop time of the latest change."""
    pending: bool = True
    failures: int = 0
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Debouncer:
    """Call ``action(key)`` once per burst of ``trigger(key)`` calls.

    A failing action (the apiserver unreachable, a conflict) is logged and retried with
    exponential backoff up to ``max_backoff`` seconds, until it succeeds or the key is
    triggered again.
    """

    action: Callable[[str], Awaitable[None]]
    quiet: float
    max_delay: float
    max_backoff: float = 30.0
    _slots: dict[str, _Slot] = field(default_factory=dict)
    runs: int = 0
    """Completed runs (for metrics and tests)."""

    def trigger(self, key: str) -> None:
        """Note a change of ``key``; must be called from the event loop."""
        now = asyncio.get_running_loop().time()
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(first=now, last=now)
            slot.task = asyncio.create_task(self._run(key, slot), name=f"debounce:{key}")
            return
        if not slot.pending:
            slot.first = now
            slot.pending = True
        slot.last = now

    async def _run(self, key: str, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        try:
            while slot.pending:
                await self._wait_for_quiet(slot)
                slot.pending = False
                try:
                    await self.action(key)
                except Exception:
                    slot.failures += 1
                    backoff = min(self.max_backoff, 0.5 * 2**slot.failures)
                    logger.exception("run for %s failed; retrying in %.1fs", key, backoff)
                    await asyncio.sleep(backoff)
                    if not slot.pending:
                        slot.first = slot.last = loop.time()
                        slot.pending = True
                else:
                    slot.failures = 0
                finally:
                    self.runs += 1
        finally:
            del self._slots[key]

    @staticmethod
    async def _sleep_until(deadline: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def _wait_for_quiet(self, slot: _Slot) -> None:
        """Sleep until the burst is quiet for ``quiet`` or ``max_delay`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = min(slot.last + self.quiet, slot.first + self.max_delay)
        while loop.time() < deadline:
            await self._sleep_until(deadline)
            deadline = min(slot.last + self.quiet, slot.first + self.max_delay)

    async def drain(self) -> None:
        """Wait until no run is pending (tests and shutdown)."""
        while self._slots:
            tasks = [s.task for s in self._slots.values() if s.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
