"""A serving sidecar's garbage collector: start-up objects frozen, the young threshold raised,
and cyclic garbage made while serving still collected (nothing leaks)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from aigw_sidecar.server import GC_THRESHOLD, settle_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.mark.usefixtures("restored_gc")
def test_settle_gc_freezes_start_up_and_still_collects_later_cycles() -> None:
    built_at_start = _Node()
    settle_gc()
    assert gc.get_threshold() == GC_THRESHOLD
    assert GC_THRESHOLD[0] > 700
    assert gc.get_freeze_count() > 0
    assert all(o is not built_at_start for o in gc.get_objects())  # frozen: never scanned
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle made while serving
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
