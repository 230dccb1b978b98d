"""Book venue: hand-computed book walks, resting limits, TIFs, latency,
stale books and fill provenance."""

from __future__ import annotations

import pytest

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import Bus
from tidemark.core.events import (
    BookDelta,
    BookSnapshot,
    Event,
    FeedGap,
    InstrumentDefinition,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    RiskRejected,
    SubmitOrder,
    Trade,
)
from tidemark.core.execution.book_venue import BookVenue
from tidemark.core.execution.venue import ExecutionConfig

SYM = "BTC/USDT:USDT"
MS = 1_000_000


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, Event]] = []

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        self.events.append((seq, event))

    def of(self, cls: type) -> list:
        return [e for _, e in self.events if isinstance(e, cls)]

    def seq_of(self, event: Event) -> int:
        return next(s for s, e in self.events if e is event)


INSTRUMENT = InstrumentDefinition(
    1, SYM, kind="perpetual", base="BTC", quote="USDT", settle="USDT", maker_fee=0.0002, taker_fee=0.0005
)


def make(latency_ms: float = 0.0) -> tuple[Bus, Recorder, BookVenue]:
    sink = Recorder()
    bus = Bus(sink)
    portfolio = Portfolio(100_000.0, "USDT")
    venue = BookVenue(
        portfolio, RiskEngine(RiskLimits(), portfolio), ExecutionConfig(), latency_ns=int(latency_ms * MS)
    )
    bus.add(venue)
    bus.start()
    bus.feed(INSTRUMENT)
    portfolio.add_instrument(sink.of(InstrumentDefinition)[0])  # no account actor in this graph
    return bus, sink, venue


def snapshot(ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]], uid: int = 10) -> BookSnapshot:
    return BookSnapshot(
        ts,
        SYM,
        tuple(p for p, _ in bids),
        tuple(s for _, s in bids),
        tuple(p for p, _ in asks),
        tuple(s for _, s in asks),
        uid,
    )


BOOK = snapshot(1_000, [(99.0, 1.0), (98.0, 2.0), (97.0, 5.0)], [(101.0, 1.0), (102.0, 2.0), (104.0, 3.0)])


def order(ts: int, oid: str, side: str, qty: float, **kw: object) -> SubmitOrder:
    return SubmitOrder(ts, "s", oid, SYM, side, qty, **kw)  # type: ignore[arg-type]


def test_market_buy_walks_the_book_at_vwap_with_provenance() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "m1", "buy", 2.5))
    (fill,) = sink.of(OrderFilled)
    # 1 @ 101 + 1.5 @ 102 = 254 -> vwap 101.6
    assert fill.quantity == 2.5
    assert fill.price == pytest.approx(101.6, abs=1e-12)
    assert fill.levels == 2
    assert fill.liquidity == "taker"
    assert fill.slippage == pytest.approx(0.6)
    assert fill.slippage_model == "book"
    assert fill.fee == pytest.approx(2.5 * 101.6 * 0.0005)
    assert fill.fee_model == "exchange@0.0005"
    assert fill.source_seq == sink.seq_of(BOOK), "provenance: the book update walked"
    assert fill.latency == 0


def test_market_order_beyond_visible_depth_fills_partially_and_cancels_the_rest() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "m1", "sell", 10.0))
    (fill,) = sink.of(OrderFilled)
    assert fill.quantity == 8.0  # 1 + 2 + 5
    assert fill.price == pytest.approx((99 + 2 * 98 + 5 * 97) / 8)
    assert fill.levels == 3
    (cxl,) = sink.of(OrderCanceled)
    assert cxl.reason == "insufficient_depth" and cxl.leaves == 2.0


def test_depth_taken_by_one_order_is_not_offered_again_until_the_book_updates() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "a", "buy", 1.0))
    bus.feed(order(1_000, "b", "buy", 1.0))
    first, second = sink.of(OrderFilled)
    assert (first.price, second.price) == (101.0, 102.0)


def test_limit_takes_through_its_price_then_rests_and_fills_as_maker_when_crossed() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "l1", "buy", 4.0, order_type="limit", price=102.0))
    taker = sink.of(OrderFilled)[0]
    assert taker.quantity == 3.0 and taker.price == pytest.approx((101 + 2 * 102) / 3) and taker.liquidity == "taker"
    # The book moves: 101 and 102 are gone, 0.4 is offered at 101.5, through the
    # resting remainder (1.0 @ 102): a maker fill at the limit, for the size there.
    bus.feed(BookDelta(2_000, SYM, (), (), (101.0, 101.5, 102.0), (0.0, 0.4, 0.0), 11, 11, 10))
    maker = sink.of(OrderFilled)[1]
    assert maker.quantity == pytest.approx(0.4) and maker.price == 102.0 and maker.liquidity == "maker"
    assert maker.fee == pytest.approx(0.4 * 102.0 * 0.0002)
    assert maker.fee_model == "exchange@0.0002"


def test_resting_limit_fills_on_a_print_through_it_but_not_at_it() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "l1", "buy", 1.0, order_type="limit", price=100.0))
    assert not sink.of(OrderFilled)
    bus.feed(Trade(2_000, SYM, 100.0, 5.0, "sell"))
    assert not sink.of(OrderFilled), "a print at the limit does not fill: queue position unknown"
    bus.feed(Trade(3_000, SYM, 99.5, 0.3, "sell"))
    (fill,) = sink.of(OrderFilled)
    assert fill.quantity == pytest.approx(0.3) and fill.price == 100.0 and fill.liquidity == "maker"
    assert fill.source_seq == sink.seq_of(sink.of(Trade)[1])


