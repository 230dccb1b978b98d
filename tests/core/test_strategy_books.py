"""Book-driven strategies: ``on_book`` and ``on_quote`` on the journaled books."""

from __future__ import annotations

from tests.core.test_book_venue import INSTRUMENT, SYM, Recorder, snapshot
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine, RiskLimits
from tidemark.core.bus import Bus
from tidemark.core.events import BookDelta, FeedGap, OrderFilled
from tidemark.core.execution.book_venue import BookVenue
from tidemark.core.execution.venue import ExecutionConfig
from tidemark.core.series import MarketSeries
from tidemark.core.strategy import StrategyRunner, load_source

QUOTER = """
def schema():
    return {"id": "quoter", "name": "Quoter", "inputs": {}}


def on_init(ctx):
    ctx.state["quotes"] = []
    ctx.state["books"] = 0
    ctx.state["held"] = ctx.book()  # a view taken before any data stays live


def on_book(ctx, book):
    ctx.state["books"] += 1
    ctx.state["depth"] = book.depth("asks", 2.0)


def on_quote(ctx, q):
    ctx.state["quotes"].append((q.ts, q.bid, q.bid_size, q.ask, q.ask_size))
    if q.spread <= 1.0 and ctx.position.size == 0:
        ctx.buy(0.5)  # a market order: it walks the book the venue just updated
"""


def delta(ts: int, uid: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> BookDelta:
    return BookDelta(
        ts,
        SYM,
        tuple(p for p, _ in bids),
        tuple(s for _, s in bids),
        tuple(p for p, _ in asks),
        tuple(s for _, s in asks),
        uid,
        uid,
        uid - 1,
    )


def test_quotes_come_on_top_of_book_changes_only_and_orders_fill_on_the_updated_book() -> None:
    sink = Recorder()
    bus = Bus(sink)
    portfolio = Portfolio(100_000.0, "USDT")
    venue = BookVenue(portfolio, RiskEngine(RiskLimits(), portfolio), ExecutionConfig())
    runner = StrategyRunner(
        load_source(QUOTER, "quoter.py"), "quoter", [SYM], {}, MarketSeries.live_series([SYM], 1, 10), portfolio
    )
    bus.add(venue)
    bus.add(runner)
    bus.start()
    bus.feed(INSTRUMENT)
    portfolio.add_instrument(INSTRUMENT)  # no account actor in this graph
    bus.feed(snapshot(1_000, [(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.0), (102.0, 2.0)], uid=10))
    bus.feed(delta(2_000, 11, [(97.0, 4.0)], []))  # below the top: on_book, no quote
    bus.feed(delta(3_000, 12, [(98.0, 0.0)], [(101.0, 0.7)]))  # ask size changes: a quote
    bus.feed(FeedGap(3_500, SYM, "book:stale_age"))  # stale: no hooks until the resync
    bus.feed(delta(4_000, 13, [(100.5, 1.0)], []))
    bus.feed(snapshot(5_000, [(100.5, 1.0), (99.0, 1.0)], [(101.0, 0.2), (101.5, 3.0)], uid=20))
    ctx = runner.ctx
    assert ctx is not None
    assert ctx.state["quotes"] == [
        (1_000, 99.0, 1.0, 101.0, 1.0),
        (3_000, 99.0, 1.0, 101.0, 0.7),
        (5_000, 100.5, 1.0, 101.0, 0.2),
    ]
    assert ctx.state["books"] == 4  # the snapshot, two deltas, the resync; not the stale delta
    assert ctx.state["depth"] == 3.2  # asks within 2.0 of 101.0: 0.2 + 3.0
    (fill,) = sink.of(OrderFilled)
    # 0.5 walks the resynced asks: 0.2 @ 101.0 + 0.3 @ 101.5.
    assert fill.quantity == 0.5 and fill.price == (0.2 * 101.0 + 0.3 * 101.5) / 0.5 and fill.levels == 2
    assert ctx.book().best_bid == 100.5 and ctx.book().spread == 0.5
    assert ctx.state["held"].best_ask == 101.0 and ctx.state["held"].update_id == 20
