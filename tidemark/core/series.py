"""Aligned OHLCV arrays for one or many instruments on a common timeline.

``timeline`` holds the bar close times (ns) of the run, sorted and unique.
Each instrument has float arrays of the timeline's length; where an
instrument has no bar at a timeline step its row is NaN (an explicit gap)
and ``present`` is False there. Bars are fed to the bus in (time, instrument
order) and the last bar of each time step carries ``last=True``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter
from typing import overload

import numpy as np

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import Bar

FIELDS = ("open", "high", "low", "close", "volume")


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-d array by sort and compare: numpy 2.4's unique
    hashes and takes ~1.8 s on a million int64 times, this ~0.05 s."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


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
    _stamps: list[int] | None = None

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

    @property
    def stamps(self) -> list[int]:
        """``timeline`` as a list of ints, made once (a finished series only:
        the strategy runner and every bar block share it)."""
        if self.live:
            raise ValueError("a live series has no fixed timeline to list")
        if self._stamps is None:
            self._stamps = self.timeline.tolist()
        return self._stamps

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
        timeline = (
            next(iter(stamps.values())) if len(stamps) == 1 else sorted_distinct(np.concatenate(list(stamps.values())))
        )
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

    def bar_chunks(self, size: int) -> Iterator[Sequence[Bar]]:
        """:meth:`bars` in runs of ``size`` (the last may be shorter): a
        single instrument's come as :class:`BarBlock` (no Bar is built until
        one is needed), several instruments' as lists."""
        symbols = list(self.instruments)
        if len(symbols) != 1 or self.live or not self.instruments[symbols[0]].present.all():
            bars = self.bars()
            while chunk := list(islice(bars, size)):
                yield chunk
            return
        series = self.instruments[symbols[0]]
        for a in range(0, len(self.timeline), size):
            yield BarBlock(series, self.timeline, a, min(a + size, len(self.timeline)), timeline_stamps=self.stamps)

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


class BarBlock(Sequence[Bar]):
    """Consecutive bars of one instrument (rows ``start:stop`` of its series),
    kept as columns. Indexing builds the :class:`Bar`; :meth:`encoded` gives
    the journal payloads of a run of them without building any.

    Invariant: every row is present and ``stamps`` (bar close times, ns) is
    strictly increasing, as :class:`MarketSeries` guarantees. ``payloads``,
    when given, are those rows' journal payloads (replay reads them from the
    journal); they must hold exactly the columns' values.
    ``timeline_stamps``, when given, is the whole ``timeline`` as a list
    (:attr:`MarketSeries.stamps`), sliced rather than listed again.
    """

    __slots__ = ("_bar_at", "_columns", "_interval", "_payloads", "_symbol", "stamps")

    def __init__(
        self,
        series: InstrumentSeries,
        timeline: np.ndarray,
        start: int,
        stop: int,
        payloads: memoryview | None = None,
        timeline_stamps: list[int] | None = None,
    ) -> None:
        if not series.present[start:stop].all():
            raise ValueError(f"{series.symbol}: a bar block cannot hold gaps")
        self._symbol = series.symbol
        self._interval = series.interval
        self._columns = (timeline[start:stop], *(series.field(name)[start:stop] for name in FIELDS))
        self.stamps: list[int] = (
            timeline_stamps[start:stop] if timeline_stamps is not None else self._columns[0].tolist()
        )
        self._payloads = payloads
        self._bar_at: Callable[[int], Bar] | None = None  # made on first use

    def __len__(self) -> int:
        return len(self.stamps)

    @property
    def times(self) -> np.ndarray:
        """Bar close times (ns, int64), as ``stamps`` but a numpy column."""
        return self._columns[0]

    @overload
    def __getitem__(self, index: int) -> Bar: ...

    @overload
    def __getitem__(self, index: slice) -> list[Bar]: ...

    def __getitem__(self, index: int | slice) -> Bar | list[Bar]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self.stamps)))]
        bar_at = self._bar_at
        if bar_at is None:
            bar_at = self._bar_at = self._reader()
        return bar_at(index)

    def _reader(self) -> Callable[[int], Bar]:
        """Builds one Bar: its values unpacked from its payload (a run reads a
        few bars of each block; listing whole columns would box every value),
        or from the columns where the fixed payload layout does not apply."""
        symbol, interval, stamps = self._symbol, self._interval, self.stamps
        n = len(stamps)
        payloads = self.encoded(0, n)
        unpack = bar_unpacker(symbol, interval)
        if payloads is not None and unpack is not None:
            unpack_from = unpack.unpack_from
            size = unpack.size

            def from_payload(i: int) -> Bar:
                ts = stamps[i]  # IndexError past either end, as a list
                o, h, lo, c, v = unpack_from(payloads, (i % n) * size)
                return Bar(ts, symbol, o, h, lo, c, v, interval)

            return from_payload
        o, h, lo, c, v = (column.tolist() for column in self._columns[1:])

        def from_columns(i: int) -> Bar:
            return Bar(stamps[i], symbol, o[i], h[i], lo[i], c[i], v[i], interval)

        return from_columns

    def encoded(self, start: int, stop: int) -> memoryview | None:
        """The msgpack payloads of bars ``start:stop`` back to back, exactly
        as the codec encodes each Bar; None where that fixed layout does not
        apply (then encode the Bar objects). The whole block is encoded once,
        on first use, in a few numpy operations."""
        if self._payloads is None:
            self._payloads = self._encode_all()
        if not self._payloads or stop <= start:
            return None
        size = len(self._payloads) // len(self.stamps)
        return self._payloads[start * size : stop * size]

    def _encode_all(self) -> memoryview:
        layout = bar_layout(self._symbol, self._interval)
        stamps = self._columns[0]
        if layout is None or not len(stamps) or not 0xFFFFFFFF < stamps[0] <= stamps[-1] < 1 << 63:
            return memoryview(b"")
        rows = np.repeat(layout, len(stamps))
        rows["ts"] = stamps
        for name, column in zip(FIELDS, self._columns[1:], strict=True):
            rows[name] = column
        return memoryview(rows.tobytes())


