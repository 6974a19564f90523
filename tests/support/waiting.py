"""Waiting for something to become true: poll, with a timeout that only bounds a hang.

Tests never assert speed (that is ``make bench``); a wait's timeout is generous and exists
so a broken condition fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["wait_for", "wait_until"]

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 120.0, interval: float = 0.02
) -> T:
    """Poll ``probe()`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


async def wait_until(
    what: str,
    probe: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    within: float = 10.0,
    interval: float = 0.02,
) -> T:
    """The event-loop version: ``probe`` may be a plain or an async callable."""
    try:
        async with asyncio.timeout(within):
            while True:
                found = probe()
                value = await found if inspect.isawaitable(found) else found
                if value:
                    return value
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
