"""The return metrics against an independent implementation: empyrical
(empyrical-reloaded) on real equity curves (tidemark runs on the shared
Binance data). Same definitions: simple returns per step, Sharpe and Sortino
with the sample standard deviation and the root-mean-square downside, both
annualised by the steps per year; CAGR over the curve's span."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidemark

empyrical = pytest.importorskip("empyrical", reason="empyrical-reloaded is in the test extra: pip install -e '.[test]'")

CASES = {
    "BTC 1h ema_cross": ("BTC_USDT-1h", "ema_cross", {"fast": 12, "slow": 26}),
    "ETH 1h sma_cross": ("ETH_USDT-1h", "sma_cross", {"fast": 20, "slow": 60}),
    "BTC 1d ema_cross": ("BTC_USDT-1d", "ema_cross", {"fast": 5, "slow": 20}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_return_metrics_equal_empyrical_on_real_equity_curves(case: str, shared_data: Path, tmp_path: Path) -> None:
    name, strategy, params = CASES[case]
    bars = pd.read_feather(shared_data / "ohlcv" / "binance_spot" / f"{name}.feather").set_index("date")
    result = tidemark.backtest({name[:3]: bars}, strategy, initial_cash=100_000, commission_bps=10, size=0.1, **params)
    equity = result.equity["equity"]
    assert len(result.trades) > 10 and bool((equity > 0).all())
    times = equity.index.asi8
    assert len(np.unique(np.diff(times))) == 1  # a regular curve: step count and calendar span agree
    periods = 365.25 * 86_400e9 / float(times[1] - times[0])
    returns = equity.pct_change().dropna()
    m = result.metrics
    assert m["max_drawdown"] == pytest.approx(empyrical.max_drawdown(returns), rel=1e-9)
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=periods), rel=1e-9)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=periods), rel=1e-9)
    first = float(equity.iloc[0])
    assert first == pytest.approx(100_000)  # no trade before the first step closes: the curve starts at the cash
    assert m["annualized_return"] == pytest.approx(empyrical.annual_return(returns, annualization=periods), rel=1e-9)
    assert m["calmar"] == pytest.approx(empyrical.calmar_ratio(returns, annualization=periods), rel=1e-9)
