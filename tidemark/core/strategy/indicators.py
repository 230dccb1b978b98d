"""Causal indicators over NumPy arrays.

Every function here is causal: the value at index ``j`` depends only on
inputs at indices ``<= j``. That is what lets the strategy runtime compute an
indicator once over a whole preloaded series and hand out prefix views
without revealing the future. Warm-up values are NaN.

Conventions: ``ema`` is seeded with the first value (pandas
``ewm(span=n, adjust=False)``); ``rsi`` and ``atr`` use Wilder smoothing
(alpha = 1/n); ``stdev`` is the sample standard deviation (ddof=1);
``ewm_vol`` is the EWM standard deviation of simple returns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

FloatArray = np.ndarray


def _series(x: FloatArray) -> pd.Series:
    return pd.Series(np.asarray(x, dtype=float), copy=False)


def sma(x: FloatArray, n: int) -> FloatArray:
    return _series(x).rolling(n, min_periods=n).mean().to_numpy()


def ema(x: FloatArray, n: int) -> FloatArray:
    return _series(x).ewm(span=n, adjust=False).mean().to_numpy()


def wilder(x: FloatArray, n: int) -> FloatArray:
    return _series(x).ewm(alpha=1.0 / n, adjust=False).mean().to_numpy()


def rsi(x: FloatArray, n: int = 14) -> FloatArray:
    delta = np.diff(np.asarray(x, dtype=float), prepend=np.nan)
    gain = np.where(delta > 0, delta, 0.0)
    loss = np.where(delta < 0, -delta, 0.0)
    gain[0] = loss[0] = np.nan
    avg_gain = _series(gain).ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean().to_numpy()
    avg_loss = _series(loss).ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    out = np.where(avg_loss == 0.0, 100.0, out)
    out[:n] = np.nan
    return out


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    prev_close = np.concatenate(([np.nan], np.asarray(close, dtype=float)[:-1]))
    ranges = np.vstack((high - low, np.abs(high - prev_close), np.abs(low - prev_close)))
    return np.nanmax(ranges, axis=0)


def atr(high: FloatArray, low: FloatArray, close: FloatArray, n: int = 14) -> FloatArray:
    out = wilder(true_range(high, low, close), n).copy()
    out[: n - 1] = np.nan
    return out


def stdev(x: FloatArray, n: int) -> FloatArray:
    return _series(x).rolling(n, min_periods=n).std(ddof=1).to_numpy()


def returns(x: FloatArray) -> FloatArray:
    s = _series(x)
    return (s / s.shift(1) - 1.0).to_numpy()


def ewm_vol(x: FloatArray, span: int) -> FloatArray:
    return _series(returns(x)).ewm(span=span, adjust=False).std().to_numpy()


def correlation(a: FloatArray, b: FloatArray, n: int) -> FloatArray:
    return _series(a).rolling(n, min_periods=n).corr(_series(b)).to_numpy()


def highest(x: FloatArray, n: int) -> FloatArray:
    return _series(x).rolling(n, min_periods=n).max().to_numpy()


def lowest(x: FloatArray, n: int) -> FloatArray:
    return _series(x).rolling(n, min_periods=n).min().to_numpy()


def crossover(a: FloatArray, b: FloatArray) -> FloatArray:
    """True at i where a crosses above b: a[i] > b[i] and a[i-1] <= b[i-1]."""
    a = np.asarray(a, dtype=float)
    b = np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def crossunder(a: FloatArray, b: FloatArray) -> FloatArray:
    """True at i where a crosses below b: a[i] < b[i] and a[i-1] >= b[i-1]."""
    a = np.asarray(a, dtype=float)
    b = np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[1:] < b[1:]) & (a[:-1] >= b[:-1])
    return out


FUNCTIONS: dict[str, Callable[..., FloatArray]] = {
    "sma": sma,
    "ema": ema,
    "rsi": rsi,
    "atr": atr,
    "stdev": stdev,
    "ewm_vol": ewm_vol,
    "correlation": correlation,
    "highest": highest,
    "lowest": lowest,
    "crossover": crossover,
    "crossunder": crossunder,
    "returns": returns,
    "true_range": true_range,
}
