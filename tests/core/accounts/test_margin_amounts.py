"""Isolated and cross margin, liquidation amounts and solvency, hand-computed (issue 25)."""

from __future__ import annotations

from typing import Any

import pytest

from tidemark.core.accounts.buying_power import AccountRules, BuyingPower
from tidemark.core.accounts.margin import MarginActor, liquidation_price
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.bus import QUIET_FOREVER, Bus
from tidemark.core.events import (
    Bar,
    Event,
    InstrumentDefinition,
    Liquidation,
    MarginCall,
    OrderFilled,
    TradingHalted,
)
from tidemark.core.instruments import spot

H = 3_600_000_000_000
PERP = InstrumentDefinition(
    0, "P", kind="perpetual", quote="USD", settle="USD", contract_size=2.0, initial_margin=0.1, maintenance_margin=0.05
)
INV = InstrumentDefinition(
    0,
    "BTCUSD",
    kind="perpetual",
    base="BTC",
    quote="USD",
    settle="BTC",
    inverse=True,
    contract_size=100.0,
    initial_margin=0.1,
    maintenance_margin=0.05,
)
LOOSE = InstrumentDefinition(0, "L", kind="perpetual", quote="USD", settle="USD", maintenance_margin=0.0)
EQUAL = InstrumentDefinition(
    0, "E", kind="perpetual", quote="USD", settle="USD", initial_margin=0.05, maintenance_margin=0.05
)


class Run:
    def __init__(self, cash: float = 100_000.0, **kw: Any) -> None:
        self.pf = Portfolio(cash)
        self.bus = Bus()
        self.seen: list[Event] = []
        for cls in (Liquidation, MarginCall, OrderFilled, TradingHalted):
            self.bus.subscribe(cls, self.seen.append)
        self.bus.subscribe(Bar, lambda b: self.pf.marks.__setitem__(b.instrument, b.close))
        self.margin = MarginActor(self.pf, **kw)
        self.bus.add(self.margin)
        self.bus.start()
        for inst in (PERP, INV, LOOSE, EQUAL, spot("X")):
            self.pf.add_instrument(inst)
            self.bus.feed(inst)

    def hold(self, instrument: str, quantity: float, price: float, strategy: str = "s") -> None:
        side = "buy" if quantity > 0 else "sell"
        self.pf.apply_fill(
            OrderFilled(1, strategy, "o", "f", instrument, side, abs(quantity), price, 1, 0.0, "taker", 0.0)
        )
        self.pf.marks[instrument] = price

    def bar(self, instrument: str, k: int, o: float, h: float, lo: float, c: float, last: bool = True) -> None:
        self.bus.feed(Bar(k * H, instrument, o, h, lo, c, 1.0, H, last=last))

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.seen if isinstance(e, cls)]


def test_liquidation_prices_by_formula() -> None:
    assert liquidation_price(PERP, 1.0, 100.0) == pytest.approx(100 * 0.9 / 0.95)
    assert liquidation_price(PERP, -1.0, 100.0) == pytest.approx(100 * 1.1 / 1.05)
    assert liquidation_price(INV, 1.0, 100.0) == pytest.approx(100 * 1.05 / 1.1)
    assert liquidation_price(INV, -1.0, 100.0) == pytest.approx(100 * 0.95 / 0.9)


