"""The bar venue, hand-computed (issue 25, themes 4-7): brackets on both
sides and in parts, stop-limits, partly filled stops, close-timed fills under
participation, admission, and fill probability other than one half."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.test_execution import H, Venue, make
from tidemark.core.accounts.buying_power import AccountRules
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import NEEDS_EVERY_BAR, QUIET_FOREVER, Bus
from tidemark.core.events import (
    Bar,
    CancelOrder,
    InstrumentDefinition,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    RiskRejected,
    SubmitBracketOrder,
    SubmitOrder,
    TradingHalted,
)
from tidemark.core.execution.fees import FeeModel
from tidemark.core.execution.slippage import SlippageModel
from tidemark.core.execution.venue import ExecutionConfig, SimulatedVenue, touch_time, touch_time_after
from tidemark.core.ids import rng
from tidemark.core.instruments import spot


def send(v: Venue, oid: str, side: str, qty: float, **kw: Any) -> None:
    v.bus.publish(SubmitOrder(v.bus.now(), "s", oid, "X", side, qty, **kw))


def got(v: Venue) -> list[tuple[str, str, float, float, str]]:
    return [(f.order_id, f.side, f.quantity, f.price, f.liquidity) for f in v.of(OrderFilled)]


def state(v: Venue, oid: str) -> str:
    return v.venue.orders[oid].state


# -- brackets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bar", "exit_order", "exit_price"),
    [
        ((100, 106, 88, 104), "b.tp", 90.0),  # up bar: O-L-H-C reaches the target (below) first
        ((100, 106, 88, 95), "b.sl", 105.0),  # down bar: O-H-L-C reaches the stop (above) first
    ],
)
def test_short_bracket_exits_by_the_path(bar: tuple[float, ...], exit_order: str, exit_price: float) -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "b", "sell", 3, stop_loss=105.0, take_profit=90.0)
    v.bar(*bar)
    liquidity = "maker" if exit_order == "b.tp" else "taker"
    assert got(v) == [("b", "sell", 3.0, 100.0, "taker"), (exit_order, "buy", 3.0, exit_price, liquidity)]
    assert [(c.order_id, c.reason) for c in v.of(OrderCanceled)] == [
        ("b.sl" if exit_order == "b.tp" else "b.tp", "oco")
    ]
    assert v.portfolio.positions[("s", "X")].quantity == 0.0
    children = [e for e in v.of(SubmitOrder) if e.parent_id == "b"]
    assert [(c.order_id, c.side, c.order_type, c.price, c.trigger_price, c.reduce_only) for c in children] == [
        ("b.sl", "buy", "stop", 0.0, 105.0, True),
        ("b.tp", "buy", "limit", 90.0, 0.0, True),
    ]


def test_children_grow_with_each_partial_fill_of_the_parent() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 5, stop_loss=90.0, take_profit=120.0)
    sizes = []
    for _ in range(3):
        v.bar(100, 101, 99, 100, volume=8)  # 2 per bar
        sizes.append((v.venue.orders["b"].filled, v.venue.orders["b.sl"].quantity, v.venue.orders["b.tp"].quantity))
    assert sizes == [(2.0, 2.0, 2.0), (4.0, 4.0, 4.0), (5.0, 5.0, 5.0)]
    assert state(v, "b") == "filled" and state(v, "b.sl") == "accepted"


def test_a_partial_exit_shrinks_its_sibling_instead_of_canceling_it() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 4, stop_loss=90.0, take_profit=120.0)
    v.bar(100, 101, 99, 100, volume=16)  # parent fills 4
    v.bar(110, 121, 109, 115, volume=8)  # target touched; 2 of 4 fill
    assert got(v)[-1] == ("b.tp", "sell", 2.0, 120.0, "maker")
    assert v.venue.orders["b.sl"].quantity == 2.0 and state(v, "b.sl") == "accepted"
    assert state(v, "b.tp") == "partially_filled"
    assert v.of(OrderCanceled) == []
    v.bar(100, 101, 85, 88, volume=400)  # the stop takes the remaining 2; the target is canceled
    assert got(v)[-1] == ("b.sl", "sell", 2.0, 90.0, "taker")
    assert [(c.order_id, c.reason, c.leaves) for c in v.of(OrderCanceled)] == [("b.tp", "oco", 0.0)]
    assert v.portfolio.positions[("s", "X")].quantity == 0.0


def test_bracket_exits_capped_by_their_own_sizes() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    v.bus.publish(
        SubmitBracketOrder(
            v.bus.now(), "s", "b", "X", "buy", 4, stop_loss=90.0, take_profit=110.0, take_profit_quantity=1.0
        )
    )
    v.bar(100, 101, 99, 100)
    assert (v.venue.orders["b.tp"].quantity, v.venue.orders["b.sl"].quantity) == (1.0, 4.0)
    v.bar(100, 111, 99, 105)
    assert got(v)[-1] == ("b.tp", "sell", 1.0, 110.0, "maker")
    assert v.venue.orders["b.sl"].quantity == 3.0 and v.venue.orders["b.sl"].active


# -- stop-limits ------------------------------------------------------------------------


def test_stop_limit_triggered_on_one_bar_fills_on_a_later_bar_as_a_maker_limit() -> None:
    v = make(fees=FeeModel(maker_bps=1.0, taker_bps=5.0), slippage=SlippageModel("fixed_bps", bps=10.0))
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 1, order_type="stop_limit", trigger_price=105.0, price=106.0)
    v.bar(108, 110, 107, 109)  # gaps over the limit: triggered only
    assert got(v) == [] and state(v, "o") == "triggered"
    assert [(t.order_id, t.trigger_price) for t in v.of(OrderTriggered)] == [("o", 105.0)]
    v.bar(108, 109, 106.5, 108)  # stays above the limit: nothing
    assert got(v) == []
    v.bar(107, 108, 104, 105)  # trades down through 106: the limit fills at 106, no slippage, maker fee
    fill = v.of(OrderFilled)[0]
    assert (fill.price, fill.liquidity, fill.slippage) == (106.0, "maker", 0.0)
    assert fill.fee == pytest.approx(106.0 * 1e-4)
    assert len(v.of(OrderTriggered)) == 1  # triggered once
    assert state(v, "o") == "filled"


def test_triggered_stop_limit_on_a_bar_opening_through_its_limit_fills_at_the_open() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 1, order_type="stop_limit", trigger_price=105.0, price=106.0)
    v.bar(108, 110, 107, 109)
    v.bar(104, 105, 103, 104)
    assert got(v) == [("o", "buy", 1.0, 104.0, "maker")]


def test_stop_limit_marketable_at_the_trigger_is_a_taker_fill_at_the_trigger() -> None:
    v = make(slippage=SlippageModel("fixed_bps", bps=10.0))
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 2, order_type="stop_limit", trigger_price=95.0, price=94.0)
    v.bar(99, 100, 93, 96)  # O-H-L-C; reaches 95 going down
    fill = v.of(OrderFilled)[0]
    assert (fill.side, fill.price, fill.liquidity) == ("sell", pytest.approx(95.0 * (1 - 0.001)), "taker")


def test_sell_stop_limit_gap_below_the_limit_triggers_without_filling() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 1, order_type="stop_limit", trigger_price=95.0, price=94.0)
    v.bar(92, 93, 90, 91)  # opens below the limit
    assert got(v) == [] and state(v, "o") == "triggered"
    v.bar(93, 95, 92, 94.5)  # back up to 94: fills at the limit
    assert got(v) == [("o", "sell", 1.0, 94.0, "maker")]


def test_sell_stop_limit_whose_limit_was_touched_before_the_trigger_fills_when_price_returns() -> None:
    # Sell stop 95, limit 96 (above the trigger). The bar opens at 99 (above 96), falls through
    # 95 to 93 and closes at 96.5: after the trigger price comes back up to 96, so the limit fills.
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 1, order_type="stop_limit", trigger_price=95.0, price=96.0)
    v.bar(99, 100, 93, 96.5)
    assert got(v) == [("o", "sell", 1.0, 96.0, "maker")]


def test_buy_stop_limit_whose_limit_was_touched_before_the_trigger_fills_after_it() -> None:
    # Buy stop 105, limit 104. O-H-L-C: 103 (at or below the limit already) -> 107 (triggers at
    # 105) -> 100 (back through 104 after the trigger) -> 102.
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 1, order_type="stop_limit", trigger_price=105.0, price=104.0)
    v.bar(103, 107, 100, 102)
    assert got(v) == [("o", "buy", 1.0, 104.0, "maker")]


def test_stop_limit_whose_limit_is_only_touched_before_the_trigger_does_not_fill() -> None:
    # O-L-H-C: 103 -> 101 -> 107 -> 106: at or below 104 only before the trigger.
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 1, order_type="stop_limit", trigger_price=105.0, price=104.0)
    v.bar(103, 107, 101, 106)
    assert got(v) == [] and state(v, "o") == "triggered"


def test_legacy_rules_looked_only_at_the_first_touch_of_the_limit() -> None:
    v = make(rules=1)
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 1, order_type="stop_limit", trigger_price=105.0, price=104.0)
    v.bar(103, 107, 100, 102)
    assert got(v) == []


def test_touch_time_after() -> None:
    path = (103.0, 107.0, 100.0, 102.0)
    assert touch_time(path, 104.0, upward=False) == 0.0
    assert touch_time(path, 105.0, upward=True) == 0.5
    assert touch_time_after(path, 104.0, False, 0.5) == pytest.approx(1 + 3 / 7)
    assert touch_time_after(path, 101.0, True, 2.0) == 2.5  # from the low (100) rising to 102
    assert touch_time_after(path, 106.0, True, 1.5) is None
    assert touch_time_after(path, 103.5, True, 0.5) == 0.5  # already above at the start point
    assert touch_time_after(path, 101.0, False, 1.0) == pytest.approx(1 + 6 / 7)
    assert touch_time_after(path, 101.0, True, 2.2) == pytest.approx(2.5)
    assert touch_time_after((100.0, 100.0, 100.0, 100.0), 100.0, True, 3.0) == 3.0


# -- a stop partly filled (participation) ---------------------------------------------------


def test_a_partly_filled_stop_fills_its_rest_at_later_opens_even_after_price_recovers() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 10, order_type="stop", trigger_price=95.0)
    v.bar(99, 100, 94, 96, volume=16)  # triggers at 95: 4 fill
    v.bar(98, 99, 97, 98, volume=16)  # recovered above the stop: still a market order now
    v.bar(97, 99, 96, 98, volume=16)
    assert [(q, p) for _, _, q, p, _ in got(v)] == [(4.0, 95.0), (4.0, 98.0), (2.0, 97.0)]
    assert state(v, "o") == "filled" and len(v.of(OrderTriggered)) == 1


def test_a_stop_triggered_with_no_budget_left_fills_at_the_next_open() -> None:
    v = make(participation=0.5)
    v.bar(100, 100, 100, 100)
    send(v, "a", "sell", 2)  # takes the whole budget of the next bar at its open
    send(v, "o", "sell", 3, order_type="stop", trigger_price=95.0)
    v.bar(99, 100, 94, 96, volume=4)
    assert got(v) == [("a", "sell", 2.0, 99.0, "taker")] and state(v, "o") == "triggered"
    v.bar(97, 99, 96, 98, volume=100)
    assert got(v)[-1] == ("o", "sell", 3.0, 97.0, "taker")


def test_legacy_rules_keep_a_partly_filled_stop_waiting_for_its_trigger() -> None:
    v = make(participation=0.25, rules=1)
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 10, order_type="stop", trigger_price=95.0)
    v.bar(99, 100, 94, 96, volume=16)
    v.bar(98, 99, 97, 98, volume=16)
    assert [(q, p) for _, _, q, p, _ in got(v)] == [(4.0, 95.0)]


# -- close-timed fills under participation -----------------------------------------------------


def test_close_fills_take_only_the_participation_budget_and_the_rest_works() -> None:
    v = make(fill="close", participation=0.1)
    v.bar(100, 101, 99, 100.5, volume=50)  # budget 5
    send(v, "o", "buy", 8)
    assert got(v) == [("o", "buy", 5.0, 100.5, "taker")]
    assert state(v, "o") == "partially_filled"
    v.bar(101, 102, 100, 101, volume=20)  # the rest (3) at the next open, budget 2
    v.bar(102, 103, 101, 102, volume=20)
    assert [(q, p) for _, _, q, p, _ in got(v)] == [(5.0, 100.5), (2.0, 101.0), (1.0, 102.0)]


def test_close_fill_budget_is_shared_with_the_bars_earlier_fills() -> None:
    v = make(fill="close", participation=0.1)
    v.bar(100, 100, 100, 100)
    send(v, "l", "buy", 3, order_type="limit", price=99.0)
    v.bar(100, 101, 98, 100, volume=50)  # the limit takes 3 of the 5
    send(v, "o", "buy", 8, tif="IOC")
    assert [(oid, q) for oid, _, q, _, _ in got(v)] == [("l", 3.0), ("o", 2.0)]
    assert [(c.order_id, c.reason, c.leaves) for c in v.of(OrderCanceled)] == [("o", "ioc", 6.0)]


def test_fok_at_the_close_beyond_the_budget_fills_nothing() -> None:
    v = make(fill="close", participation=0.1)
    v.bar(100, 101, 99, 100, volume=50)
    send(v, "f", "buy", 6, tif="FOK")
    send(v, "g", "buy", 5, tif="FOK")
    assert got(v) == [("g", "buy", 5.0, 100.0, "taker")]
    assert [(c.order_id, c.reason) for c in v.of(OrderCanceled)] == [("f", "fok")]


def test_market_on_close_respects_participation_and_the_legacy_rules_did_not() -> None:
    v = make(participation=0.5)
    v.bar(100, 101, 99, 100, volume=4)
    send(v, "m", "buy", 5, order_type="market_on_close")
    assert [(q, p) for _, _, q, p, _ in got(v)] == [(2.0, 100.0)]
    v.bar(100, 102, 99, 101, volume=4)  # the rest at this bar's close
    assert [(q, p) for _, _, q, p, _ in got(v)] == [(2.0, 100.0), (2.0, 101.0)]
    legacy = make(participation=0.5, rules=1)
    legacy.bar(100, 101, 99, 100, volume=4)
    send(legacy, "m", "buy", 5, order_type="market_on_close")
    assert [(q, p) for _, _, q, p, _ in got(legacy)] == [(5.0, 100.0)]


def test_close_fill_under_participation_rounds_down_to_the_lot() -> None:
    v = make(fill="close", participation=0.1)
    v.portfolio.instruments["X"] = InstrumentDefinition(
        0, "X", kind="spot", base="X", quote="USD", settle="USD", lot_size=0.5
    )
    v.bar(100, 101, 99, 100, volume=37)  # budget 3.7 -> 3.5
    send(v, "o", "buy", 8)
    assert [(q, p) for _, _, q, p, _ in got(v)] == [(3.5, 100.0)]


# -- admission -----------------------------------------------------------------------------------


def test_duplicate_order_id_is_rejected_and_the_first_order_works_on() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 1, order_type="limit", price=90.0)
    send(v, "o", "buy", 2)
    assert [(r.order_id, r.reason) for r in v.of(OrderRejected)] == [("o", "duplicate_order_id")]
    assert [a.order_id for a in v.of(OrderAccepted)] == ["o"]
    v.bar(95, 96, 89, 95)
    assert got(v) == [("o", "buy", 1.0, 90.0, "maker")]


@pytest.mark.parametrize(("price", "crosses"), [(99.0, True), (100.0, True), (100.5, False)])
def test_post_only_sell_at_or_below_the_last_close_is_rejected(price: float, crosses: bool) -> None:
    v = make()
    v.bar(100, 101, 99, 100)
    send(v, "p", "sell", 1, order_type="limit", price=price, post_only=True)
    assert [r.reason for r in v.of(OrderRejected)] == (["post_only_would_cross"] if crosses else [])


@pytest.mark.parametrize(("price", "crosses"), [(101.0, True), (100.0, True), (99.5, False)])
def test_post_only_buy_at_or_above_the_last_close_is_rejected(price: float, crosses: bool) -> None:
    v = make()
    v.bar(100, 101, 99, 100)
    send(v, "p", "buy", 1, order_type="limit", price=price, post_only=True)
    assert [r.reason for r in v.of(OrderRejected)] == (["post_only_would_cross"] if crosses else [])


def test_post_only_before_any_bar_is_accepted() -> None:
    v = make()
    send(v, "p", "buy", 1, order_type="limit", price=100.0, post_only=True)
    assert [a.order_id for a in v.of(OrderAccepted)] == ["p"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"participation": 0.0}, "participation"),
        ({"participation": -0.1}, "participation"),
        ({"participation": 1.5}, "participation"),
        ({"fill_probability": 0.0}, "fill_probability"),
        ({"fill_probability": 1.01}, "fill_probability"),
        ({"latency_bars": -1}, "latency_bars"),
        ({"fill": "vwap"}, "fill must be"),
        ({"intrabar": "optimistic"}, "intrabar"),
    ],
)
def test_execution_config_refuses_out_of_range_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExecutionConfig(**kwargs)


def test_execution_config_accepts_the_edges() -> None:
    ExecutionConfig(participation=1.0, fill_probability=1.0, latency_bars=0)


def test_submit_then_cancel_in_one_handler() -> None:
    """A strategy handler that submits and cancels: the bus delivers the
    submit first (accepted), then the cancel, so nothing ever fills."""
    v = make()

    def handler(bar: Bar) -> None:
        if bar.ts == H:
            v.bus.publish(SubmitOrder(v.bus.now(), "s", "o", "X", "buy", 1))
            v.bus.publish(CancelOrder(v.bus.now(), "s", "o"))

    v.bus.subscribe(Bar, handler, late=True)
    v.bar(100, 100, 100, 100)
    v.bar(101, 101, 101, 101)
    kinds = [type(e).__name__ for e in v.events if type(e).__name__.startswith("Order")]
    assert kinds == ["OrderAccepted", "OrderCanceled"]
    assert v.of(OrderCanceled)[0].reason == "user" and v.of(OrderCanceled)[0].leaves == 1.0
    assert got(v) == []


def test_submit_then_cancel_of_a_close_fill_is_too_late() -> None:
    v = make(fill="close")

    def handler(bar: Bar) -> None:
        if bar.ts == H:
            v.bus.publish(SubmitOrder(v.bus.now(), "s", "o", "X", "buy", 1))
            v.bus.publish(CancelOrder(v.bus.now(), "s", "o"))

    v.bus.subscribe(Bar, handler, late=True)
    v.bar(100, 100, 100, 100)
    assert got(v) == [("o", "buy", 1.0, 100.0, "taker")]
    assert [(r.order_id, r.reason, r.instrument) for r in v.of(OrderRejected)] == [("o", "cancel_not_working", "X")]


# -- fill probability -----------------------------------------------------------------------------


def probability_run(p: float, seed: int, n: int = 300) -> int:
    portfolio = Portfolio(1e9)
    portfolio.add_instrument(spot("X"))
    venue = SimulatedVenue(
        portfolio, RiskEngine(RiskLimits(), portfolio), ExecutionConfig(fill_probability=p), seed=seed
    )
    bus = Bus()
    bus.add(venue)
    filled: list[OrderFilled] = []
    bus.subscribe(OrderFilled, filled.append)
    for k in range(1, n + 1):
        bus.feed(Bar(k * H, "X", 100, 101, 99, 100, 1e6, H))
        bus.publish(SubmitOrder(bus.now(), "s", f"o{k}", "X", "buy", 1, order_type="limit", price=99.5, tif="IOC"))
    return len(filled)


@pytest.mark.parametrize("p", [0.1, 0.9])
def test_fill_probability_fills_a_touched_limit_when_the_draw_is_below_p(p: float) -> None:
    # The first order is placed after bar 1 and matched on bar 2, ... : n - 1 touches, one draw each.
    draws = rng(11).random(299)
    assert probability_run(p, seed=11) == int((draws < p).sum())
    expected = p * 299
    assert abs(probability_run(p, seed=11) - expected) < 0.2 * 299


def test_fill_probability_does_not_apply_to_taker_fills() -> None:
    v = make(fill_probability=0.001)
    v.bar(100, 100, 100, 100)
    for k in range(20):
        send(v, f"m{k}", "buy", 1)
    v.bar(100, 101, 99, 100)
    assert len(got(v)) == 20


# -- the rest of the order lifecycle ----------------------------------------------------------------


def test_modify_price_trigger_and_quantity() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "l", "buy", 4, order_type="limit", price=90.0)
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "l", price=98.0))
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "l", quantity=3.0))
    v.bar(100, 101, 97, 100)
    assert got(v) == [("l", "buy", 3.0, 98.0, "maker")]
    send(v, "st", "sell", 1, order_type="stop", trigger_price=80.0)
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "st", trigger_price=96.0))
    v.bar(100, 101, 95, 97)
    assert got(v)[-1] == ("st", "sell", 1.0, 96.0, "taker")
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "nope", price=1.0))
    assert [r.reason for r in v.of(OrderRejected)] == ["modify_not_working"]


def test_modify_quantity_below_filled_is_refused_and_down_to_filled_completes() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 10)
    v.bar(100, 101, 99, 100, volume=16)  # 4 fill
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "o", quantity=3.0))
    assert [r.reason for r in v.of(OrderRejected)] == ["modify_below_filled"]
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "o", quantity=4.0))
    assert state(v, "o") == "filled"
    v.bar(100, 101, 99, 100, volume=16)
    assert len(got(v)) == 1


def test_gtd_expires_at_the_first_bar_opening_at_or_after_its_time() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "g", "buy", 1, order_type="limit", price=90.0, tif="GTD", expire_ts=2 * H - 1)
    v.bar(100, 101, 95, 100)  # opens at 1H: still working
    assert v.of(OrderExpired) == []
    v.bar(100, 101, 80, 100)  # opens at 2H > expiry
    assert [(e.order_id, e.leaves) for e in v.of(OrderExpired)] == [("g", 1.0)]


def test_market_on_open_and_latency() -> None:
    v = make(fill="close", latency_bars=1)
    v.bar(100, 100, 100, 100)
    send(v, "m", "buy", 1, order_type="market_on_open")
    send(v, "c", "buy", 1)  # latency: not at this close
    v.bar(101, 102, 100, 101)
    assert got(v) == []
    v.bar(103, 104, 102, 103)
    assert [(oid, p) for oid, _, _, p, _ in got(v)] == [("m", 103.0), ("c", 103.0)]


def test_halt_cancels_working_orders_and_refuses_new_ones() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "l", "buy", 1, order_type="limit", price=90.0)
    v.bus.publish(TradingHalted(v.bus.now(), "equity_zero", 0.0))
    assert [(c.order_id, c.reason) for c in v.of(OrderCanceled)] == [("l", "trading_halted")]
    send(v, "m", "buy", 1)
    assert [r.reason for r in v.of(OrderRejected)] == ["trading_halted"]


def test_cancel_all_at_run_end_reports_the_leaves() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "a", "buy", 10)
    send(v, "b", "sell", 1, order_type="limit", price=200.0)
    v.bar(100, 101, 99, 100, volume=16)
    v.venue.cancel_all()
    assert [(c.order_id, c.reason, c.leaves) for c in v.of(OrderCanceled)] == [
        ("a", "run_end", 6.0),
        ("b", "run_end", 1.0),
    ]
    assert v.venue.working_orders() == []


def test_limit_slippage_on_resting_fills() -> None:
    v = make(limit_slippage_bps=10.0)
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 1, order_type="limit", price=99.0)
    send(v, "s", "sell", 1, order_type="limit", price=101.0)
    v.bar(100, 102, 98, 100)
    fills = {f.order_id: f for f in v.of(OrderFilled)}
    assert fills["b"].price == pytest.approx(99.0 * 1.001) and fills["b"].slippage == pytest.approx(0.099)
    assert fills["s"].price == pytest.approx(101.0 * 0.999)
    assert fills["s"].slippage_model == "limit_bps"


def test_pessimistic_intrabar_takes_stops_first_and_limits_at_their_price() -> None:
    v = make(intrabar="pessimistic")
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 3, stop_loss=95.0, take_profit=110.0)
    v.bar(100, 112, 90, 95)  # down bar: the path would reach the target first
    assert got(v)[1][0] == "b.sl"
    w = make(intrabar="pessimistic")
    w.bar(100, 100, 100, 100)
    send(w, "l", "buy", 1, order_type="limit", price=99.0)
    w.bar(100, 100, 100, 100)
    send(w, "r", "buy", 1, order_type="limit", price=99.0, post_only=True)
    w.bar(97, 98, 96, 97)  # opens through a resting limit: fills at the limit, not the better open
    assert [(oid, p) for oid, _, _, p, _ in got(w)] == [("l", 99.0), ("r", 99.0)]
    path = make()
    path.bar(100, 100, 100, 100)
    send(path, "l", "buy", 1, order_type="limit", price=99.0)
    path.bar(100, 100, 100, 100)
    path.bar(97, 98, 96, 97)  # the documented path model: the open
    assert [(oid, p) for oid, _, _, p, _ in got(path)] == [("l", 97.0)]


# -- edges the first mutation run found unpinned -------------------------------------------------


def test_execution_config_defaults() -> None:
    config = ExecutionConfig()
    assert (config.fill, config.latency_bars, config.participation, config.fill_probability) == (
        "next_open",
        0,
        None,
        None,
    )
    assert (config.atr_period, config.intrabar, config.limit_slippage_bps, config.rules) == (14, "path", 0.0, 2)


def test_a_bar_closing_at_its_open_takes_the_low_first() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 1, stop_loss=95.0, take_profit=110.0)
    v.bar(100, 112, 90, 100)  # close == open: the O-L-H-C path
    assert got(v)[1][0] == "b.sl"


@pytest.mark.parametrize(("side", "price"), [("buy", 99.0), ("sell", 101.0)])
def test_a_limit_touched_exactly_at_the_extreme_fills_at_the_limit(side: str, price: float) -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "l", side, 1, order_type="limit", price=price)
    v.bar(100, 101, 99, 100)
    assert got(v) == [("l", side, 1.0, price, "maker")]


@pytest.mark.parametrize(("side", "price"), [("buy", 100.0), ("sell", 100.0)])
def test_a_new_limit_at_exactly_the_open_is_marketable_on_arrival(side: str, price: float) -> None:
    v = make()
    v.bar(101, 101, 99, 100)
    send(v, "l", side, 1, order_type="limit", price=price)
    v.bar(100, 102, 98, 101)
    assert got(v) == [("l", side, 1.0, 100.0, "taker")]


def test_touch_time_exact_vertices() -> None:
    assert touch_time_after((103.0, 101.0, 107.0, 104.0), 107.0, True, 0.5) == 2.0
    assert touch_time_after((103.0, 107.0, 100.0, 102.0), 100.0, False, 0.5) == 2.0
    assert touch_time((100.0, 101.0, 99.0, 100.0), 101.0, upward=True) == 1.0
    assert touch_time((100.0, 101.0, 99.0, 100.0), 99.0, upward=False) == 2.0
    assert touch_time((100.0, 101.0, 99.0, 100.0), 100.0, upward=False) == 0.0


def test_fill_ids_count_fills_and_bar_fills_name_no_book_event() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "a", "buy", 1)
    send(v, "b", "buy", 1)
    v.bar(100, 101, 99, 100)
    first, second = v.of(OrderFilled)
    assert (first.fill_id, second.fill_id) == ("a.1", "b.2")
    assert (first.source_seq, first.levels, first.latency, first.leaves) == (0, 0, 0, 0.0)
    assert first.exec_ts == H


def test_a_bracket_with_only_a_stop_places_only_the_stop() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 2, stop_loss=95.0)
    v.bar(100, 101, 99, 100)
    assert v.venue.orders["b"].children == ("b.sl",)
    v.bar(100, 101, 90, 92)
    assert got(v)[-1] == ("b.sl", "sell", 2.0, 95.0, "taker")
    only_tp = make()
    only_tp.bar(100, 100, 100, 100)
    send(only_tp, "b", "buy", 2, take_profit=105.0)
    only_tp.bar(100, 101, 99, 100)
    assert only_tp.venue.orders["b"].children == ("b.tp",)


def test_an_unknown_instrument_is_refused() -> None:
    v = make()
    v.bus.publish(SubmitOrder(v.bus.now(), "s", "u", "NOPE", "buy", 1))
    assert [(r.order_id, r.reason) for r in v.of(OrderRejected)] == [("u", "unknown_instrument")]


def test_a_cash_account_refuses_what_it_cannot_pay_for() -> None:
    v = make(account=AccountRules("cash"))
    v.bar(100, 100, 100, 100)
    send(v, "big", "buy", 2_000)  # 200,000 of 100,000 cash
    send(v, "ok", "buy", 10)
    assert [(r.order_id, r.reason) for r in v.of(OrderRejected)] == [("big", "insufficient_cash")]
    assert [a.order_id for a in v.of(OrderAccepted)] == ["ok"]


def test_modifying_a_reduce_only_stop_moves_the_risk_stop() -> None:
    v = make()
    v.venue.risk.current_stops = True
    v.bar(100, 100, 100, 100)
    send(v, "p", "buy", 1)
    v.bar(100, 100, 100, 100)
    send(v, "st", "sell", 1, order_type="stop", trigger_price=90.0, reduce_only=True)
    send(v, "free", "sell", 1, order_type="stop", trigger_price=80.0)
    send(v, "lim", "sell", 1, order_type="limit", price=150.0, reduce_only=True)
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "free", trigger_price=85.0))
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "lim", price=140.0))
    assert ("s", "X") not in v.venue.risk.stops
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "st", trigger_price=95.0))
    assert v.venue.risk.stops[("s", "X")] == 95.0
    legacy = make(rules=1)
    legacy.venue.risk.current_stops = True
    legacy.bar(100, 100, 100, 100)
    send(legacy, "st", "sell", 1, order_type="stop", trigger_price=90.0, reduce_only=True)
    legacy.bus.publish(ModifyOrder(legacy.bus.now(), "s", "st", trigger_price=95.0))
    assert ("s", "X") not in legacy.venue.risk.stops


def test_quiet_while_nothing_works() -> None:
    v = make()
    assert v.venue.bars_quiet_until() == QUIET_FOREVER
    v.bar(100, 100, 100, 100)
    send(v, "l", "buy", 1, order_type="limit", price=50.0)
    assert v.venue.bars_quiet_until() == 0
    v.bus.publish(CancelOrder(v.bus.now(), "s", "l"))
    assert v.venue.bars_quiet_until() == QUIET_FOREVER
    assert make(slippage=SlippageModel("atr", bps=1.0)).venue.bars_quiet_until() == NEEDS_EVERY_BAR


def test_legacy_partial_fills_were_not_rounded_to_the_lot() -> None:
    v = make(participation=0.1, rules=1)
    v.portfolio.instruments["X"] = InstrumentDefinition(
        0, "X", kind="spot", base="X", quote="USD", settle="USD", lot_size=0.5
    )
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 8)
    v.bar(100, 101, 99, 100, volume=37)
    assert [q for _, _, q, _, _ in got(v)] == [pytest.approx(3.7)]
    w = make(participation=0.1)
    w.portfolio.instruments["X"] = v.portfolio.instruments["X"]
    w.bar(100, 100, 100, 100)
    send(w, "o", "buy", 8)
    w.bar(100, 101, 99, 100, volume=37)
    assert [q for _, _, q, _, _ in got(w)] == [3.5]


def test_a_sell_stop_limit_with_its_limit_at_the_trigger_is_a_taker_at_the_trigger() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 1, order_type="stop_limit", trigger_price=95.0, price=95.0)
    v.bar(99, 100, 93, 96)
    assert got(v) == [("o", "sell", 1.0, 95.0, "taker")]
    w = make()
    w.bar(100, 100, 100, 100)
    send(w, "o", "buy", 1, order_type="stop_limit", trigger_price=105.0, price=105.0)
    w.bar(101, 107, 100, 106)
    assert got(w) == [("o", "buy", 1.0, 105.0, "taker")]


def test_a_cancel_is_handled_before_a_later_submit_of_the_same_handler() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "a", "buy", 1, order_type="limit", price=50.0)

    def handler(bar: Bar) -> None:
        v.bus.publish(CancelOrder(v.bus.now(), "s", "a"))
        v.bus.publish(SubmitOrder(v.bus.now(), "s", "b", "X", "buy", 1, order_type="limit", price=50.0))

    v.bus.subscribe(Bar, handler, late=True)
    v.bar(100, 100, 100, 100)
    kinds = [(type(e).__name__, e.order_id) for e in v.events if isinstance(e, OrderCanceled | OrderAccepted)]
    assert kinds == [("OrderAccepted", "a"), ("OrderCanceled", "a"), ("OrderAccepted", "b")]


def test_a_market_order_before_any_bar_has_no_price() -> None:
    v = make(account=AccountRules("cash"))
    send(v, "m", "buy", 1)  # nothing to value it at yet
    assert [(r.order_id, r.reason) for r in v.of(RiskRejected)] == [("m", "no_price")]
    assert v.of(OrderRejected) == [] and v.of(OrderAccepted) == []


def test_close_fills_wait_for_their_instruments_bar_of_this_step() -> None:
    # v2: an order sent at a later step than its instrument's last bar fills at the next bar, not at that old close.
    for rules, immediate in ((2, False), (1, True)):
        v = make(fill="close", rules=rules)
        v.portfolio.add_instrument(spot("Y"))
        v.bar(100, 100, 100, 100)
        v.bus.feed(Bar(2 * H, "Y", 5, 5, 5, 5, 1.0, H))
        send(v, "m", "buy", 1)
        assert (got(v) == [("m", "buy", 1.0, 100.0, "taker")]) is immediate, rules


def test_a_close_fill_smaller_than_one_unit() -> None:
    v = make(fill="close", participation=0.1)
    v.bar(100, 101, 99, 100, volume=6)  # budget 0.6
    send(v, "o", "buy", 2)
    assert [q for _, _, q, _, _ in got(v)] == [pytest.approx(0.6)]


def test_minimum_notional_below_one_unit_at_and_below_it() -> None:
    v = make()
    v.portfolio.instruments["X"] = InstrumentDefinition(
        0, "X", kind="spot", base="X", quote="USD", settle="USD", min_notional=0.5
    )
    v.bar(100, 100, 100, 100)
    send(v, "tiny", "buy", 0.004)  # 0.4 at the last close
    send(v, "ok", "buy", 0.005)  # 0.5: exactly the minimum
    send(v, "short", "sell", 0.004, order_type="limit", price=100.0)  # opens a short: checked too
    assert [(r.order_id, r.reason) for r in v.of(OrderRejected)] == [
        ("tiny", "below_min_notional"),
        ("short", "below_min_notional"),
    ]
    assert [a.order_id for a in v.of(OrderAccepted)] == ["ok"]


def test_modify_quantity_above_filled_keeps_the_order_working() -> None:
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "o", "buy", 10)
    v.bar(100, 101, 99, 100, volume=16)  # 4 fill
    v.bus.publish(ModifyOrder(v.bus.now(), "s", "o", quantity=4.5))
    assert state(v, "o") == "partially_filled" and v.venue.orders["o"].leaves == 0.5
    v.bar(100, 101, 99, 100, volume=16)
    assert [q for _, _, q, _, _ in got(v)] == [4.0, 0.5]


def test_skip_bars_records_the_latest_bar_of_instruments_not_expired() -> None:
    v = make()
    bar = Bar(5 * H, "X", 1, 1, 1, 1, 1.0, H)
    v.venue.skip_bars({"X": bar})
    assert v.venue.bars["X"] is bar


def test_quiet_until_a_pending_expiry_then_forever() -> None:
    v = make()
    fut = InstrumentDefinition(0, "F", kind="future", quote="USD", settle="USD", expiry=3 * H)
    v.portfolio.add_instrument(fut)
    v.bus.publish(fut)
    assert v.venue.bars_quiet_until() == 3 * H
    v.venue.skip_bars({"F": Bar(4 * H, "F", 1, 1, 1, 1, 1.0, H)})  # at or after expiry: ignored
    assert "F" not in v.venue.bars
    v.bus.feed(Bar(3 * H, "F", 1, 1, 1, 1, 1.0, H))  # settles
    assert v.venue.bars_quiet_until() == QUIET_FOREVER


def test_market_fills_are_takers_and_trigger_nothing() -> None:
    v = make(slippage=SlippageModel("fixed_bps", bps=10.0))
    v.bar(100, 100, 100, 100)
    send(v, "m", "buy", 1)
    send(v, "o", "buy", 1, order_type="market_on_open")
    v.bar(100, 101, 99, 100)
    assert [(oid, f.liquidity, f.slippage) for oid, f in ((f.order_id, f) for f in v.of(OrderFilled))] == [
        ("m", "taker", pytest.approx(0.1)),
        ("o", "taker", pytest.approx(0.1)),
    ]
    assert v.of(OrderTriggered) == []
    assert state(v, "m") == "filled"


def test_the_rest_of_a_partly_filled_stop_is_a_taker_and_is_not_triggered_again() -> None:
    v = make(participation=0.25, slippage=SlippageModel("fixed_bps", bps=10.0))
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 8, order_type="stop", trigger_price=95.0)
    v.bar(99, 100, 94, 96, volume=16)
    v.bar(98, 99, 97, 98, volume=16)
    fills = v.of(OrderFilled)
    assert [(f.liquidity, f.price) for f in fills] == [
        ("taker", pytest.approx(95 * 0.999)),
        ("taker", pytest.approx(98 * 0.999)),
    ]
    assert len(v.of(OrderTriggered)) == 1


def test_a_stop_limit_filled_at_its_trigger_is_triggered_first() -> None:
    v = make()
    v.bar(100, 100, 100, 100)
    send(v, "o", "sell", 1, order_type="stop_limit", trigger_price=95.0, price=94.0)
    v.bar(99, 100, 93, 96)
    kinds = [type(e).__name__ for e in v.events if isinstance(e, OrderTriggered | OrderFilled)]
    assert kinds == ["OrderTriggered", "OrderFilled"]


def test_children_resized_after_a_partial_exit_leave_the_exit_filled_part_out() -> None:
    # A limit parent of 6 filling in parts; after the target took 1, the stop covers what is held.
    v = make(participation=0.25)
    v.bar(100, 100, 100, 100)
    send(v, "b", "buy", 6, order_type="limit", price=100.0, stop_loss=80.0, take_profit=101.0)
    v.bar(100, 100, 99, 100, volume=8)  # parent 2 at 100
    v.bar(101, 101.5, 100.5, 101, volume=4)  # parent untouched; the target opens at 101: 1 of the budget
    assert got(v)[-1] == ("b.tp", "sell", 1.0, 101.0, "maker")
    v.bar(100, 100, 99, 100, volume=8)  # parent 2 more: filled 4
    assert v.venue.orders["b"].filled == 4.0
    assert v.venue.orders["b.sl"].quantity == 3.0  # 4 bought, 1 sold by the target
    assert v.venue.orders["b.tp"].leaves == 3.0


def test_market_on_close_fills_trigger_nothing() -> None:
    v = make(latency_bars=1)
    v.bar(100, 100, 100, 100)
    send(v, "m", "buy", 1, order_type="market_on_close")
    v.bar(101, 102, 100, 101.5)
    v.bar(102, 103, 101, 102.5)
    assert got(v) == [("m", "buy", 1.0, 102.5, "taker")]
    assert v.of(OrderTriggered) == []
