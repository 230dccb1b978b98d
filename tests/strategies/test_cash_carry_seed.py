"""``cash_carry`` against seed 002's formulas, on real data.

Seed 002 (../shared/seeds/002_cash_carry_rollover_backtest.py.txt) imports
modules that were never provided, so its ``run_backtest`` cannot run; its
formulas are the reference here (its own calendar and position tracker run
in test_cash_carry_seed_code.py). Each figure below is computed by hand from the seed's formulas
and the bars and fills of the run, and compared with what the engine booked:

* basis ``F/S - 1``, annualised carry ``basis * 365 / days to delivery``;
* hedge ratio in contracts ``round(target_btc * F / 100)``, roll size
  ``round(spot held * F_next / 100)``, re-hedge ``round(net * S / 100)`` with
  ``net = spot - contracts * 100 / S`` beyond 5 % of the spot;
* the 21-day volume profile of the slot weights;
* inverse PnL in coin, the seed's ``PositionTracker``: an inverse-average
  entry and ``contracts * 100 * (1/exit - 1/entry)`` on each closing fill;
* fees in coin ``contracts * 100 / price * rate`` converted at the time's
  spot, and the account: USD legs plus coin legs at the final spot.

The market: Binance spot BTC/USDT and the BTCUSD quarterlies derived from
the real USD-M perpetual and its funding (scripts/make_carry_sample.py says
how), 15-minute bars, 2025-03-01 .. 2025-04-06, trading from 2025-03-22
after 21 days of warm-up: entry into BTCUSD_250328, the roll into
BTCUSD_250627 on 2025-03-26 (two days before delivery), daily re-hedges and
the final unwind.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import Result, run_backtest
from tidemark.core.events import AlgoFinished, SubmitAlgo, SubmitOrder
from tidemark.core.instruments import to_step
from tidemark.journal.reader import JournalReader

ROOT = Path(__file__).resolve().parents[2]
START, END, TRADE_FROM = "2025-03-01", "2025-04-06", "2025-03-22"
CASH = 1_000_000.0
CAPITAL_PCT = 0.95
Q1, Q2, SPOT = "BTCUSD_250328", "BTCUSD_250627", "BTCUSDT"
MIN15 = pd.Timedelta(minutes=15)
REL = 1e-12

_RUNS: dict[Path, tuple[Result, list[Any]]] = {}


def sample_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_carry_sample", ROOT / "scripts" / "make_carry_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def carry(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, list[Any]]:
    """One run of the seed system on the real window (once per session)."""
    if shared_data not in _RUNS:
        script = sample_script()
        market = script.carry_market(shared_data, START, END)
        assert list(market) == [SPOT, Q1, Q2]
        frames = []
        for symbol, frame in market.items():
            frame = frame.copy()
            frame.attrs["symbol"] = symbol
            frames.append(frame)
        config = {
            "initial_cash": CASH,
            "symbols": list(market),
            "strategies": [{"strategy": "cash_carry", "params": {"capital_pct": CAPITAL_PCT}}],
            "instruments": script.instruments(market),
            "margin_mode": "cross",
            "start": TRADE_FROM,
            "warmup": "21d",
        }
        journal = tmp_path_factory.mktemp("carry") / "carry.journal"
        result = run_backtest(data=frames, config=config, journal=journal)
        with JournalReader(result.journal) as reader:
            events = [event for _, event in reader.events()]
        _RUNS[shared_data] = (result, events)
    return _RUNS[shared_data]


def close_at(result: Result, symbol: str, ts: int | pd.Timestamp) -> float:
    """The close of ``symbol``'s bar closing at ``ts``."""
    return float(result.bars[symbol]["close"].loc[pd.Timestamp(ts, tz="UTC") if isinstance(ts, int) else ts])


def algos(events: list[Any], tag: str) -> list[SubmitAlgo]:
    return [e for e in events if isinstance(e, SubmitAlgo) and e.tag == tag]


def held_before(result: Result, symbol: str, ts: int) -> float:
    """The position in ``symbol`` from the fills booked before ``ts``."""
    fills = result.fills[(result.fills["instrument"] == symbol) & (result.fills["ts"] < ts)]
    signed = np.where(fills["side"] == "buy", fills["quantity"], -fills["quantity"])
    return float(signed.sum())


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


# -- entry: basis, carry, sizing, slot weights ---------------------------------------------------


