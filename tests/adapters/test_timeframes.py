"""Bar intervals are inferred and checked; a run's files share one; a
warm-up feeds bars before ``start`` to indicators without trading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.kit import write_bars, write_strategy
from tidemark.adapters.backtest import run_backtest
from tidemark.adapters.data import DataError, load_bars
from tidemark.core.strategy import StrategyError


def test_the_interval_is_inferred_and_a_wrong_timeframe_is_refused(tmp_path: Path) -> None:
    five = write_bars(tmp_path / "X.csv", [100.0] * 30, freq="5min")
    assert load_bars(five).interval == 300_000_000_000
    with pytest.raises(DataError) as info:
        run_backtest("ema_cross", data=[five], timeframe="15m", journal=tmp_path / "j.journal")
    message = str(info.value)
    assert message.startswith(str(five)) and "bars are 5m apart, not the timeframe 15m" in message
    assert "\n" not in message and not (tmp_path / "j.journal").exists()


def test_bars_inside_the_previous_bar_are_refused(tmp_path: Path) -> None:
    path = write_bars(tmp_path / "X.csv", [100.0] * 10)
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace("T05:00:00", "T04:30:00").replace(" 05:00:00", " 04:30:00")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"row 6: field 'time': bar starts 30m after the one before, inside its 1h"):
        load_bars(path)


def test_a_daily_file_beside_an_hourly_one_is_refused(tmp_path: Path) -> None:
    hourly = write_bars(tmp_path / "BTC.csv", [100.0] * 48)
    daily = write_bars(tmp_path / "ETH.csv", [10.0] * 2, freq="1D")
    with pytest.raises(DataError, match=r"has 1h bars but .*ETH.csv has 1d bars.*resample\('1d'\)"):
        run_backtest("ema_cross", data=[hourly, daily], timeframe=None, journal=tmp_path / "j.journal")


def test_non_finite_prices_and_volumes_are_refused(tmp_path: Path) -> None:
    path = write_bars(tmp_path / "X.csv", [100.0] * 5)
    text = path.read_text().splitlines()
    text[3] = text[3].rsplit(",", 2)[0] + ",inf,1000.0"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match="row 3: field 'close': missing or not a finite number"):
        load_bars(path)
    vol = write_bars(tmp_path / "V.csv", [100.0] * 5, volume=float("inf"))
    with pytest.raises(DataError, match="field 'volume': volume missing, infinite or negative"):
        load_bars(vol)


WARM = """
def schema(): return {"id": "warm"}
def on_init(ctx): ctx.state["steps"] = []
def on_bar(ctx, i):
    ctx.state["steps"].append(i)
    if len(ctx.state["steps"]) == 1:
        sma = ctx.ind.sma(ctx.close, 24)[i]
        ctx.log.info(f"first step {i} sma {sma} bars seen {len(ctx.close)}")
"""


@pytest.mark.parametrize("warmup", [24, "1d"])
def test_a_warm_up_shows_bars_before_start_without_trading_on_them(tmp_path: Path, warmup: int | str) -> None:
    closes = np.arange(1.0, 101.0)
    data = write_bars(tmp_path / "X.csv", closes)  # hourly from 2024-01-01T00:00
    strategy = write_strategy(tmp_path / "warm.py", WARM)
    result = run_backtest(
        str(strategy), data=[data], start="2024-01-02T00:00:00Z", warmup=warmup, journal=tmp_path / "w.journal"
    )
    logs = result.journal
    from tidemark.journal.reader import JournalReader

    with JournalReader(logs) as reader:
        (line,) = [e.message for _, e in reader.events(kinds=["log"])]
    # bars 0..23 warm up; on_bar first runs at step 24 (the bar opening at start)
    # with a full 24-bar SMA there: mean of closes 2..25 -> 13.5... of bars 1..24
    assert line == f"first step 24 sma {np.mean(closes[1:25])} bars seen 25"
    assert result.equity.index[0].isoformat() == "2024-01-02T01:00:00+00:00"  # results start at start
    assert len(result.equity) == 76 and result.metrics["bars"] == 76
    assert json.loads(result.header.config)["warmup"] == warmup  # recorded in the header
    cold = run_backtest(str(strategy), data=[data], start="2024-01-02T00:00:00Z", journal=tmp_path / "c.journal")
    with JournalReader(cold.journal) as reader:
        (cold_line,) = [e.message for _, e in reader.events(kinds=["log"])]
    assert cold_line.startswith("first step 0 sma nan")  # without a warm-up indicators restart at start
    assert math.isnan(float(cold_line.split()[4]))


def test_a_strategy_that_only_reads_books_cannot_run_on_bars(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "X.csv", [100.0] * 5)
    strategy = write_strategy(
        tmp_path / "quotes.py",
        """
        def schema(): return {"id": "quotes"}
        def on_quote(ctx, q): ctx.buy(1)
        """,
    )
    with pytest.raises(StrategyError, match="defines only on_book/on_quote, so it needs order-book data"):
        run_backtest(str(strategy), data=[data], journal=tmp_path / "j.journal")
    assert not (tmp_path / "j.journal").exists()
