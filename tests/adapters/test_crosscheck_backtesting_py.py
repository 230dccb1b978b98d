"""The same strategy in tidemark and in backtesting.py (an independent
engine) gives the same trades and the same final equity.

Alignment (see also ../shared/guides/peer-benchmarks.md):
* EMA seeded with the first close (pandas ``ewm(span=n, adjust=False)``);
  backtesting.py starts ``next()`` once every indicator is non-NaN, so its
  EMAs are blanked before index 25 and both engines first test a cross at
  bar 26 (comparing bars 25 and 26);
* cross up: ``fast[i-1] <= slow[i-1] and fast[i] > slow[i]`` in both (not
  ``backtesting.lib.crossover``, which uses a strict ``<``);
* long only, 1 unit, signal on close, fill at the next open
  (``trade_on_close=False``), ``exclusive_orders=True``;
* commission 4 bp of notional on entry and exit; no slippage;
* final equity marks an open position at the last close without closing it
  (backtesting.py's default ``finalize_trades=False``);
* backtesting.py's dates are naive; tidemark is told they are UTC.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import run_backtest

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest, Strategy  # noqa: E402

DATA = Path(backtesting.__file__).parent / "test"


def blanked_ema(values: np.ndarray, n: int) -> np.ndarray:
    out = pd.Series(values).ewm(span=n, adjust=False).mean().to_numpy(copy=True)
    out[:25] = np.nan
    return out


class EmaCross(Strategy):
    def init(self) -> None:
        self.fast = self.I(blanked_ema, self.data.Close, 12)
        self.slow = self.I(blanked_ema, self.data.Close, 26)

    def next(self) -> None:
        f0, f1, s0, s1 = self.fast[-2], self.fast[-1], self.slow[-2], self.slow[-1]
        if f0 <= s0 and f1 > s1:
            if not self.position:
                self.buy(size=1)
        elif f0 >= s0 and f1 < s1:
            self.position.close()


def peer_run(csv: Path) -> tuple[pd.DataFrame, float]:
    data = pd.read_csv(csv, index_col=0, parse_dates=True)
    bt = Backtest(data, EmaCross, cash=1_000_000, commission=0.0004, trade_on_close=False, exclusive_orders=True)
    stats = bt.run()
    return stats._trades, float(stats["Equity Final [$]"])


@pytest.mark.parametrize(("name", "min_trades"), [("GOOG", 20), ("BTCUSD", 1), ("EURUSD", 50)])
def test_ema_cross_matches_backtesting_py(name: str, min_trades: int, tmp_path: Path) -> None:
    csv = DATA / f"{name}.csv"
    peer_trades, peer_equity = peer_run(csv)
    result = run_backtest(
        "ema_cross",
        data=[csv],
        tz="UTC",
        initial_cash=1_000_000,
        commission_bps=4,
        journal=tmp_path / f"{name}.journal",
    )
    ours = result.trades[~result.trades["open"]]
    assert len(peer_trades) >= min_trades
    assert len(ours) == len(peer_trades)
    entry = pd.to_datetime(peer_trades["EntryTime"]).dt.tz_localize("UTC")
    exit_ = pd.to_datetime(peer_trades["ExitTime"]).dt.tz_localize("UTC")
    assert list(ours["entry_time"]) == list(entry)
    assert list(ours["exit_time"]) == list(exit_)
    np.testing.assert_allclose(ours["entry_price"].to_numpy(), peer_trades["EntryPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["exit_price"].to_numpy(), peer_trades["ExitPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["pnl"].to_numpy(), peer_trades["PnL"].to_numpy(), rtol=1e-9, atol=1e-9)
    assert result.metrics["final_equity"] == pytest.approx(peer_equity, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "cash", "leverage", "refused"),
    [
        ("GOOG", 50, 1, True),  # cash below every price: neither engine trades
        ("GOOG", 250, 1, True),  # a cash account: entries refused once GOOG costs more than the equity
        ("GOOG", 250, 2, False),  # the same with 2x: every entry fits
        ("BTCUSD", 1_000, 1, True),
        ("BTCUSD", 1_000, 3, False),
        ("EURUSD", 0.5, 4, False),  # 4x on a tiny account: 79 trades
    ],
)
def test_buying_power_matches_backtesting_py(
    name: str, cash: float, leverage: float, refused: bool, tmp_path: Path
) -> None:
    """backtesting.py cancels an order the margin cannot cover (``margin`` =
    1/leverage); tidemark refuses it (or cancels it at the fill). The same
    trades and final equity either way."""
    data = pd.read_csv(DATA / f"{name}.csv", index_col=0, parse_dates=True)
    bt = Backtest(
        data,
        EmaCross,
        cash=cash,
        commission=0.0004,
        trade_on_close=False,
        exclusive_orders=True,
        margin=1 / leverage,
    )
    with pytest.warns(UserWarning) if refused else warnings.catch_warnings():
        stats = bt.run()
    peer_trades = stats._trades
    result = run_backtest(
        "ema_cross",
        data=[DATA / f"{name}.csv"],
        tz="UTC",
        initial_cash=cash,
        commission_bps=4,
        leverage=leverage,
        journal=tmp_path / "j.journal",
    )
    ours = result.trades[~result.trades["open"]]
    assert len(ours) == len(peer_trades)
    assert (result.metrics["rejections"] > 0) == refused
    if len(ours):
        entry = pd.to_datetime(peer_trades["EntryTime"]).dt.tz_localize("UTC")
        assert list(ours["entry_time"]) == list(entry)
        np.testing.assert_allclose(ours["pnl"].to_numpy(), peer_trades["PnL"].to_numpy(), rtol=1e-9, atol=1e-9)
    assert result.metrics["final_equity"] == pytest.approx(float(stats["Equity Final [$]"]), rel=1e-9)
    assert result.metrics["final_equity"] > 0


@pytest.mark.parametrize("name", ["GOOG", "BTCUSD", "EURUSD"])
def test_metrics_match_backtesting_py_statistics(name: str, tmp_path: Path) -> None:
    """The metrics both engines define the same way agree with backtesting.py's
    own statistics: return, CAGR (calendar years), max drawdown (on the
    close-marked equity curve), win rate and trade count. backtesting.py's
    profit factor is a ratio of trade *returns*; tidemark's is of trade PnL,
    so that one is checked against the peer's PnL column. (Sharpe and
    exposure use different conventions in the two engines.)"""
    data = pd.read_csv(DATA / f"{name}.csv", index_col=0, parse_dates=True)
    bt = Backtest(data, EmaCross, cash=1_000_000, commission=0.0004, trade_on_close=False, exclusive_orders=True)
    stats = bt.run()
    result = run_backtest(
        "ema_cross",
        data=[DATA / f"{name}.csv"],
        tz="UTC",
        initial_cash=1_000_000,
        commission_bps=4,
        journal=tmp_path / "j.journal",
    )
    m = result.metrics
    assert m["trades"] == stats["# Trades"]
    assert m["total_return"] * 100 == pytest.approx(stats["Return [%]"], rel=1e-7)
    assert m["annualized_return"] * 100 == pytest.approx(stats["CAGR [%]"], rel=1e-7)
    assert m["max_drawdown"] * 100 == pytest.approx(stats["Max. Drawdown [%]"], rel=1e-7)
    assert m["win_rate"] * 100 == pytest.approx(stats["Win Rate [%]"], rel=1e-12)
    pnl = stats._trades["PnL"]
    losses = -pnl[pnl < 0].sum()
    if losses > 0:
        assert m["profit_factor"] == pytest.approx(pnl[pnl > 0].sum() / losses, rel=1e-9)
    else:
        assert math.isnan(m["profit_factor"])
    assert m["expectancy"] == pytest.approx(pnl.mean(), rel=1e-9)