def test_post_only_that_would_cross_is_rejected_and_one_that_rests_is_accepted() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "p1", "buy", 1.0, order_type="limit", price=101.0, post_only=True))
    bus.feed(order(1_000, "p2", "buy", 1.0, order_type="limit", price=100.0, post_only=True))
    (rej,) = sink.of(OrderRejected)
    assert rej.order_id == "p1" and rej.reason == "post_only_would_cross"
    assert [a.order_id for a in sink.of(OrderAccepted)] == ["p2"]
    assert not sink.of(OrderFilled)


def test_ioc_fills_what_it_can_and_fok_fills_all_or_nothing() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "ioc", "buy", 2.0, order_type="limit", price=101.0, tif="IOC"))
    bus.feed(BookDelta(1_500, SYM, (), (), (101.0,), (1.0,), 11, 11, 10))
    bus.feed(order(1_500, "fok", "buy", 2.0, order_type="limit", price=101.0, tif="FOK"))
    fills = sink.of(OrderFilled)
    assert [(f.order_id, f.quantity) for f in fills] == [("ioc", 1.0)]
    assert [(c.order_id, c.reason) for c in sink.of(OrderCanceled)] == [("ioc", "ioc"), ("fok", "fok")]


def test_latency_matches_against_the_book_at_arrival_not_at_sending() -> None:
    bus, sink, _ = make(latency_ms=50)
    bus.feed(BOOK)
    bus.feed(order(1_000, "m1", "buy", 1.0))
    assert not sink.of(OrderAccepted), "not at the exchange yet"
    bus.feed(BookDelta(1_000 + 20 * MS, SYM, (), (), (101.0, 100.5), (0.0, 1.0), 11, 11, 10))
    assert not sink.of(OrderFilled)
    bus.feed(BookDelta(1_000 + 60 * MS, SYM, (), (), (100.5,), (0.0,), 12, 12, 11))
    (fill,) = sink.of(OrderFilled)
    assert fill.price == 102.0, "the 100.5 offer was gone when the order arrived"
    assert fill.latency == 60 * MS
    assert fill.exec_ts == 1_000 + 60 * MS


def test_stale_book_gives_no_fill_until_a_snapshot_resyncs() -> None:
    bus, sink, venue = make()
    bus.feed(BOOK)
    bus.feed(BookDelta(2_000, SYM, (), (), (101.0,), (2.0,), 13, 13, 12))  # pu 12 != 10: a gap
    assert venue.books[SYM].stale
    bus.feed(order(2_000, "m1", "buy", 1.0))
    bus.feed(Trade(2_500, SYM, 101.0, 1.0, "buy"))
    assert not sink.of(OrderFilled), "no fill from a stale book"
    bus.feed(snapshot(3_000, [(99.0, 1.0)], [(103.0, 1.0)], uid=20))
    (fill,) = sink.of(OrderFilled)
    assert fill.price == 103.0 and fill.exec_ts == 3_000
    assert fill.source_seq == sink.seq_of(sink.of(BookSnapshot)[-1])


def test_feed_gap_for_the_book_makes_it_stale_other_streams_do_not() -> None:
    bus, sink, venue = make()
    bus.feed(BOOK)
    bus.feed(FeedGap(1_500, SYM, "trades:disconnect"))
    assert not venue.books[SYM].stale
    bus.feed(FeedGap(1_600, SYM, "book:stale_age"))
    assert venue.books[SYM].stale_reason == "book:stale_age"
    bus.feed(order(1_700, "m1", "buy", 1.0))
    assert not sink.of(OrderFilled)


def test_stop_triggers_on_a_print_through_it_and_walks_the_book() -> None:
    bus, sink, _ = make()
    bus.feed(BOOK)
    bus.feed(order(1_000, "st", "buy", 2.0, order_type="stop", trigger_price=100.5))
    bus.feed(Trade(2_000, SYM, 100.0, 1.0, "buy"))
    assert not sink.of(OrderFilled)
    bus.feed(Trade(3_000, SYM, 100.6, 1.0, "buy"))
    (fill,) = sink.of(OrderFilled)
    assert fill.price == pytest.approx((101 + 102) / 2) and fill.levels == 2


def test_an_entry_behind_a_pending_flatten_is_risk_checked_as_the_new_position_it_is() -> None:
    """As on the bar venue (rules version 2): long 1 with its flatten (a
    reduce-only sell of 1) still in flight, a sell of 0.9 opens 0.9 short,
    not a reduction to 0.1; with a 1% open-risk limit and its stop 1,900
    away (1,710 at risk of 100,000) it is refused."""
    sink = Recorder()
    bus = Bus(sink)
    portfolio = Portfolio(100_000.0, "USDT")
    risk = RiskEngine(RiskLimits(max_open_risk=0.01), portfolio, current_stops=True, check_reversals=True)
    venue = BookVenue(portfolio, risk, ExecutionConfig(), latency_ns=50 * MS)
    bus.add(venue)
    bus.start()
    bus.feed(INSTRUMENT)
    portfolio.add_instrument(sink.of(InstrumentDefinition)[0])
    bus.feed(BOOK)
    held = portfolio.position("s", SYM)
    held.quantity, held.avg_price = 1.0, 100.0
    bus.feed(order(1_000, "flat", "sell", 1.0, reduce_only=True))  # in flight for 50 ms
    bus.feed(order(1_000, "short", "sell", 0.9, risk_price=2_000.0))
    bus.feed(order(1_000, "small", "sell", 0.9, risk_price=1_000.0))  # 810 at risk: within 1%
    assert {e.order_id: e.reason for e in sink.of(RiskRejected)} == {"short": "max_open_risk"}