def test_entry_basis_carry_and_hedge_ratio_are_the_seeds(carry: tuple[Result, list[Any]]) -> None:
    result, events = carry
    spot_algo, hedge_algo = algos(events, "entry")
    ts = spot_algo.ts
    assert pd.Timestamp(ts, tz="UTC") == pd.Timestamp(TRADE_FROM, tz="UTC") + MIN15  # the first traded bar
    s, f = close_at(result, SPOT, ts), close_at(result, Q1, ts)
    expiry = result.config["instruments"][Q1]["expiry"]
    days = (pd.Timestamp(expiry) - pd.Timestamp(ts, tz="UTC")) / pd.Timedelta(days=1)
    records = result.recorded()
    at = records.loc[pd.Timestamp(ts, tz="UTC")]
    basis = f / s - 1.0
    assert rel(at["basis_bps"], basis * 1e4) <= REL
    assert rel(at["carry_annual"], basis * 365.0 / days) <= REL
    target_btc = CASH * CAPITAL_PCT / s  # the seed's target_btc = capital / spot
    contracts = round(target_btc * f / 100.0)  # hedge ratio in whole contracts
    assert hedge_algo.instrument == Q1 and hedge_algo.side == "sell"
    assert hedge_algo.quantity == contracts == at["hedge_contracts"]
    assert spot_algo.instrument == SPOT and spot_algo.side == "buy"
    assert spot_algo.quantity == to_step(target_btc, 0.00001)  # the spot lot
    assert (spot_algo.slots, spot_algo.slot_interval) == (96, 15 * 60 * 10**9)
    assert spot_algo.child_type == "limit" and spot_algo.offsets == (0.75, 0.5, 0.75)
    finished = {e.algo_id: e for e in events if isinstance(e, AlgoFinished)}
    assert finished[spot_algo.algo_id].filled == spot_algo.quantity  # whole lots, no float noise
    assert finished[hedge_algo.algo_id].filled == contracts


