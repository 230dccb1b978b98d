"""The short_overlay built-in (seed 001) on the real Binance USD-M BTC and
ETH perpetuals (../shared/data, 1h, 2024-12-31 .. 2026-02-19).

The strategy's target weight of every symbol at every close of its bar
(journaled with ``record``) equals the research model's
:func:`tidemark.adapters.research.overlay.overlay_weights` on the same
closes (4h closes built from the 1h bars by
:func:`~tidemark.adapters.research.overlay.resample_closes`); it trades
exactly when the weights change, to ``equity x weight / price``, paying the
run's fee on the notional; and it runs from ``tidemark backtest`` (with the
example config in docs/examples) and ``tidemark sweep``.

There is no SOL perpetual in the shared data; the three-symbol runs add
Binance *spot* ETH/USDT, defined as a perpetual named ``ETHSPOT``, as a
second symbol to short (real closes; a stand-in for the seed's SOL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tidemark as tm
from tidemark.adapters.backtest import Result
from tidemark.adapters.research import overlay
from tidemark.core.bus import BusFault
from tidemark.core.strategy.contract import StrategyError
from tidemark.strategies import short_overlay

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "short_overlay_seed001.json"
HOUR = pd.Timedelta(hours=1)
FEE = 0.0004
FIELDS = ("family", "bar", "btc_trend", "btc_lookback", "symbol_trend", "vol_lookback")
FIELDS += ("btc_max_momentum", "btc_min_drop", "min_btc_vol", "symbol_max_momentum")

# (name, symbols, params): the defaults (a seed 4h set), a seed 1h set, and
# the 4h breakdown family over two shortable symbols, all of them or the first.
CASES = [
    ("default-4h", ("BTC", "ETH"), {}),
    (
        "pair-1h",
        ("BTC", "ETH"),
        {
            "family": "btc_risk_pair",
            "bar": "1h",
            "btc_trend": 1440,
            "btc_lookback": 168,
            "symbol_trend": 720,
            "vol_lookback": 336,
            "btc_max_momentum": 0.0,
            "btc_min_drop": 0.025,
            "min_btc_vol": 0.018,
        },
    ),
    ("breakdown-4h-all", ("BTC", "ETH", "ETHSPOT"), {"btc_trend": 360, "btc_min_drop": 0.03}),
    ("breakdown-4h-first", ("BTC", "ETH", "ETHSPOT"), {"btc_trend": 360, "btc_min_drop": 0.03, "shorts": "first"}),
]
_RUNS: dict[str, tuple[Result, dict[str, pd.DataFrame]]] = {}


def bars(shared_data: Path, symbols: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """OHLCV frames indexed by open time, cut to the hours every symbol has."""
    files = {
        "BTC": shared_data / "ohlcv" / "binance_usdm" / "BTC_USDT_USDT-1h-futures.feather",
        "ETH": shared_data / "ohlcv" / "binance_usdm" / "ETH_USDT_USDT-1h-futures.feather",
        "ETHSPOT": shared_data / "ohlcv" / "binance_spot" / "ETH_USDT-1h.feather",
    }
    frames = {}
    for symbol in symbols:
        raw = pd.read_feather(files[symbol]).set_index("date")
        frames[symbol] = raw[["open", "high", "low", "close", "volume"]].astype(float)
    common = frames[symbols[0]].index
    for frame in frames.values():
        common = common.intersection(frame.index)
    return {s: f.loc[common] for s, f in frames.items()}


def config(symbols: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
    return {
        "initial_cash": 10_000,
        "commission_bps": 4,
        "account": "margin",
        "leverage": 3,
        "instruments": {s: {"kind": "perpetual"} for s in symbols},
        "strategies": [{"strategy": "short_overlay", "params": {"record": True, "fill": "close", **params}}],
    }


@pytest.fixture(params=[c[0] for c in CASES])
def run(request: pytest.FixtureRequest, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    name, symbols, params = next(c for c in CASES if c[0] == request.param)
    if name not in _RUNS:
        data = bars(shared_data, symbols)
        journal = tmp_path_factory.mktemp("overlay") / f"{name}.journal"
        _RUNS[name] = (tm.backtest(data, config=config(symbols, params), journal=journal), data)
    result, data = _RUNS[name]
    return name, symbols, result, data


def expected_weights(result: Result, symbols: tuple[str, ...], data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The research model's weights on the run's closes (stamped at each bar's close)."""
    defaults = {k: spec["default"] for k, spec in short_overlay.schema()["inputs"].items()}
    p = {**defaults, **result.config["strategies"][0]["params"]}
    closes = pd.DataFrame({s: data[s]["close"] for s in symbols})
    closes.index = closes.index + HOUR
    if p["bar"] != "1h":
        closes = overlay.resample_closes(closes, p["bar"])
    shorts = symbols[1:2] if p["shorts"] == "first" else symbols[1:]
    params = overlay.ShortOverlay(**{k: p[k] for k in FIELDS}, short_symbols=shorts, btc=symbols[0])
    return overlay.overlay_weights(closes, params)


def test_target_weights_are_the_research_models(run: Any) -> None:
    name, symbols, result, data = run
    expected = expected_weights(result, symbols, data)
    recorded = result.recorded()[[f"weight_{s}" for s in symbols]]
    recorded.columns = list(symbols)
    assert (recorded.index == expected.index).all()  # one row per close of the bar, none before it closed
    np.testing.assert_array_equal(recorded.to_numpy(), expected.to_numpy())  # exactly
    shorted = (expected < 0.0).sum(axis=1)
    assert (shorted > 0).sum() > 100
    if name == "breakdown-4h-all":
        assert (shorted == 2).sum() > 50  # both shortable symbols at -0.5
    if name == "breakdown-4h-first":
        assert (expected["ETHSPOT"] == 0.0).all()
    assert (expected[symbols[0]] == 0.0).all()  # BTC is never traded


