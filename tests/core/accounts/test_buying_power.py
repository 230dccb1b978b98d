"""Buying power: a cash account never spends cash it does not have nor sells
what it does not hold; margin checks initial margin against equity; both at
submission (with working orders' claims) and at the fill. Hand-computed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tidemark.core.accounts.buying_power import AccountRules, opening_part
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import Bus
from tidemark.core.events import (
    EVENT_TYPES,
    Bar,
    Event,
    InstrumentDefinition,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from tidemark.core.execution.fees import FeeModel
from tidemark.core.execution.slippage import SlippageModel
from tidemark.core.execution.venue import ExecutionConfig, SimulatedVenue
from tidemark.core.instruments import spot

H = 3_600_000_000_000


@dataclass
class Account:
    bus: Bus
    venue: SimulatedVenue
    portfolio: Portfolio
    events: list[Event] = field(default_factory=list)
    n: int = 0

    def bar(self, o: float, h: float | None = None, lo: float | None = None, c: float | None = None) -> None:
        self.n += 1
        c = o if c is None else c
        self.bus.feed(Bar(self.n * H, "X", o, h or max(o, c), lo or min(o, c), c, 1e9, H))

    def send(self, side: str, qty: float, **kw: Any) -> str:
        oid = f"o{sum(isinstance(e, SubmitOrder) for e in self.events) + 1}"
        self.bus.publish(
            SubmitOrder(self.bus.now(), kw.pop("strategy", "s"), oid, kw.pop("symbol", "X"), side, qty, **kw)
        )
        return oid

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def reasons(self) -> list[tuple[str, str]]:
        refused = [(e.order_id, e.reason) for e in self.of(OrderRejected)]
        return refused + [(e.order_id, e.reason) for e in self.of(OrderCanceled)]


def account(
    rules: AccountRules,
    cash: float = 1_000.0,
    *,
    instrument: InstrumentDefinition | None = None,
    taker_bps: float | None = None,
    slippage_bps: float = 0.0,
) -> Account:
    portfolio = Portfolio(cash)
    portfolio.add_instrument(instrument or spot("X"))
    config = ExecutionConfig(
        fees=FeeModel(maker_bps=taker_bps, taker_bps=taker_bps),
        slippage=SlippageModel("fixed_bps", bps=slippage_bps),
        account=rules,
    )
    venue = SimulatedVenue(portfolio, RiskEngine(RiskLimits(), portfolio), config)
    bus = Bus()
    bus.add(venue)
    acct = Account(bus, venue, portfolio)
    for cls in EVENT_TYPES:
        bus.subscribe(cls, acct.events.append)
    bus.subscribe(Bar, lambda b: portfolio.marks.__setitem__(b.instrument, b.close))
    return acct


CASH = AccountRules("cash")


@pytest.mark.parametrize(
    ("held", "side", "qty", "opening"),
    [
        (0, "buy", 2, 2),
        (-1.5, "buy", 2, 0.5),
        (-3, "buy", 2, 0),
        (1, "sell", 2, 1),
        (5, "sell", 2, 0),
        (-1, "sell", 2, 2),
    ],
)
def test_opening_part_is_what_adds_to_the_position(held: float, side: str, qty: float, opening: float) -> None:
    assert opening_part(held, side, qty) == opening


def test_a_buy_needs_the_cash_for_notional_fee_and_slippage() -> None:
    # 1,000 cash; a buy of 9.9 at 100 with 4 bps fee and 5 bps slippage needs
    # 9.9 * 100.05 = 990.495 plus 990.495 * 0.0004 = 0.396198 -> 990.891198: fits.
    # 10 units need 1000.5 + 0.4002: refused at submission.
    a = account(CASH, taker_bps=4, slippage_bps=5)
    a.bar(100)
    a.send("buy", 10)
    a.send("buy", 9.9)
    a.bar(100)
    assert a.reasons() == [("o1", "insufficient_cash")]
    (fill,) = a.of(OrderFilled)
    assert fill.quantity == 9.9 and fill.price == pytest.approx(100.05)
    assert a.portfolio.cash() == pytest.approx(1_000 - 990.495 - 990.495 * 0.0004)
    refusal = a.of(OrderRejected)[0]
    assert refusal.detail == "needs 1,000.90 USD, free cash 1,000.00 USD"


def test_working_orders_hold_their_cash() -> None:
    a = account(CASH)
    a.bar(100)
    a.send("buy", 6, order_type="limit", price=90)  # claims 540
    a.send("buy", 5, order_type="limit", price=95)  # 475 > 1000 - 540: refused
    a.send("buy", 4, order_type="limit", price=95)  # 380 fits
    assert a.reasons() == [("o2", "insufficient_cash")]
    assert [e.order_id for e in a.of(OrderAccepted)] == ["o1", "o3"]


def test_a_fill_the_cash_cannot_pay_cancels_the_order_and_cash_never_goes_negative() -> None:
    # Accepted at the last close (100 * 9 = 900 <= 1000), the next bar opens
    # at 120: 1080 > 1000, so the fill is refused and the order canceled.
    a = account(CASH)
    a.bar(100)
    a.send("buy", 9)
    a.bar(120)
    assert not a.of(OrderFilled)
    (cancel,) = a.of(OrderCanceled)
    assert (cancel.order_id, cancel.reason, cancel.leaves) == ("o1", "insufficient_cash", 9)
    assert a.portfolio.cash() == 1_000


def test_a_cash_account_sells_only_what_the_strategy_holds() -> None:
    a = account(CASH)
    a.bar(100)
    a.send("buy", 5)
    a.bar(100)
    a.send("sell", 6)  # 1 more than held: no naked spot short
    a.send("sell", 5, strategy="other")  # another strategy holds nothing
    a.send("sell", 5)
    a.bar(100)
    assert a.reasons() == [("o2", "no_borrow"), ("o3", "no_borrow")]
    assert [f.order_id for f in a.of(OrderFilled)] == ["o1", "o4"]
    assert a.portfolio.positions[("s", "X")].quantity == 0


def test_a_working_sell_holds_the_asset() -> None:
    a = account(CASH)
    a.bar(100)
    a.send("buy", 5)
    a.bar(100)
    a.send("sell", 5, order_type="limit", price=150)
    a.send("sell", 1, order_type="limit", price=160)  # the first sell already takes all 5
    assert a.reasons() == [("o3", "no_borrow")]


def test_reduce_only_orders_are_never_refused() -> None:
    a = account(CASH, cash=100.0)
    a.bar(100)
    a.send("sell", 1, reduce_only=True)  # nothing to reduce: canceled by the venue, not refused
    a.bar(100)
    assert a.reasons() == [("o1", "reduce_only")]


def test_margin_account_levers_spot_and_shorts_only_with_borrowing() -> None:
    lever = AccountRules("margin", leverage=4.0)
    a = account(lever)
    a.bar(100)
    a.send("buy", 40)  # 4,000 notional: 1,000 margin at 4x fits
    a.send("buy", 1)  # 25 more margin: 1,025 > 1,000
    a.send("sell", 1, strategy="short")  # no borrowing
    assert a.reasons() == [("o2", "insufficient_margin"), ("o3", "no_borrow")]
    b = account(AccountRules("margin", leverage=2.0, borrow=True))
    b.bar(100)
    b.send("sell", 20)  # short 2,000 notional: 1,000 margin at 2x
    b.bar(100)
    assert b.portfolio.positions[("s", "X")].quantity == -20


def test_derivative_margin_counts_positions_and_working_orders() -> None:
    perp = InstrumentDefinition(0, "X", kind="perpetual", base="X", quote="USD", settle="USD", initial_margin=0.1)
    a = account(CASH, instrument=perp)  # derivatives are margined on a cash account too
    a.bar(100)
    a.send("buy", 50)  # 5,000 notional, 500 margin
    a.bar(100)
    a.send("sell", 40, order_type="limit", price=110)  # opens a short only after closing 50: no margin
    a.send("buy", 40, order_type="limit", price=90)  # 360 margin, within 1,000 - 500
    a.send("buy", 20, order_type="limit", price=80)  # 160 more: 500 + 360 + 160 > 1,000
    assert a.reasons() == [("o4", "insufficient_margin")]


def test_equity_backs_derivative_margin_as_prices_move() -> None:
    perp = InstrumentDefinition(0, "X", kind="perpetual", base="X", quote="USD", settle="USD")
    a = account(AccountRules("margin", leverage=2.0), instrument=perp)
    a.bar(100)
    a.send("buy", 20)  # 2,000 notional, 1,000 margin at 2x: all the equity
    a.bar(100, c=90)
    # Equity 1,000 - 20 * 10 = 800; margin at the mark 20 * 90 / 2 = 900: no room.
    a.send("buy", 1)
    assert a.reasons() == [("o2", "insufficient_margin")]


def test_unchecked_accounts_spend_what_they_do_not_have() -> None:
    """Rules version 1 (earlier journals) had no account: kept for replay."""
    a = account(AccountRules("unchecked"))
    a.bar(100)
    a.send("buy", 50)
    a.send("sell", 60, strategy="other")
    a.bar(100)
    assert len(a.of(OrderFilled)) == 2
    assert a.portfolio.cash() == pytest.approx(1_000 - 5_000 + 6_000)
