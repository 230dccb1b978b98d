"""Monte Carlo on a finished run: how much of its result was the order (or
the luck) of its trades and days.

Two resamplings, both seeded explicitly (``numpy.random.default_rng(seed)``;
the seed is in every output's ``attrs``; the same seed and run always give
the same frame):

- :func:`bootstrap_trades`: the closed trades' PnL drawn with replacement,
  one path of as many trades as the run closed, from the initial cash.
- :func:`block_bootstrap_returns`: the run's *daily* returns (from
  :func:`analytics.daily_equity`; daily, so runs of any bar size compare and
  a block is a number of days) resampled in circular blocks, which keeps
  the short-range dependence (volatility clusters) inside each block.

Each simulation gives its final equity (account currency), its max
drawdown (negative fraction, as :mod:`tidemark.core.metrics`) and the time
to recover from it: the steps (trades or days) from the trough of the
maximum drawdown to the first step back at or above the peak before it; 0
without a drawdown; NaN if the path ends below that peak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidemark.adapters.research.analytics import daily_equity, ruined_at

COLUMNS = ("final_equity", "max_drawdown", "time_to_recover", "ruined")
CHUNK_CELLS = 2_000_000
"""Simulations are drawn in chunks of about this many path steps (bounded
memory; the chunking depends only on the path length, so it is the same
for the same run and seed)."""


def path_stats(paths: np.ndarray) -> pd.DataFrame:
    """Final equity, max drawdown and time to recover of each row of
    ``paths`` (equity at step 0, 1, ...).

    A path whose equity reaches zero or below is ruined there: the account
    stops (final equity is its value at that step), and its drawdown and
    time to recover are NaN (returns are undefined past ruin, as in
    :mod:`tidemark.core.metrics`)."""
    paths = np.asarray(paths, dtype=float)
    n, steps = paths.shape
    bad = ~(paths > 0.0)
    ruined = bad.any(axis=1)
    first_bad = np.where(ruined, bad.argmax(axis=1), steps - 1)
    final = paths[np.arange(n), first_bad]
    peak = np.maximum.accumulate(paths, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = paths / peak - 1.0
    trough = drawdown.argmin(axis=1)
    max_dd = drawdown[np.arange(n), trough]
    level = peak[np.arange(n), trough]
    later = np.arange(steps)[None, :] > trough[:, None]
    back = later & (paths >= level[:, None])
    recovered = back.any(axis=1)
    recover = np.where(recovered, back.argmax(axis=1) - trough, np.nan)
    recover = np.where(max_dd < 0.0, recover, 0.0)
    return pd.DataFrame(
        {
            "final_equity": final,
            "max_drawdown": np.where(ruined, np.nan, max_dd),
            "time_to_recover": np.where(ruined, np.nan, recover),
            "ruined": ruined,
        }
    )


def _simulate(draw: Any, start: float, steps: int, n: int, step: Any) -> pd.DataFrame:
    """``n`` paths of ``steps`` steps from ``start``, drawn in chunks:
    ``draw(rows)`` gives a (rows, steps) array, ``step(start, draws)`` the
    path after each step."""
    rows = max(1, CHUNK_CELLS // max(steps, 1))
    frames = []
    for first in range(0, n, rows):
        draws = draw(min(rows, n - first))
        paths = np.concatenate([np.full((len(draws), 1), start), step(start, draws)], axis=1)
        frames.append(path_stats(paths))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
    frame.index.name = "simulation"
    return frame


def _closed_pnl(result: Any) -> np.ndarray:
    trades = result.trades
    if not len(trades):
        return np.array([])
    closed = trades[~trades["open"].astype(bool)]
    column = "pnl_account" if "pnl_account" in closed else "pnl"
    return closed[column].to_numpy(dtype=float)


def bootstrap_trades(result: Any, n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Resample the run's closed trades' PnL with replacement.

    Each simulation draws as many trades as the run closed (uniformly, with
    replacement) and adds their ``pnl_account`` (account currency: net of
    fees, converted at the trade's own rates) in the order drawn, starting
    from ``result.metrics["initial_cash"]``. Funding, interest and open
    positions are not trades, so the run's own final equity can differ from
    the sum of its trades.

    Parameters
    ----------
    result
        A :class:`tidemark.adapters.backtest.Result` (``trades``,
        ``metrics``).
    n
        Number of simulations (>= 1).
    seed
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    pd.DataFrame
        One row per simulation: ``final_equity`` (account currency),
        ``max_drawdown`` (negative fraction), ``time_to_recover`` (trades),
        ``ruined`` (equity reached zero or below: the account stops there).
        ``attrs``: ``method``, ``seed``, ``n``, ``trades``, ``initial_cash``,
        ``unit``.

    Raises
    ------
    ValueError
        ``n < 1``, or a run without closed trades (nothing to resample).
    """
    _check_n(n)
    pnl = _closed_pnl(result)
    if not len(pnl):
        raise ValueError("bootstrap_trades: the run closed no trades; there is nothing to resample")
    start = float(result.metrics["initial_cash"])
    rng = np.random.default_rng(seed)
    k = len(pnl)
    frame = _simulate(
        lambda rows: pnl[rng.integers(0, k, size=(rows, k))], start, k, n, lambda s, d: s + np.cumsum(d, axis=1)
    )
    frame.attrs.update(method="trades", seed=seed, n=n, trades=k, initial_cash=start, unit="trades")
    return frame


