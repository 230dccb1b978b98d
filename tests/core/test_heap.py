"""The run loop's GC policy freezes setup for the loop only."""

from __future__ import annotations

import gc

from tidemark.core.heap import frozen_setup, settle

SLACK = 100
"""Frozen objects may be freed meanwhile (reference counts still free them;
a thread left by another test can drop some): seen on CI, the count fell by
2 between two lines. The checks below rely on 1,000 new objects instead."""


def test_setup_is_frozen_for_the_block_and_released_after() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_setup():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        made_later = [[] for _ in range(1_000)]
        with frozen_setup():  # nested: the outer freeze stands, and nothing more is frozen
            assert 0 < gc.get_freeze_count() < frozen + len(made_later)
        settle()  # freezes what was made since
        assert gc.get_freeze_count() >= frozen + len(made_later) - SLACK
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
