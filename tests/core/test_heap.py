"""The run loop's GC policy freezes setup for the loop only."""

from __future__ import annotations

import gc

from tidemark.core.heap import frozen_setup, settle


def test_setup_is_frozen_for_the_block_and_released_after() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_setup():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with frozen_setup():  # nested: the outer freeze stands
            assert gc.get_freeze_count() == frozen
        made_later = [[] for _ in range(1_000)]
        settle()
        assert gc.get_freeze_count() >= frozen + len(made_later)
    assert gc.get_freeze_count() == 0


def test_settle_outside_a_block_freezes_nothing() -> None:
    settle()
    assert gc.get_freeze_count() == 0


def test_the_freeze_is_released_when_the_block_raises() -> None:
    try:
        with frozen_setup():
            raise KeyError("boom")
    except KeyError:
        pass
    assert gc.get_freeze_count() == 0
