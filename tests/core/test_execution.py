"""The simulated venue on bars: every rule checked against hand computation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tidemark.core.accounts.buying_power import AccountRules
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import Bus
from tidemark.core.events import (
    Bar,
    CancelOrder,
    Event,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    RiskRejected,
    SubmitOrder,
)
from tidemark.core.execution.fees import FeeModel
from tidemark.core.execution.slippage import SlippageModel
from tidemark.core.execution.venue import ExecutionConfig, SimulatedVenue
from tidemark.core.instruments import spot

H = 3_600_000_000_000  # one hour in ns


@dataclass
class Venue:
    bus: Bus
    venue: SimulatedVenue
    portfolio: Portfolio
    events: list[Event] = field(default_factory=list)
    n: int = 0

    def bar(self, o: float, h: float, lo: float, c: float, volume: float = 1_000.0) -> Bar:
        self.n += 1
        event = Bar(self.n * H, "X", o, h, lo, c, volume, H)
        self.bus.feed(event)
        return event

    def submit(self, side: str, qty: float, **kw: Any) -> str:
        oid = f"o{len([e for e in self.events if isinstance(e, SubmitOrder)]) + 1}"
        self.bus.publish(SubmitOrder(self.bus.now(), "s", oid, "X", side, qty, **kw))
        return oid

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def make(**config: Any) -> Venue:
    portfolio = Portfolio(100_000.0)
    portfolio.add_instrument(spot("X"))
    limits = config.pop("limits", RiskLimits())
    # Matching rules on both sides: a margin account that may borrow, so a stop can open a short.
    config.setdefault("account", AccountRules("margin", borrow=True))
    seed = config.pop("seed", 7)
    venue = SimulatedVenue(portfolio, RiskEngine(limits, portfolio), ExecutionConfig(**config), seed=seed)
    bus = Bus()
    bus.add(venue)
    v = Venue(bus, venue, portfolio)
    from tidemark.core.events import EVENT_TYPES

    for cls in EVENT_TYPES:
        bus.subscribe(cls, v.events.append)
    bus.subscribe(Bar, lambda b: portfolio.marks.__setitem__(b.instrument, b.close))
    return v


def fills(v: Venue) -> list[tuple[str, float, float, int]]:
    return [(f.order_id, f.quantity, f.price, f.exec_ts) for f in v.of(OrderFilled)]


def test_market_order_fills_at_the_next_open() -> None:
    v = make()
    v.bar(100, 101, 99, 100)
    v.submit("buy", 2)
    assert fills(v) == []
    v.bar(102, 103, 101, 102)
    assert fills(v) == [("o1", 2.0, 102.0, 1 * H)]  # exec time = bar 2's open
    assert v.portfolio.positions[("s", "X")].quantity == 2.0


def test_close_fill_model_fills_at_the_current_close() -> None:
    v = make(fill="close")
    v.bar(100, 101, 99, 100.5)
    v.submit("buy", 1)
    assert fills(v) == [("o1", 1.0, 100.5, 1 * H)]


def test_latency_in_bars_delays_matching() -> None:
    v = make(latency_bars=2)
    v.bar(100, 101, 99, 100)
    v.submit("buy", 1)
    v.bar(101, 102, 100, 101)
    v.bar(102, 103, 101, 102)
    assert fills(v) == []
    v.bar(103, 104, 102, 103)
    assert fills(v) == [("o1", 1.0, 103.0, 3 * H)]


@pytest.mark.parametrize(
    ("bar", "expected"),
    [
        ((98, 99, 97, 98), 98.0),  # opens below the limit: gap fills at the open
        ((101, 102, 99, 101), 99.5),  # trades down through it: fills at the limit
        ((101, 102, 99.6, 101), None),  # never reaches it
    ],
)
def test_buy_limit(bar: tuple[float, float, float, float], expected: float | None) -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, order_type="limit", price=99.5)
    v.bar(*bar)
    assert [f[2] for f in fills(v)] == ([expected] if expected is not None else [])


@pytest.mark.parametrize(
    ("bar", "expected"),
    [
        ((94, 96, 93, 95), 94.0),  # gap below the stop: fills at the open
        ((99, 100, 94, 96), 95.0),  # trades through: fills at the stop
        ((99, 100, 96, 97), None),
    ],
)
def test_sell_stop(bar: tuple[float, float, float, float], expected: float | None) -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("sell", 1, order_type="stop", trigger_price=95.0)
    v.bar(*bar)
    assert [f[2] for f in fills(v)] == ([expected] if expected is not None else [])
    assert len(v.of(OrderTriggered)) == (1 if expected is not None else 0)


def test_stop_limit_triggers_then_acts_as_a_limit() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, order_type="stop_limit", trigger_price=105.0, price=106.0)
    v.bar(108, 110, 107, 109)  # gaps above the limit: triggered, not filled
    assert fills(v) == [] and len(v.of(OrderTriggered)) == 1
    v.bar(107, 108, 105.5, 106)  # trades back down to 106: fills at the limit
    assert fills(v) == [("o1", 1.0, 106.0, 2 * H)]


@pytest.mark.parametrize(
    ("bar", "exit_order", "exit_price"),
    [
        ((100, 112, 90, 105), "o1.sl", 95.0),  # up bar: path O-L-H-C, the stop comes first
        ((100, 112, 90, 95), "o1.tp", 110.0),  # down bar: path O-H-L-C, the target comes first
    ],
)
def test_bracket_exit_follows_the_intrabar_path(bar: tuple[float, ...], exit_order: str, exit_price: float) -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 3, stop_loss=95.0, take_profit=110.0)
    v.bar(*bar)
    got = fills(v)
    assert got[0] == ("o1", 3.0, 100.0, 1 * H)
    assert got[1] == (exit_order, 3.0, exit_price, 1 * H)
    assert [c.reason for c in v.of(OrderCanceled)] == ["oco"]
    assert v.portfolio.positions[("s", "X")].quantity == 0.0


def test_bracket_children_wait_when_untouched_and_one_cancels_the_other() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, stop_loss=90.0, take_profit=120.0)
    v.bar(100, 101, 99, 100)
    assert len(fills(v)) == 1
    v.bar(100, 121, 99, 118)
    assert fills(v)[-1] == ("o1.tp", 1.0, 120.0, 2 * H)
    v.bar(100, 101, 80, 85)
    assert len(fills(v)) == 2  # the stop was canceled with the target's fill


def test_ioc_cancels_what_the_first_bar_cannot_fill() -> None:
    v = make(participation=0.1)
    v.bar(100, 100, 100, 100)
    v.submit("buy", 50, tif="IOC")
    v.bar(100, 101, 99, 100, volume=200)  # cap = 20
    assert fills(v) == [("o1", 20.0, 100.0, 1 * H)]
    assert [(c.reason, c.leaves) for c in v.of(OrderCanceled)] == [("ioc", 30.0)]


def test_fok_fills_all_or_nothing() -> None:
    v = make(participation=0.1)
    v.bar(100, 100, 100, 100)
    v.submit("buy", 50, tif="FOK")
    v.submit("buy", 10, tif="FOK")
    v.bar(100, 101, 99, 100, volume=200)
    assert fills(v) == [("o2", 10.0, 100.0, 1 * H)]
    assert [c.reason for c in v.of(OrderCanceled)] == ["fok"]


def test_participation_cap_gives_partial_fills_that_sum_to_the_order() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    v.submit("buy", 10)
    for price in (101, 102, 103):
        v.bar(price, price, price, price, volume=16)  # 4 per bar
    assert [(q, p) for _, q, p, _ in fills(v)] == [(4.0, 101.0), (4.0, 102.0), (2.0, 103.0)]
    assert [f.leaves for f in v.of(OrderFilled)] == [6.0, 2.0, 0.0]


def test_gtd_order_expires() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, order_type="limit", price=90.0, tif="GTD", expire_ts=2 * H)
    v.bar(100, 101, 95, 100)
    assert v.of(OrderExpired) == []
    v.bar(100, 101, 80, 100)  # opens at 2H: expired before it could fill
    assert fills(v) == [] and len(v.of(OrderExpired)) == 1


def test_orders_after_one_that_expires_or_is_canceled_are_still_matched_on_that_bar() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, order_type="limit", price=90.0, tif="GTD", expire_ts=2 * H)  # expires at bar 3
    v.submit("buy", 1, order_type="limit", price=90.0, tif="IOC")  # placed for bar 2: canceled there
    v.submit("buy", 1, order_type="limit", price=98.0)  # touched on bar 2 and on bar 3
    v.bar(100, 101, 97, 100)
    assert fills(v) == [("o3", 1.0, 98.0, 1 * H)]
    assert [(c.order_id, c.reason) for c in v.of(OrderCanceled)] == [("o2", "ioc")]
    v.submit("buy", 1, order_type="limit", price=99.0)
    v.bar(100, 101, 80, 100)  # o1 expires (opens at 2H); o4 right after it still fills
    assert [e.order_id for e in v.of(OrderExpired)] == ["o1"]
    assert fills(v)[-1] == ("o4", 1.0, 99.0, 2 * H)


def test_post_only_that_would_cross_is_rejected_and_resting_fills_as_maker() -> None:
    v = make(fees=FeeModel(maker_bps=1.0, taker_bps=5.0))
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, order_type="limit", price=101.0, post_only=True)
    assert [r.reason for r in v.of(OrderRejected)] == ["post_only_would_cross"]
    v.submit("buy", 1, order_type="limit", price=99.0, post_only=True)
    v.bar(100, 100, 98, 99)
    fill = v.of(OrderFilled)[0]
    assert (fill.liquidity, fill.price, fill.fee) == ("maker", 99.0, pytest.approx(99.0 * 1e-4))


def test_reduce_only_is_clipped_and_canceled_when_nothing_to_reduce() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("sell", 1, reduce_only=True)
    v.bar(100, 100, 100, 100)
    assert [c.reason for c in v.of(OrderCanceled)] == ["reduce_only"]
    v.submit("buy", 2)
    v.bar(100, 100, 100, 100)
    v.submit("sell", 5, reduce_only=True)
    v.bar(100, 100, 100, 100)
    assert [q for _, q, _, _ in fills(v)] == [2.0, 2.0]
    assert v.portfolio.positions[("s", "X")].quantity == 0.0


def test_fees_and_slippage_are_charged_and_recorded() -> None:
    v = make(
        slippage=SlippageModel("fixed_bps", bps=10.0),
        fees=FeeModel(maker_bps=2.0, taker_bps=5.0, per_contract=0.01, fixed=1.0),
    )
    v.bar(100, 100, 100, 100)
    v.submit("buy", 10)
    v.bar(200, 200, 200, 200)
    fill = v.of(OrderFilled)[0]
    assert fill.price == pytest.approx(200.2)
    assert fill.slippage == pytest.approx(0.2)
    assert fill.fee == pytest.approx(10 * 200.2 * 5e-4 + 10 * 0.01 + 1.0)
    assert (fill.slippage_model, fill.fee_model, fill.liquidity) == ("fixed_bps", "bps+per_contract+fixed", "taker")


def test_atr_slippage_falls_back_to_fixed_bps_until_warm() -> None:
    v = make(slippage=SlippageModel("atr", bps=10.0, atr_k=0.5), atr_period=3)
    v.bar(100, 102, 98, 100)
    v.submit("buy", 1)
    v.bar(100, 102, 98, 100)
    v.submit("sell", 1)
    v.bar(100, 102, 98, 100)
    first, second = v.of(OrderFilled)
    assert first.slippage_model == "atr>fixed_bps" and first.price == pytest.approx(100.1)
    assert second.slippage_model == "atr" and second.price == pytest.approx(100 - 0.5 * 4.0)


def test_cancel_and_unknown_cancel() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    oid = v.submit("buy", 1, order_type="limit", price=50.0)
    v.bus.publish(CancelOrder(v.bus.now(), "s", oid))
    v.bus.publish(CancelOrder(v.bus.now(), "s", "nope"))
    v.bar(40, 41, 39, 40)
    assert fills(v) == []
    assert [c.reason for c in v.of(OrderCanceled)] == ["user"]
    assert [r.reason for r in v.of(OrderRejected)] == ["cancel_not_working"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"order_type": "limit"}, "missing_limit_price"),
        ({"order_type": "stop"}, "missing_trigger_price"),
        ({"tif": "DAY"}, "bad_tif"),
        ({"order_type": "iceberg"}, "bad_order_type"),
    ],
)
def test_malformed_orders_are_rejected(kwargs: dict[str, Any], reason: str) -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.submit("buy", 1, **kwargs)
    assert [r.reason for r in v.of(OrderRejected)] == [reason]


def test_fill_probability_is_seeded() -> None:
    def run(seed: int) -> list[tuple[str, float, float, int]]:
        portfolio = Portfolio(1e9)
        portfolio.add_instrument(spot("X"))
        venue = SimulatedVenue(
            portfolio, RiskEngine(RiskLimits(), portfolio), ExecutionConfig(fill_probability=0.5), seed=seed
        )
        bus = Bus()
        bus.add(venue)
        got: list[OrderFilled] = []
        bus.subscribe(OrderFilled, got.append)
        for k in range(1, 60):
            bus.feed(Bar(k * H, "X", 100, 101, 99, 100, 1e6, H))
            bus.publish(SubmitOrder(bus.now(), "s", f"o{k}", "X", "buy", 1, order_type="limit", price=99.5, tif="IOC"))
        return [(f.order_id, f.quantity, f.price, f.exec_ts) for f in got]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert 10 < len(run(1)) < 50


def test_risk_refusal_is_an_event_with_a_reason() -> None:
    v = make(limits=RiskLimits(max_gross_exposure=0.5))
    v.bar(100, 100, 100, 100)
    v.submit("buy", 400)  # 40,000 of 100,000 equity: fine
    v.submit("buy", 200)  # 60,000 > 50% of equity once the first fills
    v.bar(100, 100, 100, 100)
    v.submit("buy", 200)
    assert [r.reason for r in v.of(RiskRejected)] == ["max_gross_exposure"]