def test_it_trades_when_the_weights_change_to_equity_times_weight(run: Any) -> None:
    _, symbols, result, data = run
    assert result.metrics["rejections"] == 0
    expected = expected_weights(result, symbols, data)
    changed = expected.diff().fillna(expected).ne(0.0).any(axis=1)  # from flat before the first close
    fills = result.fills
    assert sorted(set(fills["exec_time"])) == list(expected.index[changed])
    # fills at the close of the bar decided on, fee 4 bp of the notional
    closes = {s: data[s]["close"].set_axis(data[s].index + HOUR) for s in symbols}
    prices = [closes[f.instrument][f.exec_time] for f in fills.itertuples()]
    np.testing.assert_array_equal(fills["price"].to_numpy(), prices)
    np.testing.assert_allclose(fills["fee"], FEE * fills["quantity"] * fills["price"], rtol=1e-12)
    # the position after each change is worth weight x equity (equity after the fees it paid)
    signed = np.where(fills["side"] == "buy", fills["quantity"], -fills["quantity"])
    held = pd.DataFrame({"time": fills["exec_time"], "symbol": fills["instrument"], "q": signed})
    held = held.groupby(["time", "symbol"])["q"].sum().unstack(fill_value=0.0).cumsum()
    equity = result.equity["equity"]
    for time, row in held.iterrows():
        for symbol, quantity in row.items():
            weight = quantity * closes[symbol][time] / equity[time]
            assert weight == pytest.approx(expected.loc[time, symbol], rel=2e-3, abs=1e-9)


def test_without_a_symbol_to_short_it_does_not_start(shared_data: Path, tmp_path: Path) -> None:
    data = bars(shared_data, ("BTC",))
    with pytest.raises(StrategyError, match=r"needs BTC \(the first symbol\) and at least one symbol to short"):
        tm.backtest(data, config=config(("BTC",), {}), journal=tmp_path / "one.journal")


# -- command line ----------------------------------------------------------------------------------


def tidemark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def perps(shared_data: Path) -> list[str]:
    """--data for both perpetuals (symbols from the file names), their
    funding and marks (which make them perpetuals), to the last funding time."""
    usdm, funding = shared_data / "ohlcv" / "binance_usdm", shared_data / "funding" / "binance_usdm"
    args = []
    for coin in ("BTC", "ETH"):
        args += ["--data", str(usdm / f"{coin}_USDT_USDT-1h-futures.feather")]
        args += ["--funding", str(funding / f"{coin}_USDT_USDT-1h-funding_rate.feather")]
        args += ["--mark", str(funding / f"{coin}_USDT_USDT-1h-mark.feather")]
    return [*args, "--end", "2026-02-19T12:00"]


def test_the_seed_001_example_config_runs(shared_data: Path, tmp_path: Path) -> None:
    journal = tmp_path / "example.journal"
    done = tidemark(
        "backtest", "--config", str(EXAMPLE), *perps(shared_data), "--journal", str(journal), "--no-report", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["account"] == "margin" and metrics["rejections"] == 0 and metrics["trades"] > 5
    result = Result.from_journal(journal)
    assert set(result.fills["instrument"]) == {"ETH_USDT_USDT"}  # BTC is the reference, never traded
    assert len(result.funding) > 0  # perpetuals: shorts pay or receive funding
    assert result.recorded().shape[1] == 2


def test_a_sweep_over_the_overlay(shared_data: Path, tmp_path: Path) -> None:
    account = ["--account", "margin", "--leverage", "3", "--commission-bps", "4", "--fill", "close", "--cash", "10000"]
    done = tidemark(
        "sweep", "--strategy", "short_overlay", *perps(shared_data), *account,
        "--grid", "family=btc_risk_pair,btc_breakdown_symbol", "--grid", "btc_min_drop=0.03,0.05",
        "--workers", "1", "--out", str(tmp_path / "sweep"), "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == {"ok": 4}
    table = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert list(zip(table["family"], table["btc_min_drop"], strict=True)) == [
        ("btc_risk_pair", 0.03), ("btc_risk_pair", 0.05), ("btc_breakdown_symbol", 0.03), ("btc_breakdown_symbol", 0.05)
    ]  # fmt: skip
    assert (table["trades"] > 0).all() and table["final_equity"].nunique() == 4
    alone = tidemark(
        "backtest", "--strategy", "short_overlay", *perps(shared_data), *account,
        "--param", "family=btc_breakdown_symbol", "--param", "btc_min_drop=0.05",
        "--journal", str(tmp_path / "alone.journal"), "--no-report", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["final_equity"] == table["final_equity"].iloc[3]


def four_hour_bars(data: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """4h OHLCV frames from the 1h ones (open-time stamps), complete bars only."""
    out = {}
    for symbol, frame in data.items():
        grouped = frame.resample("4h", closed="left", label="left")
        bars4 = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        out[symbol] = bars4[grouped.size() == 4]
    return out


def test_on_4h_bars_it_uses_them_as_they_are(shared_data: Path, tmp_path: Path) -> None:
    symbols = ("BTC", "ETH")
    hourly = tm.backtest(bars(shared_data, symbols), config=config(symbols, {}), journal=tmp_path / "h.journal")
    data = four_hour_bars(bars(shared_data, symbols))
    direct = tm.backtest(data, config=config(symbols, {}), journal=tmp_path / "4h.journal")
    pd.testing.assert_frame_equal(direct.recorded(), hourly.recorded())
    with pytest.raises(BusFault, match="bar=1h needs bars of 1h"):
        tm.backtest(data, config=config(symbols, {"bar": "1h"}), journal=tmp_path / "bad.journal")
