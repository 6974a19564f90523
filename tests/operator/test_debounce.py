"""Bursts of changes coalesce into few runs, and the last change is always handled."""

from __future__ import annotations

import asyncio

from aigw_operator.debounce import Debouncer


async def test_a_burst_of_100_changes_gives_few_runs_and_the_last_value() -> None:
    state = {"value": 0}
    seen: list[int] = []

    async def action(key: str) -> None:
        assert key == "team-a"
        seen.append(state["value"])
        await asyncio.sleep(0.01)  # a compile takes a while; changes keep arriving meanwhile

    debouncer = Debouncer(action, quiet=0.02, max_delay=0.1)
    for value in range(1, 101):
        state["value"] = value
        debouncer.trigger("team-a")
        await asyncio.sleep(0.002)
    await debouncer.drain()
    assert seen[-1] == 100
    assert len(seen) < 20
    print(f"100 changes -> {len(seen)} runs: {seen}")


async def test_keys_are_independent_and_runs_of_one_key_never_overlap() -> None:
    running: set[str] = set()
    runs: list[str] = []

    async def action(key: str) -> None:
        assert key not in running
        running.add(key)
        await asyncio.sleep(0.01)
        running.discard(key)
        runs.append(key)

    debouncer = Debouncer(action, quiet=0.0, max_delay=0.0)
    for _ in range(5):
        debouncer.trigger("a")
        debouncer.trigger("b")
        await asyncio.sleep(0.004)
    await debouncer.drain()
    assert set(runs) == {"a", "b"}


async def test_a_failing_action_is_retried() -> None:
    attempts: list[int] = []

    async def action(_: str) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("apiserver unreachable")

    debouncer = Debouncer(action, quiet=0.0, max_delay=0.0, max_backoff=0.01)
    debouncer.trigger("a")
    await debouncer.drain()
    assert len(attempts) == 2
