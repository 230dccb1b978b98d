"""Inverse contracts, multi-currency equity, expiry settlement, liquidation:
hand-computed cases."""

from __future__ import annotations

from typing import Any

import pytest

from tidemark.core.accounts.buying_power import AccountRules
from tidemark.core.accounts.margin import MarginActor, liquidation_price
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import Bus
from tidemark.core.engine import AccountActor
from tidemark.core.events import (
    EVENT_TYPES,
    Bar,
    Event,
    InstrumentDefinition,
    Liquidation,
    MarginCall,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from tidemark.core.execution.fees import FeeModel
from tidemark.core.execution.venue import ExecutionConfig, SimulatedVenue

H = 3_600_000_000_000
INVERSE = InstrumentDefinition(
    0, "BTCUSD", kind="perpetual", base="BTC", quote="USD", settle="BTC", inverse=True, contract_size=100.0
)


def fill(side: str, qty: float, price: float, fee: float = 0.0, instrument: str = "BTCUSD") -> OrderFilled:
    return OrderFilled(1, "s", "o", "f", instrument, side, qty, price, 1, 0.0, "taker", fee)


def test_inverse_pnl_uses_the_mean_of_inverse_prices() -> None:
    pf = Portfolio(0.0, "USD")
    pf.add_instrument(INVERSE)
    pf.apply_fill(fill("buy", 10, 40_000))
    pf.apply_fill(fill("buy", 10, 50_000))
    pos = pf.positions[("s", "BTCUSD")]
    assert pos.avg_inverse == pytest.approx((10 / 40_000 + 10 / 50_000) / 20)
    change = pf.apply_fill(fill("sell", 20, 60_000))
    by_lot = 10 * 100 * (1 / 40_000 - 1 / 60_000) + 10 * 100 * (1 / 50_000 - 1 / 60_000)
    assert change.realized == pytest.approx(by_lot, rel=1e-12)
    assert pf.balances["BTC"] == pytest.approx(by_lot, rel=1e-12)


def test_inverse_partial_close_and_flip() -> None:
    pf = Portfolio(0.0, "USD")
    pf.add_instrument(INVERSE)
    pf.apply_fill(fill("sell", 30, 50_000))  # short 30 contracts = 3,000 USD
    first = pf.apply_fill(fill("buy", 10, 40_000))
    assert first.realized == pytest.approx(-10 * 100 * (1 / 50_000 - 1 / 40_000))
    second = pf.apply_fill(fill("buy", 50, 45_000))  # closes 20, opens 30 long at 45,000
    assert second.realized == pytest.approx(-20 * 100 * (1 / 50_000 - 1 / 45_000))
    pos = pf.positions[("s", "BTCUSD")]
    assert (pos.quantity, pos.avg_price) == (30, pytest.approx(45_000))


def test_inverse_fees_are_charged_in_the_coin() -> None:
    fee, model = FeeModel(taker_bps=5.0).fee(INVERSE, 20, 60_000.0, maker=False)
    assert fee == pytest.approx(20 * 100 * 5e-4 / 60_000)
    assert model == "bps"


def test_equity_converts_the_coin_at_the_instruments_price() -> None:
    pf = Portfolio(10_000.0, "USD")
    pf.add_instrument(INVERSE)
    bus = Bus()
    bus.add(AccountActor(pf, RiskEngine(RiskLimits(), pf), 86_400 * 10**9))
    pf.apply_fill(fill("buy", 100, 40_000, fee=0.0001))  # 10,000 USD of contracts
    bus.feed(Bar(H, "BTCUSD", 44_000, 44_000, 44_000, 44_000, 1, H))
    unrealized_btc = 100 * 100 * (1 / 40_000 - 1 / 44_000)
    assert pf.rates["BTC"] == 44_000
    assert pf.equity() == pytest.approx(10_000 + (unrealized_btc - 0.0001) * 44_000)
    snap = pf.snapshot(0)
    assert snap.equity == pytest.approx(10_000 + snap.realized + snap.unrealized - snap.fees + snap.funding)


def harness(*instruments: InstrumentDefinition, margin: bool = False) -> tuple[Bus, Portfolio, list[Event]]:
    pf = Portfolio(100_000.0)
    bus = Bus()
    bus.add(SimulatedVenue(pf, RiskEngine(RiskLimits(), pf), ExecutionConfig()))
    bus.add(AccountActor(pf, RiskEngine(RiskLimits(), pf), 86_400 * 10**9))
    if margin:
        bus.add(MarginActor(pf, fee_bps=50.0))
    seen: list[Event] = []
    for cls in EVENT_TYPES:
        bus.subscribe(cls, seen.append)
    for inst in instruments:
        bus.feed(inst)
    return bus, pf, seen


def of(seen: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in seen if isinstance(e, cls)]


def test_dated_future_settles_at_expiry_and_refuses_later_orders() -> None:
    future = InstrumentDefinition(0, "BTC-Q", kind="future", quote="USD", settle="USD", expiry=3 * H)
    bus, pf, seen = harness(future)
    bus.feed(Bar(1 * H, "BTC-Q", 100, 100, 100, 100, 1, H))
    bus.publish(SubmitOrder(bus.now(), "s", "o1", "BTC-Q", "buy", 2))
    bus.publish(SubmitOrder(bus.now(), "s", "o2", "BTC-Q", "buy", 1, order_type="limit", price=50.0))
    bus.feed(Bar(2 * H, "BTC-Q", 101, 102, 100, 101, 1, H))
    bus.feed(Bar(3 * H, "BTC-Q", 101, 110, 100, 108, 1, H))  # ends exactly at expiry: settles at 108
    settlement = [f for f in of(seen, OrderFilled) if f.liquidity == "settlement"]
    assert [(f.side, f.quantity, f.price, f.exec_ts) for f in settlement] == [("sell", 2.0, 108.0, 3 * H)]
    assert pf.positions[("s", "BTC-Q")].quantity == 0.0
    assert pf.total.realized == pytest.approx(2 * (108 - 101))
    assert [c.reason for c in of(seen, OrderCanceled)] == ["instrument_expired"]
    bus.feed(Bar(4 * H, "BTC-Q", 108, 108, 108, 108, 1, H))
    bus.publish(SubmitOrder(bus.now(), "s", "o3", "BTC-Q", "buy", 1))
    assert [r.reason for r in of(seen, OrderRejected)] == ["instrument_expired"]
    assert len(settlement) == 1


@pytest.mark.parametrize(
    ("inverse", "quantity", "entry", "expected"),
    [
        (False, 1.0, 100.0, 100 * 0.9 / 0.95),
        (False, -1.0, 100.0, 100 * 1.1 / 1.05),
        (True, 10.0, 40_000.0, 40_000 * 1.05 / 1.1),
        (True, -10.0, 40_000.0, 40_000 * 0.95 / 0.9),
    ],
)
def test_liquidation_price_is_where_equity_meets_maintenance(
    inverse: bool, quantity: float, entry: float, expected: float
) -> None:
    inst = InstrumentDefinition(
        0, "P", inverse=inverse, contract_size=100.0 if inverse else 1.0, initial_margin=0.1, maintenance_margin=0.05
    )
    price = liquidation_price(inst, quantity, entry)
    assert price == pytest.approx(expected)
    size = abs(quantity)
    if inverse:
        margin = size * 100 / entry * 0.1
        pnl = quantity * 100 * (1 / entry - 1 / price)
        maintenance = size * 100 / price * 0.05
    else:
        margin = size * entry * 0.1
        pnl = quantity * (price - entry)
        maintenance = size * price * 0.05
    assert margin + pnl == pytest.approx(maintenance)


def test_a_leveraged_position_is_liquidated_exactly_once_at_the_documented_price() -> None:
    perp = InstrumentDefinition(
        0, "ETH-PERP", kind="perpetual", quote="USD", settle="USD", initial_margin=0.1, maintenance_margin=0.05
    )
    bus, pf, seen = harness(perp, margin=True)
    bus.feed(Bar(1 * H, "ETH-PERP", 100, 100, 100, 100, 1, H))
    bus.publish(SubmitOrder(bus.now(), "s", "o1", "ETH-PERP", "buy", 10))
    bus.feed(Bar(2 * H, "ETH-PERP", 100, 101, 96, 97, 1, H))  # fills at 100; low 96 > liq 94.74
    assert of(seen, Liquidation) == []
    assert pf.margin() == pytest.approx(10 * 97 * 0.1)  # initial margin on the marked notional
    bus.feed(Bar(3 * H, "ETH-PERP", 97, 98, 93, 95, 1, H))  # trades through 94.74
    bus.feed(Bar(4 * H, "ETH-PERP", 95, 95, 80, 85, 1, H))
    liq = 100 * 0.9 / 0.95
    assert [(e.quantity, e.price) for e in of(seen, Liquidation)] == [(10.0, pytest.approx(liq))]
    assert len(of(seen, MarginCall)) == 1
    closing = [f for f in of(seen, OrderFilled) if f.liquidity == "liquidation"]
    assert [(f.side, f.quantity) for f in closing] == [("sell", 10.0)]
    assert closing[0].fee == pytest.approx(10 * liq * 0.005)
    assert pf.positions[("s", "ETH-PERP")].quantity == 0.0
    assert pf.balance() == pytest.approx(100_000 + 10 * (liq - 100) - 10 * liq * 0.005)


def test_cross_margin_liquidates_the_book_when_equity_falls_below_total_maintenance() -> None:
    a = InstrumentDefinition(
        0, "A", kind="perpetual", quote="USD", settle="USD", initial_margin=0.1, maintenance_margin=0.05
    )
    b = InstrumentDefinition(
        0, "B", kind="perpetual", quote="USD", settle="USD", initial_margin=0.1, maintenance_margin=0.05
    )
    pf = Portfolio(10_000.0)
    bus = Bus()
    # The book is all the account's initial margin (10x): admission would refuse the second
    # fill once the first marks down; this test is about liquidation, so nothing is refused.
    unchecked = ExecutionConfig(account=AccountRules("unchecked"))
    bus.add(SimulatedVenue(pf, RiskEngine(RiskLimits(), pf), unchecked))
    bus.add(AccountActor(pf, RiskEngine(RiskLimits(), pf), 86_400 * 10**9))
    margin = bus.add(MarginActor(pf, fee_bps=50.0, mode="cross"))
    seen: list[Event] = []
    bus.subscribe(Liquidation, seen.append)
    for inst in (a, b):
        bus.feed(inst)
    bus.feed(Bar(H, "A", 100, 100, 100, 100, 1, H, last=False))
    bus.feed(Bar(H, "B", 100, 100, 100, 100, 1, H))
    bus.publish(SubmitOrder(bus.now(), "s", "a1", "A", "buy", 500))  # 50,000 notional each: 10x the account
    bus.publish(SubmitOrder(bus.now(), "s", "b1", "B", "buy", 500))
    bus.feed(Bar(2 * H, "A", 100, 100, 99, 99.5, 1, H, last=False))
    bus.feed(Bar(2 * H, "B", 100, 100, 99, 99.5, 1, H))
    # equity 10,000 - 2 * 250 = 9,500 >= maintenance 2 * 500 * 99.5 * 0.05 = 4,975
    assert seen == []
    bus.feed(Bar(3 * H, "A", 99.5, 99.5, 91, 91, 1, H, last=False))  # cross: judged on the account at the close
    bus.feed(Bar(3 * H, "B", 99.5, 99.5, 98, 98, 1, H))
    # equity 10,000 - 4,500 - 1,000 = 4,500 < maintenance (45,500 + 49,000) * 0.05 = 4,725
    assert sorted((e.instrument, e.price) for e in seen) == [("A", 91.0), ("B", 98.0)]
    assert margin.maintenance() == 0.0
    assert pf.balance() == pytest.approx(10_000 - 4_500 - 1_000 - (500 * 91 + 500 * 98) * 0.005)
