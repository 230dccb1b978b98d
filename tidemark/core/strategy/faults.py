"""Where a strategy failed, in one line: its file and line, the hook, and
the bar (time and symbol) it was handling, not the engine's internals."""

from __future__ import annotations

import traceback
from pathlib import Path
from types import TracebackType

from tidemark.core.clock import iso_utc
from tidemark.core.events import Event

ENGINE_DIR = str(Path(__file__).resolve().parents[2])
"""The tidemark package: frames below it are the engine's, not the strategy's."""


def strategy_frame(tb: TracebackType | None) -> traceback.FrameSummary | None:
    """The deepest frame of strategy code in a traceback: code compiled from
    a strategy's source (a built-in, a file, a notebook class), not the
    engine nor a library it calls."""
    found = None
    for frame in traceback.extract_tb(tb):
        name = frame.filename
        if name.startswith(ENGINE_DIR) or "site-packages" in name or "/lib/python" in name:
            continue
        found = frame
    return found


def describe_failure(error: BaseException, event: Event | None = None) -> str:
    """``strategy boom.py line 4 (on_bar), at the bar of 2024-01-03T03:00:00Z
    SYNTH_BTC: ZeroDivisionError: division by zero``; without a strategy
    frame, the error alone."""
    text = f"{type(error).__name__}: {error}"
    frame = strategy_frame(error.__traceback__)
    if frame is None:
        return text
    where = f"strategy {frame.filename} line {frame.lineno} ({frame.name})"
    if event is not None:
        when = iso_utc(event.ts)
        symbol = getattr(event, "instrument", "")
        kind = type(event).__name__.lower()
        where += f", at the {kind} of {when}" + (f" {symbol}" if symbol else "")
    return f"{where}: {text}"
