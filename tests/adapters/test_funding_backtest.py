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


FLIP_AT_FUNDING = """
def schema():
    return {"id": "flip"}

def on_bar(ctx, i):
    # At each funding time T (the close of the bar ending at T) change the
    # position: the order fills at the next bar's open, also at T.
    if i == 0 or ctx.now % (8 * 3_600_000_000_000) == 0:
        if ctx.position.size:
            ctx.flatten()
        else:
            ctx.buy(1.0)
"""


def test_a_missing_print_charges_the_position_and_mark_held_at_its_time(shared_data: Path, tmp_path: Path) -> None:
    """The same run with eight prints removed and the fallback rate: each
    fallback charge is on the position and mark the full run charged at that
    time, though the next bar's open changes the position right at T."""
    bars, funding, marks = files(shared_data, "BTC")
    frame = pd.read_feather(funding)
    window = (frame["date"] >= "2025-02-01") & (frame["date"] < "2025-03-01")
    dropped = frame[window].index[[3, 4, 10, 17, 18, 30, 41, 60]]
    holey = tmp_path / "BTC_USDT_USDT-1h-funding_rate.feather"
    frame.drop(index=dropped).reset_index(drop=True).to_feather(holey)
    strategy = tmp_path / "flip.py"
    strategy.write_text(FLIP_AT_FUNDING)
    base = {
        "start": "2025-02-01T00:00:00Z",
        "end": "2025-02-28T23:00:00Z",
        "initial_cash": 1_000_000,
        "strategies": [{"strategy": str(strategy)}],
    }

    def charges(data: Path, name: str) -> dict[int, FundingApplied]:
        """Charges by funding time: a print's time, or for a fallback the time
        its FundingUnavailable names (it is noticed at the next bar)."""
        funding_cfg = {"enabled": True, "data": [str(data)], "marks": [str(marks)], "interval": "8h"}
        config = {**base, "funding": {**funding_cfg, "fallback": "rate", "rate": 0.0003}}
        result = run_backtest(data=[bars], config=config, journal=tmp_path / name)
        out: dict[int, FundingApplied] = {}
        due = 0
        with JournalReader(result.journal) as reader:
            for _, event in reader.events(kinds=["funda", "fundu"]):
                if isinstance(event, FundingUnavailable):
                    due = event.funding_ts
                elif isinstance(event, FundingApplied):
                    out[due if event.source == "fallback" else event.ts] = event
        return out

    full, gaps = charges(funding, "full.journal"), charges(holey, "holey.journal")
    missing = [int(frame["date"].iloc[k].value) for k in dropped]
    held = [t for t in missing if t in full]
    assert len(held) >= 3  # the flipper held a position at several of the dropped times
    for t in missing:
        if t not in full:
            assert t not in gaps  # flat at T: nothing to charge either way
            continue
        a, b = full[t], gaps[t]
        assert (b.source, b.quantity, b.mark, b.rate) == ("fallback", a.quantity, a.mark, 0.0003)
        assert b.amount == pytest.approx(-a.quantity * a.mark * 0.0003, rel=1e-12)
    assert {t: e.amount for t, e in full.items() if t not in missing} == {
        t: e.amount for t, e in gaps.items() if t not in missing
    }


def test_a_static_funding_schedule_charges_from_the_first_funding_time(tmp_path: Path) -> None:
    from tests.kit import write_bars

    data = write_bars(tmp_path / "PERP.csv", [100.0 + (i % 7) for i in range(48)], start="2024-01-01T02:00:00Z")
    strategy = tmp_path / "hold.py"
    strategy.write_text(HOLD)
    config = {
        "initial_cash": 100_000,
        "strategies": [{"strategy": str(strategy), "params": {"qty": 2.0}}],
        "funding": {"enabled": True, "rate": 0.0001, "interval": "8h", "fallback": "rate"},
    }
    result = run_backtest(data=[data], config=config, journal=tmp_path / "static.journal")
    with JournalReader(result.journal) as reader:
        applied = [e for _, e in reader.events(kinds=["funda"])]
        due = [e.funding_ts for _, e in reader.events(kinds=["fundu"])]
    closes = pd.read_csv(data)["close"].to_numpy()
    # bars open at 02:00, 03:00, ...: the bar ending at 08:00 is bar 5; funding at
    # 08:00, 16:00, 00:00, ... until the last bar (ends 2024-01-03T02:00) -> 6 times,
    # each noticed at the next bar (no print can come any more) and charged then
    times = pd.date_range("2024-01-01T08:00:00Z", periods=6, freq="8h")
    assert [pd.Timestamp(t, unit="ns", tz="UTC") for t in due] == list(times)
    assert [e.ts for e in applied] == [t.value + 3_600_000_000_000 for t in times]
    for e, t in zip(applied, times, strict=True):
        bar = int((t - pd.Timestamp("2024-01-01T03:00:00Z")) / pd.Timedelta(hours=1))  # the bar ending at t
        assert (e.quantity, e.rate, e.source) == (2.0, 0.0001, "fallback+close")
        assert e.amount == pytest.approx(-2.0 * closes[bar] * 0.0001, rel=1e-12)
    assert result.metrics["funding"] == pytest.approx(sum(e.amount for e in applied))
