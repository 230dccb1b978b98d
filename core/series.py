"""Aligned OHLCV arrays for one or many instruments on a common timeline.

``timeline`` holds the bar close times (ns) of the run, sorted and unique.
Each instrument has float arrays of the timeline's length; where an
instrument has no bar at a timeline step its row is NaN (an explicit gap)
and ``present`` is False there. Bars are fed to the bus in (time, instrument
order) and the last bar of each time step carries ``last=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from operator import attrgetter

import numpy as np

from core.events import Bar

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass
class InstrumentSeries:
    symbol: str
    interval: int
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    present: np.ndarray

    def field(self, name: str) -> np.ndarray:
        return getattr(self, name)


class MarketSeries:
    """The bar data of a run, aligned on one timeline.

    A *live* series (:meth:`live`) starts empty with room for ``capacity``
    time steps and grows by :meth:`append` as bars are built; rows past
    ``length`` are NaN. Strategies only ever see prefixes, so causal
    indicators give the same values on a live series as on the finished one.
    """

    live = False
    length = 0

    def __init__(self, timeline: np.ndarray, instruments: dict[str, InstrumentSeries]) -> None:
        self.timeline = np.ascontiguousarray(timeline, dtype=np.int64)
        self.instruments = instruments
        self.timeline.flags.writeable = False
        for series in instruments.values():
            if len(series.close) != len(self.timeline):
                raise ValueError(f"{series.symbol}: {len(series.close)} rows for a timeline of {len(self.timeline)}")
            for name in (*FIELDS, "present"):
                series.field(name).flags.writeable = False  # strategies see views; nobody may edit the data

    @classmethod
    def live_series(cls, symbols: list[str], interval: int, capacity: int) -> MarketSeries:
        """An empty, growable series for ``symbols`` (``capacity`` steps)."""
        if capacity <= 0:
            raise ValueError("a live series needs capacity > 0")
        self = cls.__new__(cls)
        self.timeline = np.zeros(capacity, dtype=np.int64)
        self.instruments = {}
        for symbol in symbols:
            o, h, lo, c, v = (np.full(capacity, np.nan) for _ in FIELDS)
            self.instruments[symbol] = InstrumentSeries(symbol, interval, o, h, lo, c, v, np.zeros(capacity, bool))
        self.live = True
        self.length = 0
        return self

    def append(self, ts: int, bars: list[Bar]) -> int:
        """Add one time step (live series only); returns its index."""
        i = self.length
        if i >= len(self.timeline):
            raise OverflowError(f"live series is full ({i} steps); raise the session's max bars")
        if i and ts <= self.timeline[i - 1]:
            raise ValueError(f"bar time {ts} is not after the previous step {self.timeline[i - 1]}")
        self.timeline[i] = ts
        for bar in bars:
            series = self.instruments[bar.instrument]
            series.open[i] = bar.open
            series.high[i] = bar.high
            series.low[i] = bar.low
            series.close[i] = bar.close
            series.volume[i] = bar.volume
            series.present[i] = True
        self.length = i + 1
        return i

    @property
    def symbols(self) -> list[str]:
        return list(self.instruments)

    def __len__(self) -> int:
        return self.length if self.live else len(self.timeline)

    @property
    def bar_count(self) -> int:
        return int(sum(int(s.present.sum()) for s in self.instruments.values()))

    @classmethod
    def from_bars(cls, bars: Iterable[Bar]) -> MarketSeries:
        """Rebuild the arrays from Bar events (as a journal holds them)."""
        every = list(bars)
        names = list(map(attrgetter("instrument"), every))
        by_symbol: dict[str, list[Bar]] = {}
        if every and names.count(names[0]) == len(names):  # one instrument: no grouping pass
            by_symbol[names[0]] = every
        for bar, name in zip(every, names, strict=True) if len(by_symbol) != 1 else ():
            group = by_symbol.get(name)
            if group is None:
                group = by_symbol[name] = []
            group.append(bar)
        stamps = {s: np.fromiter(map(attrgetter("ts"), g), np.int64, len(g)) for s, g in by_symbol.items()}
        timeline = next(iter(stamps.values())) if len(stamps) == 1 else np.unique(np.concatenate(list(stamps.values())))
        instruments = {}
        for symbol, group in by_symbol.items():
            n = len(group)
            index = np.searchsorted(timeline, stamps[symbol])
            present = np.zeros(len(timeline), dtype=bool)
            present[index] = True
            arrays = []
            for name in FIELDS:
                out = np.full(len(timeline), np.nan)
                out[index] = np.fromiter(map(attrgetter(name), group), float, n)
                arrays.append(out)
            o, h, lo, c, v = arrays
            instruments[symbol] = InstrumentSeries(symbol, group[0].interval, o, h, lo, c, v, present)
        return cls(timeline, instruments)

    def bars(self) -> Iterator[Bar]:
        """Bar events in feed order: by time, then instrument order."""
        symbols = list(self.instruments)
        if len(symbols) == 1:
            yield from self._single_bars(self.instruments[symbols[0]])
            return
        columns = {
            s: (
                self.instruments[s].open.tolist(),
                self.instruments[s].high.tolist(),
                self.instruments[s].low.tolist(),
                self.instruments[s].close.tolist(),
                self.instruments[s].volume.tolist(),
                self.instruments[s].present.tolist(),
                self.instruments[s].interval,
            )
            for s in symbols
        }
        for i, ts in enumerate(self.timeline.tolist()):
            here = [s for s in symbols if columns[s][5][i]]
            for k, s in enumerate(here):
                o, h, lo, c, v, _, interval = columns[s]
                yield Bar(ts, s, o[i], h[i], lo[i], c[i], v[i], interval, k == len(here) - 1)

    def bar_chunks(self, size: int) -> Iterator[list[Bar]]:
        """:meth:`bars` in lists of ``size`` (the last may be shorter)."""
        symbols = list(self.instruments)
        if len(symbols) != 1:
            bars = self.bars()
            while chunk := list(islice(bars, size)):
                yield chunk
            return
        series = self.instruments[symbols[0]]
        symbol = repeat(series.symbol)
        interval = repeat(series.interval)
        ts = self.timeline.tolist()
        o, h, lo, c, v = (series.field(name).tolist() for name in FIELDS)
        for a in range(0, len(ts), size):
            b = a + size
            yield list(map(Bar, ts[a:b], symbol, o[a:b], h[a:b], lo[a:b], c[a:b], v[a:b], interval))

    def _single_bars(self, series: InstrumentSeries) -> Iterator[Bar]:
        symbol = series.symbol
        interval = series.interval
        for ts, o, h, lo, c, v in zip(
            self.timeline.tolist(),
            series.open.tolist(),
            series.high.tolist(),
            series.low.tolist(),
            series.close.tolist(),
            series.volume.tolist(),
            strict=True,
        ):
            yield Bar(ts, symbol, o, h, lo, c, v, interval)
