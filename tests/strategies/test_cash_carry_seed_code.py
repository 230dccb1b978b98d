"""Seed 002's own code on tidemark's ``cash_carry`` run.

Seed 002 (../shared/seeds/002_cash_carry_rollover_backtest.py.txt) imports
``task1``, ``task1_sell`` and ``dotenv``, which were never provided: its
scanner, price feed, simulator and entry and unwind executors do not exist.
Its own functions and classes do, and run here unchanged, loaded with stub
modules that only satisfy those imports (any use of a stub raises):

* ``parse_coin_m_expiry`` and ``next_quarter_expiry``: the contract names and
  the roll target of tidemark's carry market and strategy;
* ``PositionTracker`` and ``record_pnl``: the seed's books of the futures
  leg, fed tidemark's fills the way the seed's ``run_backtest`` feeds its
  executors' results (``load_from_log`` with the entry log, the roll loop's
  buy-back PnL and ``rollover``, ``update_position`` for a re-hedge), with
  the realised PnL the seed writes to ``pnl_tracker.csv``.

The run is ``test_cash_carry_seed``'s (one run per session): spot BTC/USDT and
the BTCUSD quarterlies derived from the real perpetual, the entry into
BTCUSD_250328, the roll into BTCUSD_250627 on 2025-03-26, one re-hedge and
the final unwind.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import Result
from tidemark.core.events import SubmitAlgo, SubmitOrder
from tidemark.strategies.cash_carry import days_to_delivery

from . import test_cash_carry_seed as carry_seed
from .test_cash_carry_seed import Q1, Q2, SPOT, rel, sample_script

carry = carry_seed.carry  # the fixture: one run per session, shared with those tests

SEED_FILE = "002_cash_carry_rollover_backtest.py.txt"
MISSING = {
    "dotenv": ("load_dotenv",),
    "task1": (
        "SynchronizedCashCarryScanner",
        "derive_slot_weights",
        "BacktestPriceFeed",
        "BinanceSimulator",
        "AdaptiveCashCarryExecutor",
        "ExecParams",
    ),
    "task1_sell": ("UnwindParams", "OptimizedUnwindExecutor"),
}


def _stub(module: str, name: str) -> Any:
    """A stand-in for a name the seed imports from a module it never shipped."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{module}.{name} was never provided with seed 002")

    if name[0].isupper() and name not in ("ExecParams", "UnwindParams"):
        return type(name, (), {"__init__": refuse})  # a class the seed subclasses (RolloverExecutor)
    if name in ("ExecParams", "UnwindParams"):
        return lambda **kwargs: types.SimpleNamespace(**kwargs)  # a default argument is built at import
    return (lambda *a, **k: None) if name == "load_dotenv" else refuse


@pytest.fixture(scope="module")
def seed(shared_seeds: Path) -> types.ModuleType:
    """Seed 002's code as it stands, up to its ``__main__`` guard."""
    path = shared_seeds / SEED_FILE
    source = path.read_text()
    source = source[: source.index('if __name__ == "__main__":')]
    saved = {name: sys.modules.get(name) for name in MISSING}
    for name, names in MISSING.items():
        stub = types.ModuleType(name)
        for attr in names:
            setattr(stub, attr, _stub(name, attr))
        sys.modules[name] = stub
    try:
        module = types.ModuleType("seed002")
        exec(compile(source, str(path), "exec"), module.__dict__)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def utc_date(ns: int) -> dt.date:
    return pd.Timestamp(ns, tz="UTC").date()


def test_the_seeds_contract_calendar_names_tidemarks_contracts_and_roll(
    seed: types.ModuleType, carry: tuple[Result, list[Any]]
) -> None:
    result, events = carry
    expiries = {s: pd.Timestamp(result.config["instruments"][s]["expiry"]) for s in (Q1, Q2)}
    for symbol, expiry in expiries.items():
        assert seed.parse_coin_m_expiry(symbol) == expiry.date()
    # the seed's roll target: BTCUSD_{next_quarter_expiry(expiry):%y%m%d}
    opened = next(e for e in events if isinstance(e, SubmitAlgo) and e.tag == "roll-open")
    assert f"BTCUSD_{seed.next_quarter_expiry(expiries[Q1].date()):%y%m%d}" == opened.instrument == Q2
    # the roll day: the seed's (expiry - cur_day).days <= 2, tidemark's days_to_delivery
    closed = next(e for e in events if isinstance(e, SubmitAlgo) and e.tag == "roll-close")
    day = utc_date(closed.ts)
    assert (seed.parse_coin_m_expiry(Q1) - day).days == days_to_delivery(expiries[Q1].value, closed.ts) == 2
    assert (seed.parse_coin_m_expiry(Q1) - (day - dt.timedelta(days=1))).days > 2  # not a day earlier