def test_isolated_long_liquidated_at_the_price_with_fee_and_maintenance() -> None:
    r = Run(fee_bps=40.0)
    r.hold("P", 10.0, 100.0)
    liq = 100 * 0.9 / 0.95
    r.bar("P", 1, 99, 100, liq + 0.01, 99)
    assert r.of(Liquidation) == []
    assert r.margin.bars_quiet_until() == 0
    r.bar("P", 2, 99, 99, liq, 96)  # the low touches the price exactly
    (event,) = r.of(Liquidation)
    value = 10 * 2.0 * liq
    assert (event.strategy, event.instrument, event.quantity, event.price) == ("s", "P", 10.0, pytest.approx(liq))
    assert event.fee == pytest.approx(value * 0.004)
    (call,) = r.of(MarginCall)
    assert call.maintenance == pytest.approx(value * 0.05)
    assert call.equity == pytest.approx(100_000 + 10 * 2.0 * (96 - 100))  # marked at the close before closing
    (fill,) = r.of(OrderFilled)
    assert (fill.side, fill.quantity, fill.exec_ts) == ("sell", 10.0, H)
    assert (fill.liquidity, fill.leaves) == ("liquidation", 0.0)
    assert (fill.order_id, fill.fill_id, fill.fee_currency) == ("liq-1", "liq-1.1", "USD")
    assert r.pf.positions[("s", "P")].quantity == 0.0
    assert r.pf.balance() == pytest.approx(100_000 + 20 * (liq - 100) - value * 0.004)
    assert r.margin.bars_quiet_until() == QUIET_FOREVER


def test_isolated_long_gapping_below_is_closed_at_the_open() -> None:
    r = Run()
    r.hold("P", 1.0, 100.0)
    r.bar("P", 1, 80, 85, 79, 84)
    assert [e.price for e in r.of(Liquidation)] == [80.0]
    assert r.of(Liquidation)[0].fee == pytest.approx(2 * 80 * 0.005)  # default 50 bp


def test_isolated_short_liquidated_above_and_at_a_gap_open() -> None:
    r = Run()
    r.hold("P", -1.0, 100.0, "a")
    liq = 100 * 1.1 / 1.05
    r.bar("P", 1, 101, liq - 0.01, 100, 101)
    assert r.of(Liquidation) == []
    r.bar("P", 2, 101, liq, 100, 101)
    assert [(e.strategy, e.price) for e in r.of(Liquidation)] == [("a", pytest.approx(liq))]
    assert r.of(OrderFilled)[0].side == "buy"
    r.hold("P", -1.0, 100.0, "b")
    r.bar("P", 3, 120, 121, 119, 120)
    assert r.of(Liquidation)[-1].price == 120.0


def test_inverse_liquidation_fee_and_maintenance_in_the_coin() -> None:
    r = Run()
    r.hold("BTCUSD", 10.0, 40_000.0)
    liq = 40_000 * 1.05 / 1.1
    r.bar("BTCUSD", 1, 39_000, 39_500, 38_000, 38_500)
    (event,) = r.of(Liquidation)
    assert event.price == pytest.approx(liq)
    assert event.fee == pytest.approx(10 * 100 * 0.005 / liq)
    assert r.of(MarginCall)[0].maintenance == pytest.approx(10 * 100 * 0.05 / liq)
    assert r.of(OrderFilled)[0].fee_currency == "BTC"


def test_instruments_without_a_margin_gap_are_never_liquidated() -> None:
    r = Run()
    r.hold("L", 1.0, 100.0)
    r.hold("E", 1.0, 100.0)
    r.bar("L", 1, 10, 10, 1, 2)
    r.bar("E", 1, 10, 10, 1, 2)
    assert r.of(Liquidation) == []
    assert r.margin.bars_quiet_until() == QUIET_FOREVER


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="isolated or cross"):
        MarginActor(Portfolio(1.0), mode="portfolio")


def test_cross_margin_maintenance_and_the_boundary() -> None:
    r = Run(cash=1_000.0, mode="cross", fee_bps=0.0)
    r.hold("P", 50.0, 100.0)  # notional 10,000 at 100; maintenance 500
    r.hold("BTCUSD", 10.0, 40_000.0)
    r.pf.rates["BTC"] = 40_000.0
    assert r.margin.maintenance() == pytest.approx(10_000 * 0.05 + 1_000 * 0.05)
    # Equity 1,000 + 100 * (c - 100) (the coin leg is flat at 40,000); maintenance 5 * c + 50.
    # Equal at c = 99.5 - 0.5 = 99.4736...: at c = 99.5 equity 950 >= 547.5; at c = 95: 500 < 525.
    r.bar("P", 1, 99, 99, 94, 99.5, last=False)  # not the step's last bar: not judged
    assert r.of(Liquidation) == []
    r.bar("BTCUSD", 1, 40_000, 40_000, 40_000, 40_000)
    assert r.of(Liquidation) == []
    r.bar("P", 2, 99, 99, 94, 95)
    assert sorted((e.instrument, e.price) for e in r.of(Liquidation)) == [("BTCUSD", 40_000.0), ("P", 95.0)]
    assert r.margin.maintenance() == 0.0


