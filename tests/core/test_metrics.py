"""tidemark.core.metrics.compute: every figure pinned with a hand-computed value.

The reference figures are computed here by hand (plain Python, no numpy), an
implementation independent of the module: returns per step, the median step
for annualisation (365.25-day years), sample standard deviation for Sharpe,
the root mean square of the negative returns for Sortino.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from tidemark.core.metrics import YEAR_NS, compute

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def curve(values: list[float], days: list[float] | None = None, in_market: list[int] | None = None) -> pd.DataFrame:
    days = days if days is not None else list(range(len(values)))
    index = pd.DatetimeIndex([T0 + d * DAY for d in days])
    frame = pd.DataFrame({"equity": values}, index=index)
    if in_market is not None:
        frame["in_market"] = in_market
    return frame


def trades(rows: list[tuple[bool, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["open", "pnl", "mae", "mfe"])


NO_TRADES = trades([])


def test_year_is_365_25_days() -> None:
    assert YEAR_NS == 365.25 * 86_400 * 10**9


def test_returns_drawdown_and_ratios_by_hand() -> None:
    # Steps of 1, 1 and 2 days: the median step is one day, 365.25 periods a year.
    values = [100.0, 110.0, 99.0, 121.0]
    eq = curve(values, days=[0, 1, 2, 4], in_market=[0, 1, 1, 0])
    m = compute(eq, NO_TRADES, initial_cash=100.0, fees_paid=1.5)
    rets = [0.1, -0.1, 121 / 99 - 1]
    mean = sum(rets) / 3
    sd = statistics.stdev(rets)  # sample (n - 1)
    downside = math.sqrt((0.1**2) / 3)  # only the -10% step is negative
    years = 4 / 365.25
    cagr = 1.21 ** (1 / years) - 1
    assert m["initial_cash"] == 100.0
    assert m["final_equity"] == 121.0
    assert m["total_return"] == pytest.approx(0.21, rel=1e-12)
    assert m["years"] == pytest.approx(years, rel=1e-12)
    assert m["annualized_return"] == pytest.approx(cagr, rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(99 / 110 - 1, rel=1e-12)  # -10% from the 110 peak
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(365.25), rel=1e-12)
    assert m["sharpe"] == pytest.approx(8.70280, rel=1e-5)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(365.25), rel=1e-12)
    assert m["calmar"] == pytest.approx(cagr / 0.1, rel=1e-9)
    assert m["ruined_at"] is None
    assert m["bars"] == 4
    assert m["exposure_time"] == 0.5
    assert m["fees_paid"] == 1.5


def test_annual_steps_cagr_and_calmar() -> None:
    # One step a year: periods = 1, CAGR is the geometric mean of the yearly growth.
    eq = curve([1000.0, 1200.0, 900.0, 1331.0], days=[0, 365.25, 730.5, 1095.75])
    m = compute(eq, NO_TRADES, initial_cash=1000.0)
    assert m["years"] == pytest.approx(3.0, rel=1e-12)
    assert m["annualized_return"] == pytest.approx(0.1, rel=1e-12)  # 1.331 ** (1/3) - 1
    assert m["max_drawdown"] == pytest.approx(-0.25, rel=1e-12)
    assert m["calmar"] == pytest.approx(0.4, rel=1e-12)
    rets = [0.2, -0.25, 1331 / 900 - 1]
    assert m["sharpe"] == pytest.approx(statistics.mean(rets) / statistics.stdev(rets), rel=1e-12)


def test_initial_cash_other_than_the_first_point() -> None:
    # total return and CAGR are measured from the initial cash, not the first equity point.
    eq = curve([90.0, 99.0], days=[0, 365.25])
    m = compute(eq, NO_TRADES, initial_cash=100.0)
    assert m["total_return"] == pytest.approx(-0.01, rel=1e-12)
    assert m["annualized_return"] == pytest.approx(-0.01, rel=1e-12)
    assert m["max_drawdown"] == 0.0  # 90 -> 99 only rises
    assert math.isnan(m["calmar"])  # no drawdown: undefined


def test_a_rising_curve_has_no_sortino_and_constant_has_no_sharpe() -> None:
    up = compute(curve([100.0, 101.0, 103.0, 104.0]), NO_TRADES, 100.0)
    assert up["sharpe"] > 0 and math.isnan(up["sortino"])
    assert up["max_drawdown"] == 0.0
    flat = compute(curve([100.0, 100.0, 100.0]), NO_TRADES, 100.0)
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["sortino"])
    assert flat["annualized_return"] == 0.0
    down = compute(curve([100.0, 99.0, 97.0, 96.0]), NO_TRADES, 100.0)
    rets = [-0.01, 97 / 99 - 1, 96 / 97 - 1]
    rms = math.sqrt(sum(r * r for r in rets) / 3)
    assert down["sortino"] == pytest.approx(statistics.mean(rets) / rms * math.sqrt(365.25), rel=1e-12)
    assert down["sortino"] < 0 and down["sharpe"] < 0
    assert down["max_drawdown"] == pytest.approx(-0.04, rel=1e-12)


def test_trade_table_figures() -> None:
    table = trades(
        [
            (False, 10.0, -1.0, 12.0),
            (False, -5.0, -6.0, 1.0),
            (False, 20.0, -2.0, 25.0),
            (False, -2.5, -3.0, 0.5),
            (False, 0.0, -1.0, 1.5),  # a flat trade: counted, neither a win nor a loss
            (True, 100.0, -50.0, 100.0),  # still open: not in the closed-trade figures
        ]
    )
    m = compute(curve([100.0, 100.0]), table, 100.0)
    assert m["trades"] == 5
    assert m["open_trades"] == 1
    assert m["win_rate"] == pytest.approx(0.4, rel=1e-12)
    assert m["profit_factor"] == pytest.approx(30 / 7.5, rel=1e-12)
    assert m["expectancy"] == pytest.approx(22.5 / 5, rel=1e-12)
    assert m["avg_mae"] == pytest.approx(-13 / 5, rel=1e-12)
    assert m["avg_mfe"] == pytest.approx(40 / 5, rel=1e-12)


def test_only_winners_has_no_profit_factor_and_only_open_trades_no_trade_figures() -> None:
    m = compute(curve([100.0, 101.0]), trades([(False, 3.0, 0.0, 3.0), (False, 1.0, 0.0, 2.0)]), 100.0)
    assert m["win_rate"] == 1.0 and math.isnan(m["profit_factor"])
    assert m["expectancy"] == 2.0
    open_only = compute(curve([100.0, 101.0]), trades([(True, 3.0, 0.0, 3.0)]), 100.0)
    assert open_only["trades"] == 0 and open_only["open_trades"] == 1
    for key in ("win_rate", "profit_factor", "expectancy", "avg_mae", "avg_mfe"):
        assert math.isnan(open_only[key]), key


def test_zero_bars() -> None:
    empty = pd.DataFrame({"equity": pd.Series([], dtype=float)}, index=pd.DatetimeIndex([], tz="UTC"))
    m = compute(empty, NO_TRADES, 250.0)
    assert m["final_equity"] == 250.0
    assert m["total_return"] == 0.0
    assert m["bars"] == 0 and m["years"] == 0.0
    assert m["exposure_time"] == 0.0
    assert m["max_drawdown"] == 0.0
    assert m["ruined_at"] is None
    for key in ("annualized_return", "sharpe", "sortino", "calmar", "win_rate", "profit_factor"):
        assert math.isnan(m[key]), key
    assert m["trades"] == 0 and m["open_trades"] == 0


def test_one_bar() -> None:
    m = compute(curve([104.0], in_market=[1]), NO_TRADES, 100.0)
    assert m["total_return"] == pytest.approx(0.04, rel=1e-12)
    assert m["bars"] == 1 and m["years"] == 0.0
    assert m["exposure_time"] == 1.0
    for key in ("annualized_return", "sharpe", "sortino", "calmar"):
        assert math.isnan(m[key]), key
    assert m["max_drawdown"] == 0.0


def test_two_bars_one_return_has_no_ratios() -> None:
    # One return has no sample deviation; neither ratio is defined (not even Sortino).
    m = compute(curve([100.0, 90.0]), NO_TRADES, 100.0)
    assert m["total_return"] == pytest.approx(-0.1, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(-0.1, rel=1e-12)
    assert m["years"] == pytest.approx(1 / 365.25, rel=1e-12)
    assert m["annualized_return"] == pytest.approx(0.9**365.25 - 1, rel=1e-9)
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"])
    assert m["calmar"] == pytest.approx((0.9**365.25 - 1) / 0.1, rel=1e-9)
    three = compute(curve([100.0, 90.0, 99.0]), NO_TRADES, 100.0)
    assert not math.isnan(three["sharpe"]) and not math.isnan(three["sortino"])


@pytest.mark.parametrize("floor", [0.0, -5.0])
def test_ruin_makes_return_metrics_nan_and_names_the_step(floor: float) -> None:
    eq = curve([100.0, 50.0, floor, 10.0])
    m = compute(eq, NO_TRADES, 100.0)
    assert m["ruined_at"] == eq.index[2].isoformat() == "2024-01-03T00:00:00+00:00"
    assert m["final_equity"] == 10.0
    assert m["total_return"] == pytest.approx(-0.9, rel=1e-12)
    for key in ("annualized_return", "max_drawdown", "sharpe", "sortino", "calmar"):
        assert math.isnan(m[key]), key


def test_ruin_at_the_last_step_with_positive_final_growth_still_nan() -> None:
    # Final equity below zero; the CAGR would be undefined anyway, and the curve was fine until then.
    eq = curve([100.0, 120.0, 130.0, 0.0])
    m = compute(eq, NO_TRADES, 100.0)
    assert m["ruined_at"] == eq.index[3].isoformat()
    assert math.isnan(m["max_drawdown"]) and math.isnan(m["sharpe"])


def test_ruin_with_final_recovery_above_start_keeps_cagr_nan() -> None:
    eq = curve([100.0, 0.0, 200.0], days=[0, 365.25, 730.5])
    m = compute(eq, NO_TRADES, 100.0)
    assert m["total_return"] == 1.0
    assert math.isnan(m["annualized_return"]) and math.isnan(m["calmar"])


def test_a_small_account_below_one_unit_is_not_ruined() -> None:
    # Equity of 0.5 is poor, not ruin: only zero or below is.
    eq = curve([1.0, 0.5, 0.64], days=[0, 365.25, 730.5])
    m = compute(eq, NO_TRADES, 1.0)
    assert m["ruined_at"] is None
    assert m["max_drawdown"] == pytest.approx(-0.5, rel=1e-12)
    assert m["annualized_return"] == pytest.approx(-0.2, rel=1e-12)  # 0.64 ** (1/2) - 1
    assert m["fees_paid"] == 0.0  # the default


def test_small_wins_and_flat_trades_are_not_losses() -> None:
    table = trades([(False, 0.5, 0.0, 1.0), (False, 0.0, -1.0, 1.0), (False, 2.0, 0.0, 2.0)])
    m = compute(curve([100.0, 102.5]), table, 100.0)
    assert m["win_rate"] == pytest.approx(2 / 3, rel=1e-12)
    assert math.isnan(m["profit_factor"])  # no losing trade
    m2 = compute(curve([100.0, 102.0]), trades([*table.itertuples(index=False), (False, -0.5, -1.0, 0.0)]), 100.0)
    assert m2["profit_factor"] == pytest.approx(2.5 / 0.5, rel=1e-12)
