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
    """The bar data of a run, aligned on one timeline."""

    def __init__(self, timeline: np.ndarray, instruments: dict[str, InstrumentSeries]) -> None:
        self.timeline = np.ascontiguousarray(timeline, dtype=np.int64)
        self.instruments = instruments
        self.timeline.flags.writeable = False
        for series in instruments.values():
            if len(series.close) != len(self.timeline):
                raise ValueError(f"{series.symbol}: {len(series.close)} rows for a timeline of {len(self.timeline)}")
            for name in (*FIELDS, "present"):
                series.field(name).flags.writeable = False  # strategies see views; nobody may edit the data

    @property
    def symbols(self) -> list[str]:
        return list(self.instruments)

    def __len__(self) -> int:
        return len(self.timeline)

    @property
    def bar_count(self) -> int:
        return int(sum(int(s.present.sum()) for s in self.instruments.values()))

    @classmethod
    def from_bars(cls, bars: Iterable[Bar]) -> MarketSeries:
        """Rebuild the arrays from Bar events (as a journal holds them)."""
        columns: dict[str, tuple[list[int], list[float], list[float], list[float], list[float], list[float]]] = {}
        intervals: dict[str, int] = {}
        for bar in bars:
            col = columns.get(bar.instrument)
            if col is None:
                col = columns[bar.instrument] = ([], [], [], [], [], [])
                intervals[bar.instrument] = bar.interval
            col[0].append(bar.ts)
            col[1].append(bar.open)
            col[2].append(bar.high)
            col[3].append(bar.low)
            col[4].append(bar.close)
            col[5].append(bar.volume)
        stamps = {s: np.array(c[0], dtype=np.int64) for s, c in columns.items()}
        timeline = next(iter(stamps.values())) if len(stamps) == 1 else np.unique(np.concatenate(list(stamps.values())))
        instruments = {}
        for symbol, col in columns.items():
            index = np.searchsorted(timeline, stamps[symbol])
            present = np.zeros(len(timeline), dtype=bool)
            present[index] = True
            arrays = []
            for values in col[1:]:
                out = np.full(len(timeline), np.nan)
                out[index] = values
                arrays.append(out)
            o, h, lo, c, v = arrays
            instruments[symbol] = InstrumentSeries(symbol, intervals[symbol], o, h, lo, c, v, present)
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
