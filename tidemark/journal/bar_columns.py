"""A journal's bar inputs read as columns, without building a Bar per bar.

A backtest journal of one instrument is mostly bar inputs whose payloads
share one fixed layout (:meth:`core.series.BarBlock.encoded` writes it).
Their values are read with numpy straight from the stored payloads, after
every constant byte of every record is checked, into the run's
:class:`MarketSeries`; replay then feeds them as :class:`BarBlock` runs. A
journal this does not fit (several instruments, another layout, bar times
not strictly increasing, a book session) gets None, and replay decodes its
events one by one as before. The projections (:mod:`journal.projections`)
use :class:`BarLayout` block by block the same way, for any journal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tidemark.core.events import Bar, Event
from tidemark.core.series import FIELDS, BarBlock, InstrumentSeries, MarketSeries, bar_layout
from tidemark.journal.blocks import DecodedBlock

Step = BarBlock | Event
"""What replay feeds: a run of consecutive bars, or one other input."""


@dataclass
class BarInputs:
    """The journal's bars as a series, and per stored block the inputs to feed."""

    market: MarketSeries
    steps: list[list[Step]]


class BlockView:
    """Numpy views of one stored block's columns."""

    def __init__(self, block: DecodedBlock) -> None:
        self.block = block
        self.body = np.frombuffer(block.body, dtype=np.uint8)
        self.lengths = np.frombuffer(block.lengths, dtype=np.uint32)
        self.starts = block.offsets[:-1]
        self.inputs = np.flatnonzero(np.frombuffer(block.flags, dtype=np.uint8))


class BarLayout:
    """The fixed payload layout of one instrument's bars (see
    :func:`core.series.bar_layout`), and a reader of them out of stored
    blocks that checks every constant byte of every record it takes."""

    def __init__(self, instrument: str, interval: int, template: np.ndarray) -> None:
        self.instrument = instrument
        self.interval = interval
        self.dtype = template.dtype
        self.size = template.dtype.itemsize
        constant = np.ones(self.size, dtype=bool)  # the bytes that are not values
        for name in NAMES:
            offset = template.dtype.fields[name][1]  # type: ignore[index]
            constant[offset : offset + 8] = False
        self._constant = constant
        self._expected = np.frombuffer(template.tobytes(), dtype=np.uint8)[constant]

    @classmethod
    def of(cls, bar: Bar) -> BarLayout | None:
        """The layout of ``bar``'s instrument and interval; None if the codec
        has no fixed layout for them."""
        template = bar_layout(bar.instrument, bar.interval)
        return None if template is None else cls(bar.instrument, bar.interval, template)

    def find(self, block: BlockView) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, records)``: the block's input records that are bars
        of this layout (ascending positions in the block) and their payloads
        as a (bars, record size) byte array."""
        size = self.size
        rows = block.inputs[block.lengths[block.inputs] == size]
        records = _records(block, rows, size)
        fits = (records[:, self._constant] == self._expected).all(axis=1)
        if not fits.all():
            records, rows = records[fits], rows[fits]
        return rows, records

    def columns(self, records: np.ndarray) -> dict[str, np.ndarray]:
        """``ts`` (int64 ns) and the price and volume columns (float64) of
        :meth:`find`'s records."""
        table = records.view(self.dtype).ravel()
        return {name: table[name].astype(DTYPES[name]) for name in NAMES}


NAMES = ("ts", *FIELDS)
"""The values of a bar payload, in layout order."""
DTYPES: dict[str, type] = {name: np.int64 if name == "ts" else np.float64 for name in NAMES}
"""Their column types: times in int64 ns, the rest float64."""


def bar_inputs(blocks: list[DecodedBlock]) -> BarInputs | None:
    """Every block's inputs, its bars read as columns; None if the fast
    path does not apply (see the module docstring)."""
    views = [BlockView(block) for block in blocks]
    first = _first_bar(views)
    if first is None:
        return None
    layout = BarLayout.of(first)
    if layout is None:
        return None
    size = layout.size
    capacity = sum(int((view.lengths[view.inputs] == size).sum()) for view in views)  # bars at most
    columns: dict[str, np.ndarray] = {name: np.empty(capacity, dtype=DTYPES[name]) for name in NAMES}
    row = 0
    plans: list[list[int | Event]] = []  # per block, in input order: a run of n bars (n), or an event
    payloads: list[memoryview] = []  # per block, its bars' payloads back to back
    # Block by block, so each block's records are checked and read while in cache.
    for view in views:
        rows, records = layout.find(view)
        table = records.view(layout.dtype).ravel()
        for name in NAMES:
            columns[name][row : row + len(table)] = table[name]
        row += len(table)
        payloads.append(memoryview(records.reshape(-1).data))
        is_bar = np.zeros(len(view.lengths), dtype=bool)
        is_bar[rows] = True
        if is_bar[view.inputs].all():  # the usual block: every input is a bar
            plans.append([len(view.inputs)] if len(view.inputs) else [])
            continue
        plan: list[int | Event] = []
        for i in view.inputs.tolist():
            if is_bar[i]:
                if plan and isinstance(plan[-1], int):
                    plan[-1] += 1
                else:
                    plan.append(1)
                continue
            event = view.block.event(i)
            if type(event) is Bar:
                return None  # a bar of another instrument or layout
            plan.append(event)
        plans.append(plan)
    timeline = columns["ts"][:row]
    if len(timeline) > 1 and not (np.diff(timeline) > 0).all():
        return None  # let replay feed them one by one and report where time goes back
    o, h, lo, c, v = (columns[name][:row] for name in FIELDS)
    series = InstrumentSeries(first.instrument, first.interval, o, h, lo, c, v, np.ones(row, dtype=bool))
    market = MarketSeries(timeline, {first.instrument: series})
    steps: list[list[Step]] = []
    row = 0
    for plan, block_payloads in zip(plans, payloads, strict=True):
        out: list[Step] = []
        at = 0  # bytes into this block's payloads
        for item in plan:
            if isinstance(item, int):
                run_payloads = block_payloads[at : at + item * size]
                out.append(BarBlock(series, market.timeline, row, row + item, run_payloads, market.stamps))
                row += item
                at += item * size
            else:
                out.append(item)
        steps.append(out)
    return BarInputs(market, steps)


def _records(view: BlockView, rows: np.ndarray, size: int) -> np.ndarray:
    """Records ``rows`` (each ``size`` bytes) as a (rows, size) byte array.

    The body is viewed as one ``size``-byte item starting at every byte, so
    gathering rows of that view copies each record whole (a 2-D gather of a
    sliding window copies it byte by byte, ~1.6x slower)."""
    if not len(rows) or len(view.body) < size:
        return np.empty((0, size), dtype=np.uint8)
    items = len(view.body) - size + 1
    windows = np.ndarray(buffer=view.body, dtype=np.dtype((np.void, size)), shape=(items,), strides=(1,))
    return windows[view.starts[rows]].view(np.uint8).reshape(-1, size)


def _first_bar(views: list[BlockView]) -> Bar | None:
    """The first bar input, looked for in the first block only: a backtest's
    first bar follows its header and instrument definitions there, and a
    journal without one (a book session builds its bars) is not for us."""
    for i in views[0].inputs.tolist() if views else ():
        event = views[0].block.event(i)
        if type(event) is Bar:
            return event
    return None