def test_cross_margin_at_exactly_maintenance_is_not_liquidated() -> None:
    # 50 contracts of 2 units: equity 880 + 100 (c - 100), maintenance 0.05 * 100 c; equal at c = 96.
    r = Run(cash=880.0, mode="cross", fee_bps=0.0)
    r.hold("P", 50.0, 100.0)
    r.bar("P", 1, 100, 100, 90, 96)
    assert r.pf.equity() == r.margin.maintenance() == 480.0
    assert r.of(Liquidation) == []
    r.bar("P", 2, 96, 96, 95, 95.99)
    assert [e.price for e in r.of(Liquidation)] == [95.99]


def test_solvency_halts_once_at_zero_equity_without_a_fee() -> None:
    r = Run(cash=1_000.0, solvency=BuyingPower(AccountRules("margin", leverage=5.0), Portfolio(1.0)))
    r.hold("X", 40.0, 100.0)  # spot on a margin account: margined
    r.bar("X", 1, 100, 100, 80, 80)  # equity 1,000 - 800 = 200
    assert r.of(TradingHalted) == []
    assert r.margin.bars_quiet_until() == 0
    r.bar("X", 2, 80, 80, 75, 75)  # equity exactly 0: halts
    (halt,) = r.of(TradingHalted)
    assert (halt.reason, halt.equity) == ("equity_zero", 0.0)
    assert [(e.quantity, e.price, e.fee) for e in r.of(Liquidation)] == [(40.0, 75.0, 0.0)]
    assert r.margin.halted
    r.hold("X", 1.0, 75.0)
    r.bar("X", 3, 10, 10, 1, 1)
    assert len(r.of(TradingHalted)) == 1
    assert r.margin.bars_quiet_until() == QUIET_FOREVER


def test_solvency_ignores_a_cash_account_and_steps_not_last() -> None:
    r = Run(cash=1_000.0, solvency=BuyingPower(AccountRules("cash"), Portfolio(1.0)))
    r.hold("X", 40.0, 100.0)
    r.bar("X", 1, 10, 10, 1, 1)  # equity far below zero, but spot on a cash account is not margined
    assert r.of(TradingHalted) == []
    assert r.margin.bars_quiet_until() == QUIET_FOREVER
    m = Run(cash=1_000.0, solvency=BuyingPower(AccountRules("margin"), Portfolio(1.0)))
    m.hold("X", 40.0, 100.0)
    m.bar("X", 1, 10, 10, 1, 1, last=False)
    assert m.of(TradingHalted) == []
    m.bar("X", 2, 10, 10, 1, 1)
    assert len(m.of(TradingHalted)) == 1
    assert m.of(TradingHalted)[0].equity == pytest.approx(1_000 - 40 * 99)


def test_no_maintenance_margin_means_no_liquidation_even_with_initial_margin() -> None:
    r = Run()
    loose = InstrumentDefinition(0, "Z", kind="perpetual", quote="USD", settle="USD", initial_margin=0.1)
    r.pf.add_instrument(loose)
    r.bus.feed(loose)
    r.hold("Z", 1.0, 100.0)
    r.bar("Z", 1, 50, 50, 1, 2)
    assert r.of(Liquidation) == []


def test_solvency_keeps_trading_with_a_little_equity_left() -> None:
    r = Run(cash=1_000.0, solvency=BuyingPower(AccountRules("margin", leverage=5.0), Portfolio(1.0)))
    r.hold("X", 40.0, 100.0)
    r.bar("X", 1, 80, 80, 75, 75.0125)  # equity 0.5
    assert r.pf.equity() == pytest.approx(0.5)
    assert r.of(TradingHalted) == []


