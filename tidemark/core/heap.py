"""Garbage-collector policy for a run's hot loop.

A backtest builds large long-lived structures before its first bar (series
columns as lists, wake masks, timelines, indicator caches). CPython's full
collections walk every tracked object each time, so without care they keep
re-walking that setup while the loop runs. :func:`frozen_setup` moves what
exists when the loop starts into the permanent generation for the loop's
duration. Only the collector's schedule changes: objects are still freed by
reference counting, cycles made by the loop are still collected, and no
result depends on when a collection runs.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_active = False  # inside frozen_setup


@contextmanager
def frozen_setup() -> Iterator[None]:
    """Freeze every tracked object allocated so far until the block ends
    (nested use keeps the outermost freeze)."""
    global _active
    if _active:
        yield
        return
    gc.freeze()
    _active = True
    try:
        yield
    finally:
        _active = False
        gc.unfreeze()


def settle() -> None:
    """Inside :func:`frozen_setup`, freeze what was allocated since (setup
    that finished inside the block, such as an engine started by its first
    input); outside one, do nothing."""
    if _active:
        gc.freeze()
