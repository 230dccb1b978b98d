"""The cash-and-carry (seed 002) end to end on synthetic 15-minute data:
TWAP entry, a roll between inverse quarterlies, daily re-hedge, the journal
replays, and the coin hedge holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import replay, run_backtest
from tidemark.core.events import AccountSnapshot, AlgoFinished, OrderFilled, SubmitOrder
from tidemark.journal.reader import JournalReader

BARS = 40 * 96  # 40 days of 15-minute bars
START = pd.Timestamp("2024-03-01T00:00:00Z")
Q1_EXPIRY = START + pd.Timedelta(days=20)
Q2_EXPIRY = START + pd.Timedelta(days=111)


def write(path: Path, close: np.ndarray) -> Path:
    open_ = np.concatenate(([close[0]], close[:-1]))
    pd.DataFrame(
        {
            "date": pd.date_range(START, periods=BARS, freq="15min").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": 50.0,
        }
    ).to_csv(path, index=False)
    return path


def market(tmp_path: Path) -> list[Path]:
    rng = np.random.Generator(np.random.PCG64(2))
    spot = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.002, BARS)))
    t = START.value + np.arange(1, BARS + 1) * 900 * 10**9

    def future(expiry: pd.Timestamp, annual_basis: float) -> np.ndarray:
        years_left = np.clip((expiry.value - t) / (365 * 86_400e9), 0, None)
        return spot * (1 + annual_basis * years_left)

    return [
        write(tmp_path / "BTC_SPOT.csv", spot),
        write(tmp_path / "BTCUSD_Q1.csv", future(Q1_EXPIRY, 0.10)),
        write(tmp_path / "BTCUSD_Q2.csv", future(Q2_EXPIRY, 0.12)),
    ]


def test_cash_and_carry_runs_rolls_and_keeps_the_hedge(tmp_path: Path) -> None:
    inverse = {
        "kind": "future",
        "inverse": True,
        "contract_size": 100.0,
        "lot_size": 1.0,
        "base": "BTC",
        "quote": "USD",
    }
    config = {
        "initial_cash": 1_000_000,
        "commission_bps": 2,
        "strategies": [
            {
                "strategy": "cash_carry",
                "params": {"capital_pct": 0.5, "roll_days": 3, "rehedge_pct": 0.02, "unwind": False},
            }
        ],
        "instruments": {
            "BTC_SPOT": {"kind": "spot", "base": "BTC", "quote": "USD"},
            "BTCUSD_Q1": {**inverse, "expiry": Q1_EXPIRY.isoformat()},
            "BTCUSD_Q2": {**inverse, "expiry": Q2_EXPIRY.isoformat()},
        },
    }
    result = run_backtest(data=market(tmp_path), config=config, journal=tmp_path / "carry.journal")
    with JournalReader(result.journal) as reader:
        events = [e for _, e in reader.events()]
    algos = [e for e in events if isinstance(e, AlgoFinished)]
    assert len(algos) == 4  # spot entry, hedge entry, roll close, roll open (no final unwind here)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    for algo in algos:
        children = sum(f.quantity for f in fills if f.order_id.startswith(algo.algo_id + "."))
        assert children == pytest.approx(algo.quantity)
    entry_children = [
        e for e in events if isinstance(e, SubmitOrder) and e.tag == "entry" and e.instrument == "BTC_SPOT"
    ]
    assert len(entry_children) == 96
    rehedges = [e for e in events if isinstance(e, SubmitOrder) and e.tag == "rehedge"]
    assert rehedges and {e.instrument for e in rehedges} == {"BTCUSD_Q1", "BTCUSD_Q2"}  # the daily re-hedge fired
    positions = result.positions.groupby("instrument")["quantity"].last().to_dict()
    assert positions["BTCUSD_Q1"] == 0.0  # rolled out before expiry
    assert not [f for f in fills if f.liquidity == "settlement" and f.quantity > 0]
    spot_qty = positions["BTC_SPOT"]
    # The seed measures the hedge with the spot price: contracts * 100 / spot.
    # The last check was at the end of the last full day.
    spot_bars = pd.read_csv(tmp_path / "BTC_SPOT.csv")
    last_check = pd.Timestamp(spot_bars["date"].iloc[-1]).floor("D") - pd.Timedelta(minutes=15)
    eod = spot_bars.loc[pd.to_datetime(spot_bars["date"]) == last_check, "close"].iloc[0]
    q2_close = eod
    hedge_coin = positions["BTCUSD_Q2"] * 100.0 / eod
    assert spot_qty == pytest.approx(1_000_000 * 0.5 / 60_000, rel=0.05)
    assert abs(hedge_coin + spot_qty) <= 0.02 * spot_qty + 100.0 / q2_close  # within the re-hedge band + 1 contract
    snap = [e for e in events if isinstance(e, AccountSnapshot)][-1]
    assert snap.equity == pytest.approx(1_000_000 + snap.realized + snap.unrealized - snap.fees + snap.funding)
    # the report's equity (rebuilt from the journal) is the engine's own final equity
    assert result.metrics["final_equity"] == pytest.approx(snap.equity, rel=1e-12)
    spot_close = pd.read_csv(tmp_path / "BTC_SPOT.csv")["close"].iloc[-1]
    assert snap.currencies == ("BTC",) and snap.rates == (pytest.approx(spot_close),)  # coin valued at spot
    # hedged: the carry neither gains nor loses much while spot moves about 8%
    assert abs(snap.equity / 1_000_000 - 1) < 0.02
    assert replay(result.journal).ok