def test_the_margin_actor_liquidates_in_the_bars_early_phase() -> None:
    # Anything handling the bar after the margin actor, early or late (strategies), sees the liquidation.
    r = Run()
    seen: list[float] = []
    r.bus.subscribe(Bar, lambda b: seen.append(r.pf.positions[("s", "P")].quantity))
    r.hold("P", 10.0, 100.0)
    r.bar("P", 1, 99, 99, 90, 92)
    assert seen == [0.0]


def test_isolated_checks_only_the_bars_instrument_and_sides() -> None:
    r = Run()
    r.hold("BTCUSD", 10.0, 40_000.0)
    r.hold("P", 0.5, 100.0)  # a small long: its liquidation price (94.74) is not reached
    r.bar("P", 1, 99, 100, 95, 99)
    assert r.of(Liquidation) == []
    r.hold("P", -1.5, 100.0)  # now short 1
    r.bar("P", 2, 99, 104.7, 98, 104)  # below the short's liquidation price (104.76)
    assert r.of(Liquidation) == []
    r.bar("P", 3, 104, 106, 103, 105)
    (liq,) = r.of(Liquidation)
    assert (liq.instrument, liq.quantity) == ("P", -1.0)
    fill = r.of(OrderFilled)[0]
    assert (fill.side, fill.exec_ts) == ("buy", 2 * H)


def test_a_long_of_one_contract_is_closed_by_a_sell() -> None:
    r = Run()
    r.hold("P", 1.0, 100.0)
    r.bar("P", 1, 80, 85, 79, 84)
    assert [(f.side, f.quantity) for f in r.of(OrderFilled)] == [("sell", 1.0)]


def test_cross_liquidation_details() -> None:
    r = Run(cash=30.0, mode="cross", fee_bps=0.0)
    r.hold("X", 2.0, 10.0)  # spot: not margined, never liquidated by the margin actor
    r.hold("P", 0.1, 100.0)  # maintenance 0.05 * 0.2 * c: under one unit
    r.bar("P", 1, 100, 100, 1, 1)  # equity 30 + 0.2 * (1 - 100) = 10.2 >= 0.01: fine
    assert r.of(Liquidation) == []
    r.pf.balances["USD"] = -20.0  # equity below the maintenance of 0.01
    r.bar("P", 2, 1, 1, 1, 1)
    assert [(e.instrument, e.quantity, e.price) for e in r.of(Liquidation)] == [("P", 0.1, 1.0)]
    assert r.of(OrderFilled)[0].exec_ts == H
    assert r.pf.positions[("s", "X")].quantity == 2.0


def test_cross_maintenance_converts_a_foreign_linear_contract() -> None:
    eth = InstrumentDefinition(
        0,
        "ETHBTC",
        kind="perpetual",
        base="ETH",
        quote="BTC",
        settle="BTC",
        initial_margin=0.1,
        maintenance_margin=0.05,
    )
    r = Run(mode="cross")
    r.pf.add_instrument(eth)
    r.bus.feed(eth)
    r.pf.rates["BTC"] = 40_000.0
    r.hold("ETHBTC", 10.0, 0.05)
    assert r.margin.maintenance() == pytest.approx(10 * 0.05 * 0.05 * 40_000)


def test_solvency_liquidates_a_position_of_exactly_one_unit() -> None:
    r = Run(cash=100.0, solvency=BuyingPower(AccountRules("margin", leverage=5.0), Portfolio(1.0)))
    r.hold("X", 1.0, 200.0)
    r.bar("X", 1, 50, 50, 40, 40)
    assert [(e.quantity, e.price) for e in r.of(Liquidation)] == [(1.0, 40.0)]


def test_cross_liquidates_a_position_of_exactly_one_contract() -> None:
    r = Run(cash=10.0, mode="cross", fee_bps=0.0)
    r.hold("P", 1.0, 100.0)  # equity 10 + 2 (c - 100); maintenance 0.1 c
    r.bar("P", 1, 100, 100, 90, 95)  # equity 0 < 9.5
    assert [(e.instrument, e.quantity, e.price) for e in r.of(Liquidation)] == [("P", 1.0, 95.0)]