def daily_returns(result: Any, initial_cash: float | None = None) -> pd.Series:
    """The run's daily returns (fractions): each UTC day's last equity
    over the day before's; the first day's is measured from the initial
    cash (``result.metrics["initial_cash"]`` unless given), so compounding
    them from the initial cash gives the curve's last value."""
    curve = daily_equity(result)
    if initial_cash is None:
        initial_cash = float(result.metrics["initial_cash"])
    values = np.r_[initial_cash, curve.to_numpy(dtype=float)]
    return pd.Series(values[1:] / values[:-1] - 1.0, index=curve.index, name="return")


def block_bootstrap_returns(result: Any, n: int = 1000, block: int = 20, seed: int = 0) -> pd.DataFrame:
    """Circular block bootstrap of the run's daily returns.

    Each simulation joins blocks of ``block`` consecutive daily returns,
    each starting at a uniformly drawn day and wrapping around the end of
    the series (circular: every day is equally likely to be drawn), until
    it has as many days as the run, then compounds them from the initial
    cash. A block as long as the run (or longer: it is cut to the run's
    length) draws a rotation of the whole series, whose final equity is the
    run's own.

    Returns
    -------
    pd.DataFrame
        As :func:`bootstrap_trades` (``time_to_recover`` in days); attrs
        ``method``, ``seed``, ``n``, ``block`` (days used),
        ``block_requested``, ``days``, ``initial_cash``, ``unit``. If the
        run's equity ever reached zero or below, its returns are undefined:
        every figure is NaN and ``attrs["ruined_at"]`` says when.

    Raises
    ------
    ValueError
        ``n < 1`` or ``block < 1``.
    """
    _check_n(n)
    if block < 1:
        raise ValueError(f"block_bootstrap_returns: block must be at least 1 day, was {block}")
    start = float(result.metrics["initial_cash"])
    curve = daily_equity(result)
    m = len(curve)
    used = min(block, m)
    attrs = dict(method="returns", seed=seed, n=n, block=used, block_requested=block, days=m, initial_cash=start)
    ruin = ruined_at(curve) if start > 0.0 else curve.index[0]
    if ruin is not None:
        frame = pd.DataFrame(np.nan, index=pd.RangeIndex(n, name="simulation"), columns=list(COLUMNS))
        frame.attrs.update(attrs, unit="days", ruined_at=ruin.isoformat())
        return frame
    returns = daily_returns(result, start).to_numpy()
    rng = np.random.default_rng(seed)
    blocks = math.ceil(m / used)
    offsets = np.arange(used)

    def draw(rows: int) -> np.ndarray:
        starts = rng.integers(0, m, size=(rows, blocks))
        index = (starts[:, :, None] + offsets) % m
        return returns[index.reshape(rows, blocks * used)[:, :m]]

    frame = _simulate(draw, start, m, n, lambda s, d: s * np.cumprod(1.0 + d, axis=1))
    frame.attrs.update(attrs, unit="days")
    return frame


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"the number of simulations must be at least 1, was {n}")


WORST_IF_NAN = {"max_drawdown": -math.inf, "time_to_recover": math.inf}
"""How :func:`percentiles` ranks a NaN: a ruined path's drawdown is worse
than any (-inf), a path that never recovered takes longer than any (+inf)."""


def percentiles(frame: pd.DataFrame, q: Sequence[float] = (5, 25, 50, 75, 95)) -> pd.DataFrame:
    """The ``q`` percentiles of each figure of a simulation frame.

    Empirical quantiles without interpolation (``numpy``'s
    ``inverted_cdf``: the smallest value with at least q % of the
    simulations at or below it), so a percentile is always one simulation's
    value. A NaN drawdown (ruin) counts as ``-inf`` and a NaN time to
    recover (never recovered) as ``+inf``: they are the worst outcomes, not
    dropped. Simulations without a final equity (a run whose returns are
    undefined: :func:`block_bootstrap_returns` of a ruined run) are left
    out; if none is left, every percentile is NaN.

    Returns
    -------
    pd.DataFrame
        Indexed ``p5``, ``p25``, ...; one column per figure
        (``final_equity``, ``max_drawdown``, ``time_to_recover``); ``attrs``
        copied from ``frame``.
    """
    columns = [c for c in frame.columns if c != "ruined" and pd.api.types.is_numeric_dtype(frame[c])]
    out = pd.DataFrame(index=[f"p{x:g}" for x in q], columns=columns, dtype=float)
    defined = frame["final_equity"].notna().to_numpy() if "final_equity" in frame else np.ones(len(frame), bool)
    if not defined.any():
        out.attrs.update(frame.attrs)
        return out
    for column in columns:
        values = frame[column].to_numpy(dtype=float)[defined]
        values = np.where(np.isnan(values), WORST_IF_NAN.get(column, np.nan), values)
        values = values[~np.isnan(values)]
        out[column] = np.percentile(values, list(q), method="inverted_cdf")
    out.attrs.update(frame.attrs)
    return out
