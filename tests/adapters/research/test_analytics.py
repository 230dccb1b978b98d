"""Cross-run analytics: hand-computed curves, properties, the ruin guard,
error messages, and ``tidemark analyze`` on real journals."""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidemark.adapters.backtest import SAMPLE_DIR, Result, run_backtest
from tidemark.adapters.cli import main
from tidemark.adapters.research import analytics
from tidemark.core import instruments
from tidemark.core.events import InstrumentDefinition
from tidemark.core.metrics import compute

SAMPLE = SAMPLE_DIR / "SYNTH_BTC-1h.csv"


def curve(points: dict[str, float]) -> pd.Series:
    """A curve through the given (date -> equity) points, UTC."""
    return pd.Series(list(points.values()), index=pd.to_datetime(list(points), utc=True), dtype=float)


def days(values: list[float], start: str = "2023-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="1D", tz="UTC"), dtype=float)


# Month ends 2023: Jan +10 %, Feb -10 %, Mar +10 %, then flat; Jan 2024 -20 %.
MONTHLY = curve(
    {"2023-01-01": 100.0, "2023-01-31": 110.0, "2023-02-28": 99.0, "2023-03-31": 108.9, "2024-01-31": 87.12}
)


# -- daily_equity ----------------------------------------------------------------------------------


def test_daily_equity_takes_each_days_last_value_and_carries_empty_days() -> None:
    hours = pd.Series(
        [100.0, 101.0, 102.0, 90.0],
        index=pd.to_datetime(
            ["2024-01-01 01:00", "2024-01-01 23:00", "2024-01-02 00:00", "2024-01-04 05:00"], utc=True
        ),
    )
    daily = analytics.daily_equity(hours)
    assert daily.tolist() == [101.0, 102.0, 102.0, 90.0]
    assert list(daily.index.strftime("%Y-%m-%d")) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert str(daily.index.tz) == "UTC"
    # The same from a frame, a Result-like object and a naive (read as UTC) index.
    frame = hours.to_frame("equity")
    pd.testing.assert_series_equal(analytics.daily_equity(frame), daily)
    pd.testing.assert_series_equal(analytics.daily_equity(SimpleNamespace(equity=frame)), daily)
    pd.testing.assert_series_equal(analytics.daily_equity(hours.tz_convert(None)), daily)
    # Non-UTC times are converted, not relabelled: 2024-01-02 00:30 in UTC+1 is 2024-01-01 UTC.
    shifted = pd.Series([5.0], index=pd.DatetimeIndex([pd.Timestamp("2024-01-02 00:30", tz="Etc/GMT-1")]))
    assert analytics.daily_equity(shifted).index[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_daily_equity_refuses_what_is_not_a_curve() -> None:
    with pytest.raises(ValueError, match="empty"):
        analytics.daily_equity(pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float))
    with pytest.raises(ValueError, match="indexed by time"):
        analytics.daily_equity(pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match="'equity' column"):
        analytics.daily_equity(pd.DataFrame({"cash": [1.0]}, index=pd.DatetimeIndex(["2024-01-01"], tz="UTC")))


# -- monthly returns and worst windows -------------------------------------------------------------


def test_monthly_returns_by_hand() -> None:
    table = analytics.monthly_returns(MONTHLY)
    assert list(table.columns) == [*analytics.MONTHS, "total"]
    assert table.loc[2023, "Jan"] == pytest.approx(0.10)
    assert table.loc[2023, "Feb"] == pytest.approx(-0.10)
    assert table.loc[2023, "Mar"] == pytest.approx(0.10)
    assert table.loc[2023, ["Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]].tolist() == [0.0] * 9
    assert table.loc[2023, "total"] == pytest.approx(108.9 / 100 - 1)
    assert table.loc[2024, "Jan"] == pytest.approx(-0.20)
    assert table.loc[2024, "total"] == pytest.approx(-0.20)  # the months with no data do not count
    assert table.loc[2024, ["Feb", "Dec"]].isna().all()


def test_worst_rolling_by_hand() -> None:
    worst = analytics.worst_rolling(MONTHLY, months=(1, 2, 3, 24))
    assert worst.loc[1, "return"] == pytest.approx(-0.20)
    assert (worst.loc[1, "start"], worst.loc[1, "end"]) == ("2023-12-31", "2024-01-31")
    assert worst.loc[2, "return"] == pytest.approx(-0.20)  # Dec 2023 (flat) + Jan 2024
    assert (worst.loc[2, "start"], worst.loc[2, "end"]) == ("2023-11-30", "2024-01-31")
    assert math.isnan(worst.loc[24, "return"])
    assert worst.loc[24, "note"] == "13 months of data, fewer than 24"


def test_worst_rolling_first_month_starts_at_the_first_value_and_ties_go_to_the_earliest() -> None:
    # Jan -10 %, Feb +0 %, Mar -10 %: the one-month worst is Jan, measured from 1 January.
    equity = curve({"2023-01-01": 100.0, "2023-01-31": 90.0, "2023-02-28": 90.0, "2023-03-31": 81.0})
    worst = analytics.worst_rolling(equity, months=(1, 3))
    assert worst.loc[1, "return"] == pytest.approx(-0.10)
    assert (worst.loc[1, "start"], worst.loc[1, "end"]) == ("2023-01-01", "2023-01-31")
    assert worst.loc[3, "return"] == pytest.approx(-0.19)
    with pytest.raises(ValueError, match="window of 0 months"):
        analytics.worst_rolling(equity, months=(0,))


@given(st.lists(st.floats(0.5, 1.6), min_size=2, max_size=30), st.integers(1, 8))
def test_worst_window_is_the_minimum_of_compounded_monthly_returns(growth: list[float], window: int) -> None:
    """The seed's definition: a rolling product of monthly returns; and it
    is the ratio of the two days' equities the row names."""
    ends = pd.date_range("2020-01-31", periods=len(growth), freq="ME", tz="UTC")
    equity = pd.Series(100.0 * np.cumprod(growth), index=ends)
    equity = pd.concat([pd.Series([100.0], index=[pd.Timestamp("2020-01-01", tz="UTC")]), equity])
    monthly = analytics.monthly_returns(equity)
    flat = monthly[list(analytics.MONTHS)].to_numpy().ravel()
    returns = flat[~np.isnan(flat)]
    row = analytics.worst_rolling(equity, months=(window,)).loc[window]
    if len(returns) < window:
        assert math.isnan(row["return"])
        return
    compounded = [np.prod(1.0 + returns[i : i + window]) - 1.0 for i in range(len(returns) - window + 1)]
    assert row["return"] == pytest.approx(min(compounded), rel=1e-9, abs=1e-12)
    daily = analytics.daily_equity(equity)
    start, end = (pd.Timestamp(row[k], tz="UTC") for k in ("start", "end"))
    assert row["return"] == pytest.approx(daily[end] / daily[start] - 1.0, rel=1e-12)


# -- horizons --------------------------------------------------------------------------------------


def test_horizon_metrics_by_hand() -> None:
    values = [100.0, 120.0, 90.0, 95.0, 130.0, 117.0]
    table = analytics.horizon_metrics(days(values), horizons=("full", "3d", "1y"))
    full = table.loc["full"]
    assert (full["start"], full["end"], full["days"]) == ("2023-01-01", "2023-01-06", 5.0)
    assert full["return"] == pytest.approx(0.17)
    assert full["max_drawdown"] == pytest.approx(90 / 120 - 1)
    assert full["cagr"] == pytest.approx(1.17 ** (365.25 / 5) - 1)
    rets = np.diff(values) / np.array(values[:-1])
    assert full["volatility"] == pytest.approx(np.std(rets, ddof=1) * math.sqrt(365.25))
    assert full["sharpe"] == pytest.approx(rets.mean() / np.std(rets, ddof=1) * math.sqrt(365.25))
    three = table.loc["3d"]  # 2023-01-03 .. 2023-01-06: 90 -> 117, dipping after 130
    assert three["start"] == "2023-01-03"
    assert three["return"] == pytest.approx(117 / 90 - 1)
    assert three["max_drawdown"] == pytest.approx(117 / 130 - 1)
    # A horizon longer than the data is NaN and says why; never the full period.
    year = table.loc["1y"]
    assert np.isnan(year[["return", "cagr", "max_drawdown", "sharpe", "volatility"]].to_numpy(float)).all()
    assert year["note"] == "needs data from 2022-01-06; the curve starts 2023-01-01"


def test_horizon_metrics_reuse_the_metrics_module_on_a_real_run(ema_run: Result) -> None:
    daily = analytics.daily_equity(ema_run)
    table = analytics.horizon_metrics(ema_run)
    facts = compute(daily.to_frame("equity"), pd.DataFrame(), float(daily.iloc[0]))
    assert table.loc["full", "cagr"] == facts["annualized_return"]
    assert table.loc["full", "max_drawdown"] == facts["max_drawdown"]
    assert table.loc["full", "sharpe"] == facts["sharpe"]
    assert table.loc["full", "return"] == pytest.approx(ema_run.metrics["total_return"], rel=1e-12)
    # ~5.5 months of data: the 3-month horizon is defined, the 6-month one is not.
    assert not math.isnan(table.loc["3m", "return"])
    assert math.isnan(table.loc["6m", "return"]) and "needs data" in table.loc["6m", "note"]


def test_a_horizon_exactly_as_long_as_the_data_is_the_full_period() -> None:
    equity = curve({"2023-01-01": 100.0, "2023-07-01": 80.0, "2024-01-01": 121.0})
    table = analytics.horizon_metrics(equity, horizons=("full", "1y", "12m"))
    full = table.loc["full"].drop("note")
    pd.testing.assert_series_equal(table.loc["1y"].drop("note"), full, check_names=False)
    pd.testing.assert_series_equal(table.loc["12m"].drop("note"), full, check_names=False)
    assert full["return"] == pytest.approx(0.21)
    assert full["cagr"] == pytest.approx(1.21 ** (365.25 / 365) - 1)


def test_horizon_labels_are_checked() -> None:
    for label in ("5x", "0m", "year", ""):
        with pytest.raises(ValueError, match=f"horizon {label!r}"):
            analytics.horizon_metrics(days([1.0, 2.0]), horizons=(label,))


# -- ruin ------------------------------------------------------------------------------------------


def test_ruin_makes_every_return_based_figure_nan() -> None:
    ruined = days([100.0, 50.0, 0.0, 10.0] + [10.0] * 60)
    table = analytics.horizon_metrics(ruined, horizons=("full", "1m"))
    for label in ("full", "1m"):
        row = table.loc[label]
        assert np.isnan(row[["cagr", "max_drawdown", "sharpe", "volatility"]].to_numpy(float)).all()
        assert row["note"] == "ruined on 2023-01-03: return-based figures undefined"
    assert table.loc["full", "return"] == pytest.approx(-0.9)  # money fact, as metrics' total_return
    monthly = analytics.monthly_returns(ruined)
    assert monthly.loc[2023, ["Jan", "Feb", "Mar", "total"]].isna().all()
    worst = analytics.worst_rolling(ruined, months=(1,))
    assert math.isnan(worst.loc[1, "return"]) and worst.loc[1, "note"].startswith("ruined on 2023-01-03")


def test_ruin_only_blanks_the_months_from_the_ruin_on() -> None:
    equity = curve({"2023-01-01": 100.0, "2023-01-31": 110.0, "2023-02-15": -5.0, "2023-03-31": 1.0})
    monthly = analytics.monthly_returns(equity)
    assert monthly.loc[2023, "Jan"] == pytest.approx(0.10)
    assert monthly.loc[2023, ["Feb", "Mar", "total"]].isna().all()


# -- turnover --------------------------------------------------------------------------------------


def test_turnover_per_year_by_hand_with_linear_and_inverse_contracts() -> None:
    linear = InstrumentDefinition(0, "ETH", kind="perpetual", quote="USD", settle="USD", contract_size=2.0)
    inverse = InstrumentDefinition(
        0, "BTCUSD", kind="future", quote="USD", settle="BTC", inverse=True, contract_size=100.0
    )
    fills = pd.DataFrame(
        {
            "exec_time": pd.to_datetime(["2023-03-01", "2023-06-01", "2024-02-01"], utc=True),
            "instrument": ["ETH", "BTCUSD", "ETH"],
            "quantity": [1.0, 3.0, 4.0],
            "price": [100.0, 20_000.0, 100.0],
            "settle_rate": [1.0, 20_000.0, 1.0],
        }
    )
    equity = pd.concat(
        [
            pd.Series(1000.0, index=pd.date_range("2023-01-01", "2023-12-31", freq="1D", tz="UTC")),
            pd.Series(2000.0, index=pd.date_range("2024-01-01", "2024-03-31", freq="1D", tz="UTC")),
        ]
    )
    result = SimpleNamespace(equity=equity.to_frame("equity"), fills=fills, journal=None)
    table = analytics.turnover_per_year(result, instruments={"ETH": linear, "BTCUSD": inverse})
    # 2023: 1 * 100 * 2 (linear) + 3 * 100 USD (inverse: contracts * size) = 500 over 1000.
    assert table.loc[2023, "notional"] == pytest.approx(500.0)
    assert table.loc[2023, "turnover"] == pytest.approx(0.5)
    assert table.loc[2023, "days"] == 365
    # 2024: 4 * 100 * 2 = 800 over 2000 (a partial year is not annualised).
    assert table.loc[2024, "notional"] == pytest.approx(800.0)
    assert table.loc[2024, "turnover"] == pytest.approx(0.4)
    assert table.loc[2024, "days"] == 91
    with pytest.raises(ValueError, match="no instrument definition for 'BTCUSD'"):
        analytics.turnover_per_year(result, instruments={"ETH": linear})


def test_turnover_of_a_real_run_reads_the_journals_instruments(ema_run: Result) -> None:
    table = analytics.turnover_per_year(ema_run)
    fills = ema_run.fills
    traded = float((fills["quantity"] * fills["price"]).sum())  # spot, contract size 1, USD account
    assert table.loc[2024, "notional"] == pytest.approx(traded, rel=1e-12)
    assert table.loc[2024, "turnover"] == pytest.approx(traded / analytics.daily_equity(ema_run).mean(), rel=1e-12)


def test_turnover_is_nan_in_a_year_whose_equity_touched_zero() -> None:
    inst = instruments.spot("X")
    fills = pd.DataFrame(
        {
            "exec_time": pd.to_datetime(["2023-01-02"], utc=True),
            "instrument": ["X"],
            "quantity": [1.0],
            "price": [10.0],
            "settle_rate": [1.0],
        }
    )
    result = SimpleNamespace(equity=days([100.0, 50.0, -1.0]).to_frame("equity"), fills=fills, journal=None)
    table = analytics.turnover_per_year(result, instruments={"X": inst})
    assert table.loc[2023, "notional"] == 10.0 and math.isnan(table.loc[2023, "turnover"])


# -- blends ----------------------------------------------------------------------------------------


def test_blend_by_hand_on_common_days() -> None:
    a = days([100.0, 110.0, 99.0, 200.0])
    b = days([50.0, 50.0, 55.0], start="2023-01-02")  # one day later: the blend starts on 2 January
    mixed = analytics.blend({"a": a, "b": b}, {"a": 0.5, "b": 0.5}, capital=1000.0)
    assert list(mixed.index.strftime("%Y-%m-%d")) == ["2023-01-02", "2023-01-03", "2023-01-04"]
    # 2 Jan -> 3 Jan: a -10 %, b 0 %: -5 %; 3 Jan -> 4 Jan: a +102.02 %, b +10 %.
    first = 0.5 * (99 / 110 - 1) + 0.5 * 0.0
    second = 0.5 * (200 / 99 - 1) + 0.5 * (55 / 50 - 1)
    assert mixed.tolist() == pytest.approx([1000.0, 1000 * (1 + first), 1000 * (1 + first) * (1 + second)])
    # Three curves, unequal weights, default capital 1.0.
    c = days([10.0, 10.0, 12.0, 12.0], start="2023-01-02")
    three = analytics.blend({"a": a, "b": b, "c": c}, {"a": 0.2, "b": 0.3, "c": 0.5})
    assert three.iloc[-1] == pytest.approx(
        (1 + 0.2 * (99 / 110 - 1)) * (1 + 0.2 * (200 / 99 - 1) + 0.3 * 0.1 + 0.5 * 0.2)
    )


def test_blend_refuses_bad_weights_naming_them() -> None:
    curves = {"a": days([1.0, 2.0]), "b": days([1.0, 3.0])}
    with pytest.raises(ValueError, match=r"weights a=0.5, b=0.6 sum to 1.1, not 1"):
        analytics.blend(curves, {"a": 0.5, "b": 0.6})
    with pytest.raises(ValueError, match=r"weights name \['z'\], which are not among the curves \['a', 'b'\]"):
        analytics.blend(curves, {"a": 0.5, "z": 0.5})
    with pytest.raises(ValueError, match=r"allocations in \[0, 1\]: a=1.5, b=-0.5"):
        analytics.blend(curves, {"a": 1.5, "b": -0.5})
    with pytest.raises(ValueError, match="no day in common"):
        analytics.blend({"a": days([1.0]), "b": days([1.0], start="2024-01-01")}, {"a": 0.5, "b": 0.5})
    # Float noise is not a wrong sum.
    analytics.blend({str(i): days([1.0, 2.0]) for i in range(10)}, {str(i): 0.1 for i in range(10)})


positive_values = st.lists(st.floats(1.0, 1e6), min_size=2, max_size=40)


@given(positive_values, positive_values, st.floats(1.0, 1e7))
def test_blend_with_all_weight_on_one_curve_is_that_curve_rescaled(
    a: list[float], b: list[float], capital: float
) -> None:
    ca, cb = days(a), days(b)
    mixed = analytics.blend({"a": ca, "b": cb}, {"a": 1.0, "b": 0.0}, capital=capital)
    expected = ca / ca.iloc[0] * capital  # a curve weighted 0 does not even restrict the days
    np.testing.assert_allclose(mixed.to_numpy(), expected.to_numpy(), rtol=1e-9)


@given(positive_values, st.floats(0.0, 1.0))
def test_blending_a_curve_with_itself_gives_the_curve(a: list[float], w: float) -> None:
    ca = days(a)
    mixed = analytics.blend({"x": ca, "y": ca.copy()}, {"x": w, "y": 1.0 - w})
    np.testing.assert_allclose(mixed.to_numpy(), (ca / ca.iloc[0]).to_numpy(), rtol=1e-9)


def test_a_blend_is_undefined_from_a_weighted_curves_ruin() -> None:
    a = days([100.0, 110.0, 0.0, 10.0])
    b = days([100.0, 100.0, 100.0, 100.0])
    mixed = analytics.blend({"a": a, "b": b}, {"a": 0.5, "b": 0.5})
    assert mixed.iloc[:2].tolist() == pytest.approx([1.0, 1.05]) and mixed.iloc[2:].isna().all()
    assert analytics.horizon_metrics(mixed).loc["full", "note"].startswith("ruined on 2023-01-03")
    # A ruined curve with no weight does not matter.
    assert analytics.blend({"a": a, "b": b}, {"a": 0.0, "b": 1.0}).tolist() == [1.0] * 4


# -- rank ------------------------------------------------------------------------------------------

TABLE = pd.DataFrame(
    {
        "name": ["a", "b", "c", "d", "e"],
        "sharpe": [1.0, 2.0, 1.5, float("nan"), 3.0],
        "max_drawdown": [-0.10, -0.30, -0.20, -0.05, -0.25],
        "trades": [50, 40, 5, 30, 10],
        "kind": ["x", "y", "x", "x", "y"],
    }
)


def test_rank_filters_by_rules_and_sorts() -> None:
    ranked = analytics.rank(TABLE, "sharpe", qualify=["max_drawdown>=-0.25", "trades >= 10"])
    assert ranked["name"].tolist() == ["e", "a", "d"]  # b fails drawdown, c trades; NaN sharpe sorts last
    assert ranked["rank"].tolist() == [1, 2, 3]
    same = analytics.rank(TABLE, "sharpe", qualify={"max_drawdown": ">=-0.25", "trades": (">=", 10)})
    pd.testing.assert_frame_equal(same, ranked)
    low = analytics.rank(TABLE, "max_drawdown", ascending=True, qualify=["kind==x", "trades>5"])
    assert low["name"].tolist() == ["a", "d"]
    assert analytics.rank(TABLE, "trades")["name"].tolist() == ["a", "b", "d", "e", "c"]
    # A NaN figure fails every rule on it.
    assert "d" not in analytics.rank(TABLE, "trades", qualify=["sharpe<10"])["name"].tolist()
    assert analytics.rank(TABLE, "trades", qualify=["sharpe>5"]).empty


def test_rank_names_a_missing_column_and_a_bad_rule() -> None:
    with pytest.raises(ValueError, match="no column 'calmar'"):
        analytics.rank(TABLE, "sharpe", qualify=["calmar>1"])
    with pytest.raises(ValueError, match="no column 'cagr'"):
        analytics.rank(TABLE, "cagr")
    with pytest.raises(ValueError, match="rule 'sharpe=>1'"):
        analytics.rank(TABLE, "sharpe", qualify=["sharpe=>1"])
    with pytest.raises(ValueError, match="'high' is not a number"):
        analytics.rank(TABLE, "sharpe", qualify=["sharpe>high"])
    assert analytics.parse_rule(" max_drawdown >= -0.25 ") == ("max_drawdown", ">=", -0.25)


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("analyze")
    fast, slow = folder / "fast.journal", folder / "slow.journal"
    run_backtest("ema_cross", data=[SAMPLE], journal=fast, params={"fast": 5, "slow": 20})
    run_backtest("ema_cross", data=[SAMPLE], journal=slow)
    return fast, slow


@pytest.fixture(scope="module")
def ema_run(journals: tuple[Path, Path]) -> Result:
    return Result.from_journal(journals[1])


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_prints_and_writes_the_tables(
    journals: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast, slow = journals
    out_dir = tmp_path / "tables"
    code, out, err = run(
        capsys, "analyze", str(fast), str(slow), "--weights", "fast=0.25,slow=0.75", "--csv", str(out_dir)
    )
    assert code == 0, err
    runs = {name: Result.from_journal(path) for name, path in (("fast", fast), ("slow", slow))}
    for name, result in runs.items():
        assert f"== {name}: {result.journal}" in out
        horizons = pd.read_csv(out_dir / f"{name}.horizons.csv", index_col=0)
        assert horizons.loc["full", "return"] == pytest.approx(result.metrics["total_return"], rel=1e-9)
        assert f"{result.metrics['total_return'] * 100:.2f}%" in out
        monthly = pd.read_csv(out_dir / f"{name}.monthly.csv", index_col=0)
        assert monthly.loc[2024, "total"] == pytest.approx(result.metrics["total_return"], rel=1e-9)
        worst = pd.read_csv(out_dir / f"{name}.worst.csv", index_col=0)
        daily = analytics.daily_equity(result)
        start, end = (pd.Timestamp(worst.loc[6, k], tz="UTC") for k in ("start", "end"))
        assert worst.loc[6, "return"] == pytest.approx(daily[end] / daily[start] - 1, rel=1e-9)
        turnover = pd.read_csv(out_dir / f"{name}.turnover.csv", index_col=0)
        traded = float((result.fills["quantity"] * result.fills["price"]).sum())
        assert turnover.loc[2024, "notional"] == pytest.approx(traded, rel=1e-9)
    blend = pd.read_csv(out_dir / "blend.horizons.csv", index_col=0)
    expected = analytics.blend(runs, {"fast": 0.25, "slow": 0.75})
    assert blend.loc["full", "return"] == pytest.approx(expected.iloc[-1] - 1.0, rel=1e-9)
    # Not a mix of the two final returns: the blend rebalances daily.
    assert "== blend fast=0.25, slow=0.75 (rebalanced daily" in out
    assert "csv: 10 files in" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", "fast=0.5,slow=0.6"], "weights fast=0.5, slow=0.6 sum to 1.1, not 1"),
        (["--weights", "fast=0.5,other=0.5"], "weights name ['other'], which are not among the curves"),
        (["--weights", "fast:0.5"], "expected NAME=WEIGHT"),
    ],
)
def test_analyze_refuses_bad_weights_before_printing(
    journals: tuple[Path, Path], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, out, err = run(capsys, "analyze", *map(str, journals), *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tidemark: error: ") and message in err


def test_analyze_bad_input_is_one_line_exit_2(
    journals: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "analyze", str(tmp_path / "missing.journal"))
    assert code == 2 and err.strip() == f"tidemark: error: {tmp_path / 'missing.journal'}: no such journal"
    code, _, err = run(capsys, "analyze", str(journals[0]), "--weights", "fast=1")
    assert code == 2 and "give two or more journals" in err
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, "analyze", str(journals[0]), "--csv", str(tmp_path / "file"))
    assert code == 2 and "is not a directory" in err


def test_analyze_refuses_a_damaged_journal_unless_trusted(
    journals: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "damaged.journal"
    shutil.copyfile(journals[1], damaged)
    with sqlite3.connect(damaged) as conn:
        conn.execute("DELETE FROM blocks WHERE first_seq = (SELECT MAX(first_seq) FROM blocks)")
    code, out, err = run(capsys, "analyze", str(damaged))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and f"{damaged}: DAMAGED: " in err and "--trust" in err
    code, out, err = run(capsys, "analyze", str(damaged), "--trust")
    assert code == 0, err
    assert "UNVERIFIED: read with --trust" in out and "== damaged:" in out
