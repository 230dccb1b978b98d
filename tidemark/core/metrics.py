"""Performance metrics from an equity curve and a round-trip trade table.

Returns are per time step of the equity curve; annualisation uses calendar
time (365.25 days a year) and the median step length, so it is right for
24/7 crypto bars and approximately right for session data. Ratios are NaN
where undefined (no variance, no losing trade).

Ruin: once equity reaches zero or below, returns are no longer defined (a
step from 0 or across 0 divides by nothing or flips sign), so the
return-based metrics (annualized return, max drawdown, Sharpe, Sortino,
Calmar) are NaN and ``ruined_at`` names the first such step (ISO-8601 UTC);
final equity and total return stay, as money facts. Money figures are in the
account currency: trade figures use each trade's ``pnl_account`` (its
settlement-currency PnL converted at the rates of its fills' times);
``avg_mae``/``avg_mfe`` are NaN when the trades settle in more than one
currency (excursions are not converted).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

YEAR_NS = 365.25 * 86_400 * 1e9


def compute(equity: pd.DataFrame, trades: pd.DataFrame, initial_cash: float, fees_paid: float = 0.0) -> dict[str, Any]:
    """The summary metrics (floats and ints; JSON-ready)."""
    values = equity["equity"].to_numpy(dtype=float) if len(equity) else np.array([initial_cash])
    ruined = np.flatnonzero(values <= 0.0)
    ruined_at = str(equity.index[ruined[0]].isoformat()) if len(ruined) and len(equity) else None
    final = float(values[-1])
    total_return = final / initial_cash - 1.0
    times = equity.index.to_numpy(dtype="datetime64[ns]").astype(np.int64) if len(equity) else np.array([0])
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    years = span / YEAR_NS
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    periods = YEAR_NS / step if step > 0 else float("nan")
    cagr = (final / initial_cash) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else float("nan")
    peak = np.maximum.accumulate(values)
    sharpe = sortino = max_dd = float("nan")
    rets = np.array([])
    if ruined_at is None:
        max_dd = float((values / peak - 1.0).min())
        rets = np.diff(values) / values[:-1]
    else:
        cagr = float("nan")
    if len(rets) > 1:
        std = float(np.std(rets, ddof=1))
        mean = float(np.mean(rets))
        if std > 0:
            sharpe = mean / std * math.sqrt(periods)
        downside = np.minimum(rets, 0.0)
        dd_dev = float(np.sqrt(np.mean(downside**2)))
        if dd_dev > 0:
            sortino = mean / dd_dev * math.sqrt(periods)
    closed = trades[~trades["open"].astype(bool)] if len(trades) else trades
    # Trades of several settlement currencies (spot in USD, an inverse
    # future in BTC) are compared in the account currency (``pnl_account``).
    column = "pnl_account" if "pnl_account" in trades else "pnl"
    pnl = closed[column].to_numpy(dtype=float) if len(closed) else np.array([])
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    in_market = float(equity["in_market"].mean()) if len(equity) and "in_market" in equity else 0.0
    return {
        "initial_cash": float(initial_cash),
        "final_equity": final,
        "total_return": total_return,
        "annualized_return": cagr,
        "max_drawdown": max_dd,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": cagr / abs(max_dd) if max_dd < 0 and not math.isnan(cagr) else float("nan"),
        "ruined_at": ruined_at,
        "trades": len(closed),
        "open_trades": len(trades) - len(closed),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else float("nan"),
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else float("nan"),
        "expectancy": float(pnl.mean()) if len(pnl) else float("nan"),
        "avg_mae": _same_currency_mean(closed, "mae"),
        "avg_mfe": _same_currency_mean(closed, "mfe"),
        "exposure_time": in_market,
        "fees_paid": float(fees_paid),
        "bars": len(equity),
        "years": years,
    }


def _same_currency_mean(closed: pd.DataFrame, column: str) -> float:
    """Mean of a settlement-currency column, NaN across several currencies."""
    if not len(closed):
        return float("nan")
    if "currency" in closed and closed["currency"].nunique() > 1:
        return float("nan")
    return float(closed[column].mean())
