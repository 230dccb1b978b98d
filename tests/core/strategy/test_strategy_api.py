"""What seeds 000-003 need from a strategy: fill timing per order, modify,
brackets with their own exit sizes, limit slippage, the shared book,
records and counts, the last step, custom indicators. Hand-computed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import tidemark
from tidemark import Strategy
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import BusFault
from tidemark.core.events import BUY, OrderFilled
from tidemark.core.execution.orders import Order
from tidemark.core.instruments import spot
from tidemark.core.strategy import StrategyError

H = pd.Timedelta(hours=1)


def bars(opens: list[float], closes: list[float], highs: list[float] | None = None, lows: list[float] | None = None):
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    h = np.asarray(highs, float) if highs is not None else np.maximum(o, c)
    lo = np.asarray(lows, float) if lows is not None else np.minimum(o, c)
    index = pd.date_range("2024-01-01", periods=len(o), freq="1h", tz="UTC")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c}, index=index)


def run(frame: pd.DataFrame, strategy: type[Strategy], **kw: Any) -> tidemark.Result:
    return tidemark.backtest(frame, strategy, cash=1_000_000, **kw)


class AtClose(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 1:
            ctx.buy(1, fill="close")  # fills at bar 1's close, 12
        if i == 3:
            ctx.sell(1)  # the run's model: next open, bar 4's open 30
        if i == 4:
            ctx.buy(2, fill="open")  # next open whatever the model: 50


def test_fill_timing_per_order() -> None:
    frame = bars([10, 11, 20, 25, 30, 50], [10, 12, 21, 26, 31, 51])
    fills = run(frame, AtClose).fills
    assert list(zip(fills["side"], fills["quantity"], fills["price"], strict=True)) == [
        ("buy", 1.0, 12.0),
        ("sell", 1.0, 30.0),
        ("buy", 2.0, 50.0),
    ]
    assert fills["exec_time"].iloc[0] == frame.index[1] + H  # at the close: the bar's close time
    closed = run(frame, AtClose, fill_model="close").fills  # close model: a plain market order fills at once
    assert list(closed["price"]) == [12.0, 26.0, 50.0]


class LastStep(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 0:
            ctx.buy(3)
        if ctx.is_last:
            ctx.state["steps"] = ctx.steps
            ctx.flatten(fill="close")


def test_the_last_step_can_liquidate_at_its_close() -> None:
    frame = bars([10, 11, 12, 13], [10.5, 11.5, 12.5, 13.5])
    result = run(frame, LastStep)
    assert list(result.fills["price"]) == [11.0, 13.5]
    assert result.metrics["open_trades"] == 0 and result.metrics["trades"] == 1
    assert result.trades["pnl"].iloc[0] == pytest.approx(3 * 2.5)


class PartialTarget(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 0:
            ctx.bracket("buy", 10, stop_loss=95, take_profit=110, take_profit_size=4)


def test_a_partial_take_profit_leaves_the_stop_on_the_rest() -> None:
    # entry at 100 (bar 1 open); bar 2 reaches 110: 4 of 10 go there; bar 3 falls to 94: the stop takes 6
    frame = bars([100, 100, 105, 100], [100, 104, 108, 94], highs=[100, 104, 111, 100], lows=[99, 99, 104, 93])
    result = run(frame, PartialTarget)
    fills = result.fills
    assert list(zip(fills["order_id"], fills["quantity"], fills["price"], strict=True)) == [
        ("partialtarget-1", 10.0, 100.0),
        ("partialtarget-1.tp", 4.0, 110.0),
        ("partialtarget-1.sl", 6.0, 95.0),
    ]
    assert result.positions["quantity"].iloc[-1] == 0.0


def test_a_full_stop_cancels_the_partial_target() -> None:
    frame = bars([100, 100, 96], [100, 97, 90], highs=[100, 101, 97], lows=[99, 96, 89])
    result = run(frame, PartialTarget)
    assert list(result.fills["order_id"]) == ["partialtarget-1", "partialtarget-1.sl"]
    assert result.fills["quantity"].iloc[1] == 10.0
    orders = result.orders.set_index("order_id")
    assert orders.loc["partialtarget-1.tp", "status"] == "canceled"


class Trailing(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 0:
            ctx.state["id"] = ctx.bracket("buy", 2, stop_loss=90, take_profit=200)
        elif i == 2:
            ctx.modify(ctx.state["id"] + ".sl", stop=104)  # trail the stop up
        elif i == 3:
            ctx.buy(1, fill="close")  # a pyramid at the close...
            ctx.modify(ctx.state["id"] + ".sl", size=3)  # ...and the stop covers it


def test_modify_trails_the_stop_and_resizes_it_keeping_one_cancels_other() -> None:
    frame = bars(
        [100, 100, 105, 108, 107],
        [100, 105, 108, 110, 103],
        highs=[100, 106, 109, 111, 108],
        lows=[99, 99, 104, 107, 102],
    )
    result = run(frame, Trailing)
    fills = result.fills
    assert list(zip(fills["order_id"], fills["quantity"], fills["price"], strict=True)) == [
        ("trailing-1", 2.0, 100.0),
        ("trailing-2", 1.0, 110.0),
        ("trailing-1.sl", 3.0, 104.0),  # bar 4 trades down through the moved stop: all 3 out
    ]
    assert result.orders.set_index("order_id").loc["trailing-1.tp", "status"] == "canceled"  # its sibling filled


class Target(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 0:
            ctx.bracket("buy", 1, take_profit=110)


def test_limit_slippage_is_off_by_default_and_recorded_when_asked() -> None:
    frame = bars([100, 100, 105], [100, 104, 109], highs=[100, 104, 111])
    plain = run(frame, Target).fills.iloc[1]
    assert (plain["price"], plain["slippage"]) == (110.0, 0.0)
    slipped = run(frame, Target, limit_slippage_bps=5).fills.iloc[1]
    assert slipped["price"] == pytest.approx(110 * (1 - 0.0005))
    assert slipped["slippage"] == pytest.approx(110 * 0.0005) and slipped["slippage_model"] == "limit_bps"


class Sleeve(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 0 and ctx.strategy_id == "a":
            ctx.buy(2, risk_price=90)
        if i == 1 and ctx.strategy_id == "b":
            book = ctx.portfolio.positions()
            ctx.log.info(repr([(p.strategy, p.symbol, p.size, p.entry_price, p.stop, p.open_risk) for p in book]))
            ctx.record("book_risk", ctx.portfolio.open_risk())
            ctx.count("seen", "a", len(ctx.portfolio.positions("a")))


def test_strategies_sharing_a_book_see_each_others_positions_and_stops(tmp_path: Any) -> None:
    from tidemark.adapters.notebook import strategy_source
    from tidemark.journal.reader import JournalReader

    frame = bars([100, 100, 100], [100, 100, 100])
    text, origin = strategy_source(Sleeve)
    pair = [{"strategy": origin, "id": sid, "source": text, "origin": origin} for sid in ("a", "b")]
    both = tidemark.backtest(frame, config={"strategies": pair}, journal=tmp_path / "k.journal")
    with JournalReader(both.journal) as reader:
        (line,) = [e.message for _, e in reader.events(kinds=["log"])]
    assert line == "[('a', 'DATA0', 2.0, 100.0, 90.0, 20.0)]"
    assert both.recorded("b")["book_risk"].tolist() == [20.0]
    assert both.counters.to_dict("records") == [{"strategy": "b", "name": "seen", "key": "a", "count": 1}]


def test_open_risk_from_entry_and_with_working_orders() -> None:
    pf = Portfolio(100_000.0)
    pf.add_instrument(spot("X"))
    pf.apply_fill(OrderFilled(0, "s", "o", "f", "X", BUY, 10, 100.0, 0, 0.0, "taker", 0.0))
    pf.marks["X"] = 120.0
    mark = RiskEngine(RiskLimits(max_open_risk=1.0), pf)
    mark.stops[("s", "X")] = 95.0
    assert mark.open_risk() == pytest.approx((120 - 95) * 10)  # what is still at risk from the mark
    entry = RiskEngine(RiskLimits(max_open_risk=1.0, open_risk_basis="entry", pending_risk=True), pf)
    entry.stops[("s", "X")] = 95.0
    assert entry.open_risk() == pytest.approx((100 - 95) * 10)  # the sizing definition: from entry
    from tidemark.core.events import SubmitOrder

    pending = Order(SubmitOrder(0, "s", "p", "X", "buy", 4, order_type="limit", price=110, risk_price=100), 1, 4)
    assert entry.open_risk(working=[pending]) == pytest.approx(50 + (110 - 100) * 4)


class Custom(Strategy):
    def on_init(self, ctx) -> None:  # type: ignore[no-untyped-def]
        ctx.state["calls"] = 0

        def doubled(x: np.ndarray) -> np.ndarray:
            ctx.state["calls"] += 1
            return x * 2

        ctx.ind.register("doubled", doubled)

    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        values = ctx.ind.doubled(ctx.close)
        assert values[-1] == 2 * ctx.close[-1] and len(values) == i + 1
        ctx.record("calls", ctx.state["calls"])


class Peeking(Strategy):
    def on_init(self, ctx) -> None:  # type: ignore[no-untyped-def]
        ctx.ind.register("future_max", lambda x: np.full(len(x), x.max()))

    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        ctx.ind.future_max(ctx.close)


def test_custom_indicators_are_computed_once_and_checked_for_lookahead() -> None:
    frame = bars(list(range(100, 130)), list(range(101, 131)))
    calls = run(frame, Custom).recorded()["calls"]
    assert calls.iloc[-1] == 2  # the whole series once, and its first half once for the lookahead check
    with pytest.raises(BusFault) as info:
        run(frame, Peeking)
    assert isinstance(info.value.error, StrategyError) and "future_max looks ahead" in str(info.value.error)


def test_orders_timed_to_bars_are_refused_on_order_books() -> None:
    from tidemark.core.events import SubmitOrder
    from tidemark.core.execution.book_venue import BookVenue
    from tidemark.core.execution.venue import ExecutionConfig

    pf = Portfolio(1e6)
    pf.add_instrument(spot("X"))
    venue = BookVenue(pf, RiskEngine(RiskLimits(), pf), ExecutionConfig())
    for kind in ("market_on_close", "market_on_open"):
        assert venue._refusal(SubmitOrder(0, "s", kind, "X", "buy", 1.0, order_type=kind)) == "needs_bars"
    assert venue._refusal(SubmitOrder(0, "s", "m", "X", "buy", 1.0)) is None