_LAYOUTS: dict[tuple[str, int], np.ndarray | None] = {}


def bar_layout(symbol: str, interval: int) -> np.ndarray | None:
    """The byte layout of a Bar's msgpack payload for one instrument: a
    fixed-size record (``ts`` above 2**32 is always a uint64, floats always
    float64), as a one-row array of a packed dtype whose template bytes hold
    the constants. Checked against the codec; None if it ever differs."""
    key = (symbol, interval)
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    encode = DEFAULT_CODEC.encoder.encode  # the codec's own encoder (events and plain values)
    sample = Bar(1 << 40, symbol, 1.5, 2.5, 0.5, 1.25, 7.0, interval)
    expected = encode(sample)
    head = expected[: expected.index(b"\xcf") + 1]  # array header, tag, uint64 marker
    middle = encode(symbol) + b"\xcb"
    tail = encode(interval) + encode(True) + encode(0)
    fields: list[tuple[str, str]] = [("_head", f"V{len(head)}"), ("ts", ">u8"), ("_symbol", f"V{len(middle)}")]
    for k, name in enumerate(FIELDS):
        fields.append((name, ">f8"))
        fields.append((f"_after_{name}", "V1" if k < len(FIELDS) - 1 else f"V{len(tail)}"))
    dtype = np.dtype(fields)
    layout: np.ndarray | None = None
    if dtype.itemsize == len(expected):
        template = np.frombuffer(expected, dtype=dtype).copy()
        other = Bar((1 << 41) + 12345, symbol, 3.25, 4.75, 0.125, 3.5, 9.0, interval)
        probe = template.copy()
        probe["ts"] = other.ts
        for name in FIELDS:
            probe[name] = getattr(other, name)
        if probe.tobytes() == encode(other):
            layout = template
    _LAYOUTS[key] = layout
    return layout


_UNPACKERS: dict[tuple[str, int], struct.Struct | None] = {}


def bar_unpacker(symbol: str, interval: int) -> struct.Struct | None:
    """Reads ``(open, high, low, close, volume)`` from one payload of
    :func:`bar_layout` (the constant bytes skipped); None without a layout."""
    key = (symbol, interval)
    if key in _UNPACKERS:
        return _UNPACKERS[key]
    layout = bar_layout(symbol, interval)
    if layout is None:
        _UNPACKERS[key] = None
        return None
    dtype = layout.dtype
    parts = [">"]
    at = 0
    for name in FIELDS:
        offset = dtype.fields[name][1]  # type: ignore[index]
        parts.append(f"{offset - at}xd")
        at = offset + 8
    parts.append(f"{dtype.itemsize - at}x")
    unpacker = _UNPACKERS[key] = struct.Struct("".join(parts))
    return unpacker
