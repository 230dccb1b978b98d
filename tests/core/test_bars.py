"""Bars built from trades: buckets, flat bars, timer-driven closes."""

from __future__ import annotations

import numpy as np

from tidemark.core.bars import SESSION_RESUMED, BarAggregator
from tidemark.core.bus import Bus
from tidemark.core.events import Bar, Event, FeedGap, MarkPrice, Timer, Trade
from tidemark.core.series import MarketSeries

S = 1_000_000_000


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        self.events.append(event)


def run(inputs: list[Event], symbols: list[str]) -> tuple[list[Bar], MarketSeries, list[Event]]:
    sink = Sink()
    bus = Bus(sink)
    market = MarketSeries.live_series(symbols, S, 100)
    bus.add(BarAggregator(market, S))
    bus.start()
    for event in inputs:
        bus.feed(event)
    return [e for e in sink.events if isinstance(e, Bar)], market, sink.events


def test_trades_make_ohlcv_bars_stamped_at_bucket_close_and_the_first_partial_bucket_is_dropped() -> None:
    trades = [
        Trade(10 * S + 500, "X", 99.0, 1.0, "buy"),  # partial first bucket [10, 11): dropped
        Trade(11 * S, "X", 100.0, 1.0, "buy"),  # bucket [11, 12)
        Trade(11 * S + 10, "X", 103.0, 2.0, "sell"),
        Trade(11 * S + 20, "X", 98.0, 0.5, "buy"),
        Trade(11 * S + 30, "X", 101.0, 1.5, "buy"),
        Trade(12 * S + 1, "X", 102.0, 1.0, "buy"),
        MarkPrice(14 * S + 5, "X", 102.0),  # quiet until 14 s: [12, 13) real, [13, 14) flat
    ]
    bars, market, events = run(trades, ["X"])
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (12 * S, 100.0, 103.0, 98.0, 101.0, 5.0),
        (13 * S, 102.0, 102.0, 102.0, 102.0, 1.0),
        (14 * S, 102.0, 102.0, 102.0, 102.0, 0.0),
    ]
    assert len(market) == 3
    assert market.timeline[:3].tolist() == [12 * S, 13 * S, 14 * S]
    assert np.isnan(market.instruments["X"].close[3])
    # The bar comes before the input that made it due, stamped at its close.
    k = events.index(bars[0])
    assert isinstance(events[k - 1], Timer) and events[k + 1].ts >= 12 * S


def test_several_instruments_share_a_step_and_the_last_bar_is_marked() -> None:
    trades = [
        Trade(1 * S, "A", 10.0, 1.0, "buy"),
        Trade(1 * S + 1, "B", 20.0, 1.0, "buy"),
        Trade(2 * S, "A", 11.0, 1.0, "buy"),
        Trade(2 * S + 1, "B", 21.0, 1.0, "buy"),
        Trade(3 * S, "A", 12.0, 1.0, "buy"),
    ]
    bars, _, _ = run(trades, ["A", "B"])
    assert [(b.instrument, b.ts, b.close, b.last) for b in bars] == [
        ("A", 3 * S, 11.0, False),
        ("B", 3 * S, 21.0, True),
    ]


def test_a_resumed_session_starts_bars_over_instead_of_inventing_flat_bars_for_the_outage() -> None:
    trades = [
        Trade(1 * S, "X", 10.0, 1.0, "buy"),
        Trade(2 * S, "X", 11.0, 1.0, "buy"),
        Trade(3 * S, "X", 12.0, 1.0, "buy"),  # closes [2, 3)
        Trade(3 * S + 5, "X", 13.0, 1.0, "buy"),  # the open bucket [3, 4) is lost with the crash
        FeedGap(3 * S + 5, "X", SESSION_RESUMED),
        Trade(100 * S + 7, "X", 50.0, 1.0, "buy"),  # partial first bucket after the restart: dropped
        Trade(101 * S, "X", 51.0, 2.0, "buy"),
        Trade(102 * S, "X", 52.0, 1.0, "buy"),
    ]
    bars, _, _ = run(trades, ["X"])
    assert [(b.ts, b.open, b.close, b.volume) for b in bars] == [(3 * S, 11.0, 11.0, 1.0), (102 * S, 51.0, 51.0, 2.0)]
