"""``Result.stats``: the run's figures as a pandas Series, in the order
backtesting.py users know (Start, End, Duration, Exposure Time [%], Equity
Final, Equity Peak, Return [%], ...).

A figure computed as backtesting.py computes it keeps its name; a figure
tidemark computes differently gets its own name, so nobody compares two
different numbers under one label:

* ``CAGR [%]`` is tidemark's ``annualized_return`` (calendar years of 365.25
  days, as backtesting.py's CAGR); backtesting.py's ``Return (Ann.) [%]``
  (geometric mean of daily returns) is not given.
* ``Volatility (Ann., per bar) [%]``, ``Sharpe Ratio (per bar)``,
  ``Sortino Ratio (per bar)``: from the returns of every time step,
  annualised by the median step (tidemark's metrics), not from daily
  returns; ``Calmar Ratio (CAGR)`` divides the CAGR by the max drawdown.
* ``Profit Factor (PnL)``: gross profit over gross loss in money (backtesting.py
  sums trade returns in percent).
* ``Buy & Hold Return [%]`` runs from the first bar's close (backtesting.py
  starts after the strategy's indicator warm-up); with several symbols it is
  their equal-weight average.
* Money figures are labelled with the run's currency (``Equity Final [USD]``).

Alpha and Beta are not given. ``_equity_curve`` and ``_trades`` hold the
frames, as in backtesting.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def _closed(trades: pd.DataFrame) -> pd.DataFrame:
    if not len(trades):
        return trades
    return trades[~trades["open"].astype(bool)]


def drawdown_periods(equity: pd.Series) -> pd.DataFrame:
    """Each stretch below the running peak: its ``start`` (the peak's time),
    ``end`` (when equity is back at the peak, or the last time if never),
    ``depth`` (the lowest drawdown, a negative fraction) and ``recovered``."""
    values = equity.to_numpy(dtype=float)
    columns = ["start", "end", "depth", "recovered"]
    if len(values) < 2:
        return pd.DataFrame(columns=columns)
    peak = np.maximum.accumulate(values)
    dd = values / peak - 1.0
    under = dd < 0
    rows = []
    index = equity.index
    i, n = 0, len(values)
    while i < n:
        if not under[i]:
            i += 1
            continue
        j = i
        while j < n and under[j]:
            j += 1
        recovered = j < n
        rows.append(
            {
                "start": index[i - 1] if i > 0 else index[i],
                "end": index[j] if recovered else index[n - 1],
                "depth": float(dd[i:j].min()),
                "recovered": recovered,
            }
        )
        i = j
    return pd.DataFrame(rows, columns=columns)


def buy_and_hold(bars: dict[str, pd.DataFrame]) -> float:
    """First close to last close, equal-weight over the symbols (a fraction)."""
    rets = []
    for frame in bars.values():
        close = frame["close"].to_numpy(dtype=float) if len(frame) else np.array([])
        close = close[np.isfinite(close)]
        if len(close) >= 2 and close[0] != 0:
            rets.append(close[-1] / close[0] - 1.0)
    return float(np.mean(rets)) if rets else float("nan")


def _geometric_mean(returns: np.ndarray) -> float:
    returns = returns[np.isfinite(returns)]
    if not len(returns) or (returns <= -1).any():
        return float("nan") if not len(returns) else 0.0
    return float(np.exp(np.log1p(returns).mean()) - 1.0)


def _ceil(value: Any, step: pd.Timedelta | None) -> Any:
    if isinstance(value, pd.Timedelta) and step is not None and step > pd.Timedelta(0):
        return value.ceil(step.resolution_string)
    return value


def compute_stats(result: Any) -> pd.Series:
    """The figures of ``result`` (a :class:`~tidemark.adapters.backtest.Result`)."""
    m = result.metrics
    cur = str(result.config.get("currency") or "USD")
    eq = result.equity
    equity = eq["equity"] if len(eq) else pd.Series(dtype=float)
    values = equity.to_numpy(dtype=float)
    step = pd.Timedelta(np.median(np.diff(eq.index.as_unit("ns").asi8))) if len(eq) > 1 else None
    closed = _closed(result.trades)
    pnl = (
        closed["pnl_account" if "pnl_account" in closed else "pnl"].to_numpy(dtype=float)
        if len(closed)
        else np.array([])
    )
    rets = closed["return_pct"].to_numpy(dtype=float) if len(closed) else np.array([])
    durations = closed["duration"] if len(closed) else pd.Series(dtype="timedelta64[ns]")
    periods = drawdown_periods(equity)
    dd_durations = (periods["end"] - periods["start"]) if len(periods) else pd.Series(dtype="timedelta64[ns]")
    step_rets = np.diff(values) / values[:-1] if len(values) > 1 else np.array([])
    per_year = (365.25 * 86_400e9 / step.value) if step is not None and step.value > 0 else float("nan")
    vol = float(np.std(step_rets, ddof=1) * math.sqrt(per_year)) if len(step_rets) > 1 else float("nan")
    win_rate = float((pnl > 0).mean()) if len(pnl) else float("nan")
    avg_win = pnl[pnl > 0].mean() if (pnl > 0).any() else float("nan")
    avg_loss = -pnl[pnl < 0].mean() if (pnl < 0).any() else float("nan")
    fills = result.fills
    slippage_cost = float((fills["slippage"] * fills["quantity"]).sum()) if len(fills) else 0.0

    s: dict[str, Any] = {}
    s["Start"] = eq.index[0] if len(eq) else pd.NaT
    s["End"] = eq.index[-1] if len(eq) else pd.NaT
    s["Duration"] = s["End"] - s["Start"] if len(eq) else pd.NaT
    s["Exposure Time [%]"] = m["exposure_time"] * 100
    s[f"Equity Final [{cur}]"] = m["final_equity"]
    s[f"Equity Peak [{cur}]"] = float(values.max()) if len(values) else m["initial_cash"]
    s[f"Fees [{cur}]"] = m["fees_paid"]
    s[f"Funding [{cur}]"] = m.get("funding", 0.0)
    s[f"Slippage Cost [{cur}]"] = slippage_cost
    s["Return [%]"] = m["total_return"] * 100
    s["Buy & Hold Return [%]"] = buy_and_hold(result.bars) * 100
    s["CAGR [%]"] = m["annualized_return"] * 100
    s["Volatility (Ann., per bar) [%]"] = vol * 100
    s["Sharpe Ratio (per bar)"] = m["sharpe"]
    s["Sortino Ratio (per bar)"] = m["sortino"]
    s["Calmar Ratio (CAGR)"] = m["calmar"]
    s["Max. Drawdown [%]"] = m["max_drawdown"] * 100
    s["Avg. Drawdown [%]"] = float(periods["depth"].mean()) * 100 if len(periods) else float("nan")
    s["Max. Drawdown Duration"] = _ceil(dd_durations.max(), step) if len(periods) else pd.NaT
    s["Avg. Drawdown Duration"] = _ceil(dd_durations.mean(), step) if len(periods) else pd.NaT
    s["# Trades"] = m["trades"]
    s["Open Trades"] = m["open_trades"]
    s["Win Rate [%]"] = win_rate * 100
    s["Best Trade [%]"] = float(rets.max()) * 100 if len(rets) else float("nan")
    s["Worst Trade [%]"] = float(rets.min()) * 100 if len(rets) else float("nan")
    s["Avg. Trade [%]"] = _geometric_mean(rets) * 100
    s["Max. Trade Duration"] = _ceil(durations.max(), step) if len(durations) else pd.NaT
    s["Avg. Trade Duration"] = _ceil(durations.mean(), step) if len(durations) else pd.NaT
    s["Profit Factor (PnL)"] = m["profit_factor"]
    s["Expectancy [%]"] = float(rets.mean()) * 100 if len(rets) else float("nan")
    s[f"Expectancy [{cur}]"] = m["expectancy"]
    s["SQN"] = (
        math.sqrt(len(pnl)) * float(pnl.mean()) / float(pnl.std(ddof=1))
        if len(pnl) > 1 and pnl.std(ddof=1) > 0
        else float("nan")
    )
    s["Kelly Criterion"] = win_rate - (1 - win_rate) / (avg_win / avg_loss) if avg_loss > 0 else float("nan")
    s[f"Avg. MAE [{cur}]"] = m["avg_mae"]
    s[f"Avg. MFE [{cur}]"] = m["avg_mfe"]
    s["Rejections"] = m.get("rejections", 0)
    s["Bars"] = m["bars"]
    s["_equity_curve"] = result.equity
    s["_trades"] = result.trades
    return pd.Series(s, dtype=object, name=result.run_id)


GROUPS: dict[str, list[str]] = {
    "Returns": [
        "Return [%]",
        "CAGR [%]",
        "Equity Final [{cur}]",
        "Equity Peak [{cur}]",
        "Buy & Hold Return [%]",
        "Exposure Time [%]",
    ],
    "Risk": [
        "Max. Drawdown [%]",
        "Avg. Drawdown [%]",
        "Max. Drawdown Duration",
        "Avg. Drawdown Duration",
        "Volatility (Ann., per bar) [%]",
        "Sharpe Ratio (per bar)",
        "Sortino Ratio (per bar)",
        "Calmar Ratio (CAGR)",
    ],
    "Trades": [
        "# Trades",
        "Open Trades",
        "Win Rate [%]",
        "Best Trade [%]",
        "Worst Trade [%]",
        "Avg. Trade [%]",
        "Expectancy [%]",
        "Expectancy [{cur}]",
        "Profit Factor (PnL)",
        "SQN",
        "Kelly Criterion",
        "Max. Trade Duration",
        "Avg. Trade Duration",
        "Avg. MAE [{cur}]",
        "Avg. MFE [{cur}]",
    ],
    "Costs": [
        "Fees [{cur}]",
        "Funding [{cur}]",
        "Slippage Cost [{cur}]",
        "Rejections",
    ],
}
"""The report's metric groups, by stats label (``{cur}``: the currency)."""
