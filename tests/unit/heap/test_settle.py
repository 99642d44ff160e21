"""heap.settle freezes start-up objects and raises the young-generation threshold."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from eventplatform import heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settle_freezes_what_is_alive_and_sets_the_threshold() -> None:
    gc.unfreeze()
    older, oldest = gc.get_threshold()[1:]
    heap.settle(young_threshold=12_345)
    assert gc.get_freeze_count() > 1_000  # modules, classes, this test's objects
    assert gc.get_threshold() == (12_345, older, oldest)
    # Cycles made afterwards are still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
