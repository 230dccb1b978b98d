"""Downsampling that never hides an extreme.

A long run has more bars than a screen has pixel columns, and more than a
report file should carry. Two reductions, both exact about extremes:

* :func:`m4_indexes` keeps, in each bucket of consecutive points, the first,
  the last, the lowest and the highest point of every given series (the M4
  reduction). The kept points are real points at their real times, so a line
  through them has, in every bucket, the same extremes as the full line; its
  lowest point is the series' lowest point.
* :func:`aggregate_ohlc` merges each bucket of consecutive bars into one
  candle (first open, highest high, lowest low, last close, summed volume),
  as a coarser timeframe would: the highs and lows of the candles are those
  of the bars.

The browser then reduces once more to its pixel columns (line paths by
their min and max per column, candles merged per column), so what is drawn
keeps every extreme at any zoom.
"""

from __future__ import annotations

import math

import numpy as np

from tidemark.core.series import sorted_distinct


def bucket_size(n: int, max_buckets: int) -> int:
    """The number of consecutive points per bucket so that ``n`` points make
    at most ``max_buckets`` buckets (1: no reduction)."""
    if max_buckets < 1:
        raise ValueError("max_buckets must be at least 1")
    return max(1, math.ceil(n / max_buckets))


def m4_indexes(columns: list[np.ndarray], max_buckets: int) -> np.ndarray:
    """Sorted, unique indexes of the points to keep of series of equal length:
    in each bucket of :func:`bucket_size` consecutive points, its first and
    last point and, for every series, the point of its minimum and of its
    maximum (NaNs ignored). All indexes when the series fit in
    ``max_buckets``."""
    if not columns:
        return np.arange(0, dtype=np.int64)
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("series of different lengths")
    size = bucket_size(n, max_buckets)
    if size == 1 or n == 0:
        return np.arange(n, dtype=np.int64)
    buckets = math.ceil(n / size)
    starts = np.arange(buckets, dtype=np.int64) * size
    ends = np.minimum(starts + size, n) - 1
    picks = [starts, ends]
    pad = buckets * size - n
    for column in columns:
        values = np.asarray(column, dtype=np.float64)
        low = np.concatenate((np.where(np.isnan(values), np.inf, values), np.full(pad, np.inf)))
        high = np.concatenate((np.where(np.isnan(values), -np.inf, values), np.full(pad, -np.inf)))
        picks.append(starts + np.argmin(low.reshape(buckets, size), axis=1))
        picks.append(starts + np.argmax(high.reshape(buckets, size), axis=1))
    kept = sorted_distinct(np.concatenate(picks))
    return kept[kept < n]


def aggregate_ohlc(
    times: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    max_buckets: int,
) -> tuple[dict[str, np.ndarray], int]:
    """Bars merged ``size`` at a time into at most ``max_buckets`` candles:
    time of the bucket's first bar, first open, highest high, lowest low,
    last close, total volume, and ``count`` (bars merged). Returns the
    candles and ``size``."""
    n = len(times)
    size = bucket_size(n, max_buckets)
    if size == 1 or n == 0:
        return {
            "time": np.asarray(times),
            "open": np.asarray(open_, dtype=np.float64),
            "high": np.asarray(high, dtype=np.float64),
            "low": np.asarray(low, dtype=np.float64),
            "close": np.asarray(close, dtype=np.float64),
            "volume": np.asarray(volume, dtype=np.float64),
            "count": np.ones(n, dtype=np.int64),
        }, 1
    starts = np.arange(0, n, size, dtype=np.int64)
    ends = np.minimum(starts + size, n) - 1
    return {
        "time": np.asarray(times)[starts],
        "open": np.asarray(open_, dtype=np.float64)[starts],
        "high": np.fmax.reduceat(np.asarray(high, dtype=np.float64), starts),
        "low": np.fmin.reduceat(np.asarray(low, dtype=np.float64), starts),
        "close": np.asarray(close, dtype=np.float64)[ends],
        "volume": np.add.reduceat(np.asarray(volume, dtype=np.float64), starts),
        "count": ends - starts + 1,
    }, size
