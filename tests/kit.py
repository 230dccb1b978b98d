"""Builders shared by tests: bar files and strategy files."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def write_bars(
    path: Path,
    closes: Sequence[float],
    *,
    opens: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    volume: float = 1_000.0,
    start: str = "2024-01-01",
    freq: str = "1h",
) -> Path:
    """A CSV of bars (open times from ``start``, every ``freq``); opens
    default to the previous close, highs and lows to the bar's extremes."""
    close = np.asarray(closes, dtype=float)
    open_ = np.asarray(opens, dtype=float) if opens is not None else np.r_[close[0], close[:-1]]
    high = np.asarray(highs, dtype=float) if highs is not None else np.maximum(open_, close)
    low = np.asarray(lows, dtype=float) if lows is not None else np.minimum(open_, close)
    frame = pd.DataFrame(
        {
            "date": pd.date_range(start, periods=len(close), freq=freq, tz="UTC"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    frame.to_csv(path, index=False)
    return path


def write_strategy(path: Path, source: str) -> Path:
    """A strategy file from (indented) source text."""
    path.write_text(textwrap.dedent(source).lstrip())
    return path