def test_slot_weights_are_the_21_day_volume_profile(carry: tuple[Result, list[Any]]) -> None:
    result, events = carry
    for tag in ("entry", "roll-close"):
        algo = algos(events, tag)[0]
        start = pd.Timestamp(algo.ts, tz="UTC")
        bars = result.bars[Q1]
        window = bars[(bars.index > start - pd.Timedelta(days=21)) & (bars.index <= start)]
        opens = window.index - MIN15
        slot = (opens.hour * 60 + opens.minute) // 15
        per_slot = window["volume"].groupby(np.asarray(slot)).sum()
        w = np.ones(96)
        for k, v in per_slot.items():
            w[int(k)] = v
        w = w / w.sum()
        assert len(per_slot) == 96
        times = start + MIN15 * np.arange(96)
        expected = [w[(t.hour * 60 + t.minute) // 15] for t in times]
        assert np.allclose(algo.weights, expected, rtol=1e-12, atol=0)


# -- the roll ------------------------------------------------------------------------------------


def test_the_roll_happens_two_days_before_delivery_anchored_to_the_spot(carry: tuple[Result, list[Any]]) -> None:
    result, events = carry
    (close,) = algos(events, "roll-close")
    (opened,) = algos(events, "roll-open")
    assert close.ts == opened.ts
    day = pd.Timestamp(close.ts, tz="UTC")
    assert day == pd.Timestamp("2025-03-26", tz="UTC")  # (2025-03-28 - 2025-03-26).days == 2 <= roll window
    assert (close.instrument, close.side, opened.instrument, opened.side) == (Q1, "buy", Q2, "sell")
    assert close.quantity == -held_before(result, Q1, close.ts + 1)  # every contract of the expiring future
    spot_held = held_before(result, SPOT, close.ts + 1)
    assert opened.quantity == round(spot_held * close_at(result, Q2, close.ts) / 100.0)  # anchored to the spot
    positions = result.positions
    q1 = positions[positions["instrument"] == Q1]
    delivery = pd.Timestamp(result.config["instruments"][Q1]["expiry"]).value
    assert q1["quantity"].iloc[-1] == 0.0 and q1["ts"].iloc[-1] < delivery  # rolled out before delivery
    settled = result.fills[result.fills["liquidity"] == "settlement"]
    assert not len(settled) or (settled["quantity"] == 0).all()
    filled_q2 = result.fills[(result.fills["order_id"].str.startswith(opened.algo_id + "."))]["quantity"].sum()
    assert filled_q2 == opened.quantity


def test_the_daily_rehedge_is_the_seeds_band_and_size(carry: tuple[Result, list[Any]]) -> None:
    result, events = carry
    checks = 0
    for order in (e for e in events if isinstance(e, SubmitOrder) and e.tag == "rehedge"):
        checks += 1
        assert order.ts % 86_400_000_000_000 == 0  # end of day: the bar closing at 00:00 UTC
        spot_held = held_before(result, SPOT, order.ts + 1)
        contracts = held_before(result, order.instrument, order.ts)
        s = close_at(result, SPOT, order.ts)
        net = spot_held + contracts * 100.0 / s  # the seed: short delta = -contracts * 100 / spot
        assert abs(net) > 0.05 * spot_held
        trade = round(net * s / 100.0)
        assert order.quantity == abs(trade) and order.side == ("sell" if trade > 0 else "buy")
        assert order.order_type == "market_on_close"  # the seed trades at the end-of-day price
    assert checks >= 1


# -- money: inverse PnL, fees, the account, currencies ------------------------------------------


def seed_tracker_realized(fills: pd.DataFrame) -> list[float]:
    """The seed's PositionTracker, fill by fill: the short's entry is the
    contracts-weighted mean of 1/price; a buy closes ``close_qty * 100 *
    (1/price - 1/entry_vwap)`` BTC (update_position), a sell adds."""
    qty, entry_inv, out = 0, 0.0, []
    for side, contracts, price in zip(fills["side"], fills["quantity"], fills["price"], strict=True):
        contracts = int(contracts)
        if side == "sell":
            entry_inv = (entry_inv * qty + contracts / price) / (qty + contracts)
            qty += contracts
            out.append(0.0)
        else:
            close_qty = min(qty, contracts)
            out.append(close_qty * 100.0 * (1.0 / price - 1.0 / (1.0 / entry_inv)))
            qty -= close_qty
            assert close_qty == contracts  # the carry never flips long
    return out


def test_inverse_pnl_in_coin_is_the_seeds_formula_fill_by_fill(carry: tuple[Result, list[Any]]) -> None:
    result, _ = carry
    total = 0.0
    for symbol in (Q1, Q2):
        fills = result.fills[result.fills["instrument"] == symbol]
        seed = seed_tracker_realized(fills)
        engine = fills["realized"].to_numpy()
        assert (fills["currency"] == "BTC").all()
        for mine, theirs in zip(engine, seed, strict=True):
            assert mine == theirs or rel(mine, theirs) <= 1e-12
        total += sum(seed)
    booked = result.coin_pnl().loc["BTC", "realized"]
    assert rel(booked, total) <= 1e-12
    # per closed trip: contracts x 100 x (1/entry - 1/exit) with the trip's inverse-mean entry
    trips = result.trades[result.trades["instrument"].isin([Q1, Q2])]
    assert (trips["currency"] == "BTC").all() and len(trips) >= 2


def test_fees_are_charged_in_coin_and_converted_at_the_times_spot(carry: tuple[Result, list[Any]]) -> None:
    result, _ = carry
    fills = result.fills
    futures = fills[fills["instrument"].isin([Q1, Q2])]
    assert len(futures) > 100
    for row in futures.itertuples():
        rate = 0.0002 if row.liquidity == "maker" else 0.0005  # COIN-M delivery, regular tier
        assert rel(row.fee, row.quantity * 100.0 / row.price * rate) <= REL
        assert row.fee_currency == "BTC"
        spot = close_at(result, SPOT, row.ts)  # the spot of the fill's step
        assert row.settle_rate == spot and rel(row.fee_account, row.fee * spot) <= REL
    spot_fills = fills[fills["instrument"] == SPOT]
    for row in spot_fills.itertuples():
        assert rel(row.fee, row.quantity * row.price * 0.001) <= REL and row.fee_currency == "USD"


def test_the_account_adds_up_in_each_currency(carry: tuple[Result, list[Any]]) -> None:
    result, _ = carry
    coin = result.coin_pnl()
    fills = result.fills
    btc = fills[fills["currency"] == "BTC"]
    usd = fills[fills["currency"] == "USD"]
    assert rel(coin.loc["BTC", "fees"], float(btc["fee"].sum())) <= REL
    assert rel(coin.loc["USD", "net"], float(usd["realized"].sum() - usd["fee"].sum())) <= REL
    final_spot = float(result.bars[SPOT]["close"].iloc[-1])
    assert coin.loc["BTC", "rate"] == final_spot  # coin valued at the spot (tidemark: revalued)
    equity = CASH + coin.loc["USD", "net"] + coin.loc["BTC", "net"] * final_spot
    assert rel(result.metrics["final_equity"], equity) <= REL
    # the seed's convention: each realized coin amount locked at the spot of its trade
    locked = float((btc["realized"] * btc["settle_rate"]).sum())
    assert rel(coin.loc["BTC", "realized_locked"], locked) <= REL
    assert result.positions.groupby("instrument")["quantity"].last().abs().sum() == 0.0  # unwound


def test_trade_figures_state_their_currency(carry: tuple[Result, list[Any]]) -> None:
    result, _ = carry
    trades = result.trades
    assert set(trades["currency"]) == {"BTC", "USD"}
    assert (
        trades.loc[trades["currency"] == "USD", "pnl_account"] == trades.loc[trades["currency"] == "USD", "pnl"]
    ).all()
    closed = trades[~trades["open"].astype(bool)]
    assert rel(result.metrics["expectancy"], float(closed["pnl_account"].mean())) <= REL
    assert math.isnan(result.metrics["avg_mae"])  # excursions of BTC and USD trades are not averaged
    btc = closed[closed["currency"] == "BTC"]
    # a BTC trade's account figure converts each fill's coin at that fill's spot
    for trip in btc.itertuples():
        assert abs(trip.pnl_account) > 100 * abs(trip.pnl)  # USD, not BTC
    assert result.metrics["currency"] == "USD"
    positions = result.positions
    assert set(positions.loc[positions["instrument"].isin([Q1, Q2]), "currency"]) == {"BTC"}
    assert set(positions.loc[positions["instrument"] == SPOT, "currency"]) == {"USD"}
    assert set(result.fills.loc[result.fills["instrument"] == SPOT, "fee_currency"]) == {"USD"}