def test_the_sample_builders_quarterlies_are_the_seeds_calendar(seed: types.ModuleType) -> None:
    """Every quarterly delivery 2020-2035 that scripts/make_carry_sample.py
    names (the contracts of the carry sample and of these tests) is the one
    the seed rolls into from the previous one."""
    script = sample_script()
    deliveries = script.quarterlies(pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2035-12-31", tz="UTC"))
    assert len(deliveries) > 60
    for before, after in itertools.pairwise(deliveries):
        symbol = script.symbol_of(before)
        assert seed.parse_coin_m_expiry(symbol) == before.date()
        assert seed.next_quarter_expiry(before.date()) == after.date()
        assert before.hour == 8 and after.weekday() == 4  # 08:00 UTC on a Friday


def fills_of(result: Result, events: list[Any], tag: str, kind: type = SubmitAlgo) -> pd.DataFrame:
    """The fills of the orders (or an algo's children) tagged ``tag``."""
    tagged = [e for e in events if isinstance(e, kind) and e.tag == tag]
    ids = [e.algo_id if isinstance(e, SubmitAlgo) else e.order_id for e in tagged]
    assert ids, tag
    fills = result.fills
    parent = fills["order_id"].str.rsplit(".", n=1).str[0]
    return fills[parent.isin(ids) | fills["order_id"].isin(ids)]


class SeedBooks:
    """The seed's books of the futures leg, driven as its ``run_backtest``
    drives them, from tidemark's fills. Realised PnL goes through the seed's
    ``record_pnl`` into ``pnl_tracker.csv`` (in the current folder)."""

    def __init__(self, seed: types.ModuleType, result: Result) -> None:
        self.seed = seed
        self.result = result
        seed.initialize_pnl_tracker()
        self.tracker = seed.PositionTracker()

    def spot_at(self, ts: int) -> float:
        """The spot of the fill's step (the seed: spot mid at the trade's time)."""
        return float(self.result.bars[SPOT]["close"].loc[pd.Timestamp(ts, tz="UTC")])

    def entry(self, fills: pd.DataFrame) -> None:
        """``pt.load_from_log(log_df)`` with the entry executor's log."""
        log = pd.DataFrame(
            {"fut_symbol": fills["instrument"], "fill_fut_ct": fills["quantity"], "fut_px": fills["price"]}
        )
        self.tracker.load_from_log(log)

    def roll(self, buy_back: pd.DataFrame, sell_forward: pd.DataFrame, entry_inv: float | None = None) -> list[float]:
        """The seed's roll block: each buy-back's PnL ``filled * 100 * (1/exit
        - 1/entry_vwap)`` BTC at the spot of its time, then
        ``pt.rollover(sym, next_sym, vwap of the sells, their total)``.
        ``entry_inv``: give the new contract this inverse entry instead of
        the seed's 1/vwap. Returns the BTC PnL per buy-back."""
        seed, pt = self.seed, self.tracker
        (symbol,) = set(buy_back["instrument"])
        (to_symbol,) = set(sell_forward["instrument"])
        entry_vwap = pt.current_positions().get(symbol, {}).get("entry_px", 0)
        out = []
        for row in buy_back.itertuples():
            pnl_btc = int(row.quantity) * 100.0 * (1 / row.price - 1 / entry_vwap)
            seed.record_pnl(pd.Timestamp(row.ts, tz="UTC").to_pydatetime(), symbol, pnl_btc * self.spot_at(row.ts))
            out.append(pnl_btc)
        qty = int(sell_forward["quantity"].sum())
        vwap = float((sell_forward["price"] * sell_forward["quantity"]).sum() / sell_forward["quantity"].sum())
        pt.rollover(symbol, to_symbol, vwap, qty)
        if entry_inv is not None:
            pt.fut_pos[to_symbol].update(entry_inv=entry_inv, entry_px=1.0 / entry_inv)
        return out

    def trade(self, fills: pd.DataFrame) -> list[float]:
        """``pt.update_position(sym, +qty for a sell / -qty for a buy, price,
        conversion_spot_usd=spot, ts)``, fill by fill; returns the BTC PnL
        each fill realised (read back from ``pnl_tracker.csv``)."""
        out = []
        for row in fills.itertuples():
            before = len(self.recorded())
            change = int(row.quantity) if row.side == "sell" else -int(row.quantity)
            ts = pd.Timestamp(row.ts, tz="UTC").to_pydatetime()
            spot = self.spot_at(row.ts)
            self.tracker.update_position(row.instrument, change, row.price, conversion_spot_usd=spot, ts=ts)
            new = self.recorded()[before:]
            out.append(float(new["pnl_usd"].sum()) / spot if len(new) else 0.0)
        return out

    @staticmethod
    def recorded() -> pd.DataFrame:
        return pd.read_csv("pnl_tracker.csv")


@pytest.fixture
def books(
    seed: types.ModuleType, carry: tuple[Result, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SeedBooks, Result, list[Any]]:
    monkeypatch.chdir(tmp_path)  # the seed writes its CSV files to the current folder
    result, events = carry
    return SeedBooks(seed, result), result, events


def test_the_seeds_tracker_books_tidemarks_entry_and_roll_buy_back(books: tuple[SeedBooks, Result, list[Any]]) -> None:
    seedbooks, result, events = books
    entry = fills_of(result, events, "entry")
    seedbooks.entry(entry[entry["instrument"] == Q1])
    position = seedbooks.tracker.current_positions()[Q1]
    shorts = entry[entry["instrument"] == Q1]
    assert position["qty"] == int(shorts["quantity"].sum()) == 9500 and position["side"] == "SHORT"
    buy_back, sell_forward = fills_of(result, events, "roll-close"), fills_of(result, events, "roll-open")
    realized = seedbooks.roll(buy_back, sell_forward)
    booked = buy_back["realized"].to_numpy()
    assert len(realized) == len(booked) == 96
    for seeds, tidemarks in zip(realized, booked, strict=True):
        assert seeds == tidemarks or rel(tidemarks, seeds) <= 1e-12
    # the seed's USD figure: each buy-back's coin PnL at the spot of its time; tidemark's locked convention
    usd = seedbooks.recorded()["pnl_usd"].to_numpy()
    locked = (buy_back["realized"] * buy_back["settle_rate"]).to_numpy()
    assert np.allclose(usd, locked, rtol=1e-12, atol=0)
    assert Q1 not in seedbooks.tracker.current_positions()
    assert seedbooks.tracker.current_positions()[Q2]["qty"] == int(sell_forward["quantity"].sum()) == 9939


def test_after_the_roll_the_seeds_tracker_and_tidemark_differ_only_by_the_rolled_entry(
    books: tuple[SeedBooks, Result, list[Any]],
) -> None:
    """``rollover`` enters the new contract at the arithmetic VWAP of the roll's
    sells, where the seed's own ``load_from_log`` and ``update_position``
    average inverse entries (the contracts-weighted mean of 1/price, the
    entry at which an inverse position's coin PnL adds up). tidemark books
    every inverse entry the second way. Given that entry, the seed's
    ``update_position`` realises exactly tidemark's PnL on every later fill
    (the re-hedge and the unwind); with the seed's VWAP, each differs by
    ``contracts * 100 * (mean(1/price) - 1/vwap)`` BTC, which is what this
    test measures too."""
    seedbooks, result, events = books
    entry = fills_of(result, events, "entry")
    buy_back, sell_forward = fills_of(result, events, "roll-close"), fills_of(result, events, "roll-open")
    later = result.fills[(result.fills["instrument"] == Q2) & (result.fills["side"] == "buy")]
    rehedge = fills_of(result, events, "rehedge", SubmitOrder)
    assert len(rehedge) == 1 and rehedge["side"].iloc[0] == "buy" and len(later) == 97  # re-hedge + 96 unwind children
    harmonic = float((sell_forward["quantity"] / sell_forward["price"]).sum() / sell_forward["quantity"].sum())

    seedbooks.entry(entry[entry["instrument"] == Q1])
    seedbooks.roll(buy_back, sell_forward, entry_inv=harmonic)
    realized = seedbooks.trade(later)
    for seeds, tidemarks in zip(realized, later["realized"], strict=True):
        assert rel(tidemarks, seeds) <= 1e-9
    assert seedbooks.tracker.current_positions() == {}  # unwound

    # the seed as written: the rolled entry at the sells' VWAP
    as_written = SeedBooks(seedbooks.seed, result)
    as_written.entry(entry[entry["instrument"] == Q1])
    as_written.roll(buy_back, sell_forward)
    vwap = as_written.tracker.current_positions()[Q2]["entry_px"]
    realized = as_written.trade(later)
    shift = (later["quantity"] * 100.0 * (harmonic - 1.0 / vwap)).to_numpy()  # buying back: 1/exit - 1/entry
    assert np.allclose(np.asarray(realized) - later["realized"].to_numpy(), shift, rtol=1e-6, atol=1e-12)
    assert 0 < abs(float(shift.sum())) < 1e-3 * abs(float(later["realized"].sum()))  # small, not zero
