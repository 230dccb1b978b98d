"""Perpetual funding in backtests over real Binance data, against an
independent pandas computation over the same funding prints and marks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tidemark.adapters.backtest import run_backtest
from tidemark.core.events import AccountSnapshot, FundingApplied, FundingUnavailable, OrderFilled
from tidemark.journal.reader import JournalReader

HOLD = """
def schema():
    return {"id": "hold", "inputs": {"qty": {"type": "float", "default": 1.0, "min": -1e9, "max": 1e9}}}

def on_bar(ctx, i):
    if i == 0:
        q = ctx.params["qty"]
        ctx.order("buy" if q > 0 else "sell", abs(q))
"""


def files(shared: Path, coin: str) -> tuple[Path, Path, Path]:
    base = f"{coin}_USDT_USDT"
    return (
        shared / "ohlcv" / "binance_usdm" / f"{base}-1h-futures.feather",
        shared / "funding" / "binance_usdm" / f"{base}-1h-funding_rate.feather",
        shared / "funding" / "binance_usdm" / f"{base}-1h-mark.feather",
    )


def independent_funding(funding_file: Path, mark_file: Path, qty: float, start: int, end: int) -> tuple[float, int]:
    rates = pd.read_feather(funding_file)[["date", "open"]].rename(columns={"open": "rate"})
    marks = pd.read_feather(mark_file)[["date", "close"]]
    marks["date"] = marks["date"] + pd.Timedelta(hours=1)  # the mark at T is the close of the candle ending at T
    joined = rates.merge(marks, on="date", how="left")
    t = joined["date"].astype("int64")
    window = joined[(t >= start) & (t <= end)]
    assert window["close"].notna().all()
    return float((-qty * window["close"] * window["rate"]).sum()), len(window)


@pytest.mark.parametrize(("coin", "qty"), [("BTC", 0.5), ("ETH", -3.0)])
def test_funding_total_equals_independent_computation(shared_data: Path, tmp_path: Path, coin: str, qty: float) -> None:
    bars, funding, marks = files(shared_data, coin)
    strategy = tmp_path / "hold.py"
    strategy.write_text(HOLD)
    journal = tmp_path / f"{coin}.journal"
    config = {
        "start": "2025-01-01T00:00:00Z",
        "end": "2025-06-30T23:00:00Z",
        "initial_cash": 1_000_000,
        "strategies": [{"strategy": str(strategy), "params": {"qty": qty}}],
        "funding": {
            "enabled": True,
            "data": [str(funding)],
            "marks": [str(marks)],
            "interval": "8h",
            "fallback": "error",
        },
    }
    result = run_backtest(data=[bars], config=config, journal=journal)
    with JournalReader(journal) as reader:
        events = [e for _, e in reader.events()]
    fill = next(e for e in events if isinstance(e, OrderFilled))
    applied = [e for e in events if isinstance(e, FundingApplied)]
    assert not [e for e in events if isinstance(e, FundingUnavailable)]
    last_bar_ts = int(result.equity.index[-1].value)
    expected, prints = independent_funding(funding, marks, qty, fill.ts, last_bar_ts)
    assert prints > 500 and len(applied) == prints
    assert sum(e.amount for e in applied) == pytest.approx(expected, rel=1e-9)
    # Longs pay when the rate is positive; shorts receive.
    for e in applied:
        assert (e.amount < 0) == (e.rate * e.quantity > 0) or e.rate == 0
    snap = [e for e in events if isinstance(e, AccountSnapshot)][-1]
    assert snap.funding == pytest.approx(expected, rel=1e-9)
    assert result.metrics["final_equity"] == pytest.approx(snap.equity, rel=1e-12)
    assert result.metrics["funding"] == pytest.approx(expected, rel=1e-9)
    assert snap.equity == pytest.approx(
        1_000_000 + snap.realized + snap.unrealized - snap.fees + snap.funding, abs=1e-6
    )


def test_a_missing_rate_is_explicit_never_a_silent_zero(shared_data: Path, tmp_path: Path) -> None:
    bars, funding, marks = files(shared_data, "BTC")
    frame = pd.read_feather(funding)
    holey = tmp_path / "BTC_USDT_USDT-1h-funding_rate.feather"
    frame.drop(index=frame.index[100]).reset_index(drop=True).to_feather(holey)
    missing_ts = int(frame["date"].iloc[100].value)
    strategy = tmp_path / "hold.py"
    strategy.write_text(HOLD)
    base = {
        "start": "2025-01-01T00:00:00Z",
        "end": "2025-03-31T23:00:00Z",
        "initial_cash": 1_000_000,
        "strategies": [{"strategy": str(strategy)}],
    }
    funding_cfg = {"enabled": True, "data": [str(holey)], "marks": [str(marks)], "interval": "8h"}
    result = run_backtest(
        data=[bars],
        config={**base, "funding": {**funding_cfg, "fallback": "rate", "rate": 0.0001}},
        journal=tmp_path / "a.journal",
    )
    with JournalReader(result.journal) as reader:
        events = [e for _, e in reader.events()]
    gaps = [e for e in events if isinstance(e, FundingUnavailable)]
    assert [(g.funding_ts, g.fallback) for g in gaps] == [(missing_ts, "rate:0.0001")]
    fallback_charges = [e for e in events if isinstance(e, FundingApplied) and e.source.startswith("fallback")]
    assert len(fallback_charges) == 1 and fallback_charges[0].rate == 0.0001
    from tidemark.core.bus import BusFault

    with pytest.raises(BusFault, match="no funding rate"):
        run_backtest(
            data=[bars],
            config={**base, "funding": {**funding_cfg, "fallback": "error"}},
            journal=tmp_path / "b.journal",
        )
