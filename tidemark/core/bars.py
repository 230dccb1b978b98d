"""Time bars built from trade prints (paper sessions and their reruns).

``BarAggregator`` buckets trades by ``ts // interval`` (bucket open time
inclusive) and publishes one :class:`Bar` per instrument when the bus clock
reaches the bucket's end, stamped with that end (bars carry close times). It
sets a bus timer at each bucket end; the bus fires it before the first input
at or after that time, so bars come before anything that happened after
their close, and any input of the run (books, marks, gaps) moves the clock,
so a quiet instrument still gets its bar on time. Rules:

* a bucket with no trades gives a flat bar at the previous close, volume 0
  (as exchanges publish them); an instrument that never traded gets none;
* the first bucket of a session is partial and is not published (its last
  price seeds the next bar's flat fill);
* bars of one time step are published in the series' instrument order, the
  last with ``last=True``, after being appended to the live series;
* a resumed session (a ``FeedGap`` with reason :data:`SESSION_RESUMED`)
  starts over like a new one: the open bucket is dropped and no flat bars
  stand in for the outage, whose prices nobody saw.

Bars are outputs: a replay rebuilds them from the journaled trades, and a
rerun may build them at another interval.
"""

from __future__ import annotations

from collections.abc import Iterable

from tidemark.core.bus import Actor, Handler
from tidemark.core.events import Bar, Event, FeedGap, Timer, Trade
from tidemark.core.series import MarketSeries

SESSION_RESUMED = "book:session_resumed"


class BarAggregator(Actor):
    name = "bars"

    def __init__(self, market: MarketSeries, interval: int) -> None:
        if interval <= 0:
            raise ValueError("bar interval must be > 0")
        self.market = market
        self.interval = interval
        self.symbols = market.symbols
        self._end = 0
        self._first = True
        # per instrument: [open, high, low, close, volume] of the open bucket (None: no trade yet)
        self._open: dict[str, list[float] | None] = {s: None for s in self.symbols}
        self._last: dict[str, float] = {}

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return ((Trade, self.on_trade, False), (Timer, self.on_timer, False), (FeedGap, self.on_gap, False))

    def on_gap(self, gap: FeedGap) -> None:
        if gap.reason == SESSION_RESUMED and self._end:
            self._end = 0  # the pending timer no longer matches and is ignored
            self._first = True
            for symbol in self.symbols:
                self._open[symbol] = None

    def on_timer(self, timer: Timer) -> None:
        if timer.name == self.name and timer.ts == self._end:
            self._flush()
            self.bus.clock.set_timer(self.name, self._end)

    def on_trade(self, trade: Trade) -> None:
        if not self._end:
            self._end = (trade.ts // self.interval + 1) * self.interval
            self.bus.clock.set_timer(self.name, self._end)
        if trade.instrument not in self._open:
            return
        price, size = trade.price, trade.size
        current = self._open[trade.instrument]
        if current is None:
            self._open[trade.instrument] = [price, price, price, price, size]
        else:
            if price > current[1]:
                current[1] = price
            if price < current[2]:
                current[2] = price
            current[3] = price
            current[4] += size

    def _flush(self) -> None:
        """Close the bucket ending now and publish its bars."""
        end = self._end
        bars = []
        for symbol in self.symbols:
            ohlcv = self._open[symbol]
            if ohlcv is not None:
                self._last[symbol] = ohlcv[3]
                bars.append((symbol, ohlcv))
            elif symbol in self._last:
                close = self._last[symbol]
                bars.append((symbol, [close, close, close, close, 0.0]))
            self._open[symbol] = None
        self._end = end + self.interval
        if self._first:
            self._first = False
            return
        if not bars:
            return
        events = [
            Bar(end, symbol, o, h, lo, c, v, self.interval, k == len(bars) - 1)
            for k, (symbol, (o, h, lo, c, v)) in enumerate(bars)
        ]
        self.market.append(end, events)
        for bar in events:
            self.bus.publish(bar)
