"""A journal's bar inputs read as columns, without building a Bar per bar.

A backtest journal of one instrument is mostly bar inputs whose payloads
share one fixed layout (:meth:`core.series.BarBlock.encoded` writes it).
Their values are read with numpy straight from the stored payloads, after
every constant byte of every record is checked, into the run's
:class:`MarketSeries`; replay then feeds them as :class:`BarBlock` runs. A
journal this does not fit (several instruments, another layout, bar times
not strictly increasing, a book session) gets None, and replay decodes its
events one by one as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.codec import DEFAULT_CODEC
from core.events import Bar, Event
from core.series import FIELDS, BarBlock, InstrumentSeries, MarketSeries, bar_layout

Step = BarBlock | Event
"""What replay feeds: a run of consecutive bars, or one other input."""


@dataclass
class BarInputs:
    """The journal's bars as a series, and per stored block the inputs to feed."""

    market: MarketSeries
    steps: list[list[Step]]


class _Block:
    """Numpy views of one stored block's columns."""

    def __init__(self, body: memoryview, lengths: object, offsets: np.ndarray, flags: bytes) -> None:
        self.body = np.frombuffer(body, dtype=np.uint8)
        self.lengths = np.frombuffer(lengths, dtype=np.uint32)  # type: ignore[call-overload]
        self.starts = offsets[:-1]
        self.inputs = np.flatnonzero(np.frombuffer(flags, dtype=np.uint8))

    def decode(self, i: int) -> Event:
        start = int(self.starts[i])
        return DEFAULT_CODEC.decode(self.body[start : start + int(self.lengths[i])].tobytes())


def bar_inputs(blocks: list[tuple[memoryview, object, np.ndarray, bytes]]) -> BarInputs | None:
    """Read ``(payloads, lengths, offsets, flags)`` of every block (offsets:
    where each payload starts, and the end, as ``DecodedBlock.offsets``);
    None if the fast path does not apply (see the module docstring)."""
    views = [_Block(*block) for block in blocks]
    first = _first_bar(views)
    if first is None:
        return None
    template = bar_layout(first.instrument, first.interval)
    if template is None:
        return None
    size = template.dtype.itemsize
    constant = np.ones(size, dtype=bool)  # the bytes that are not values
    for name in ("ts", *FIELDS):
        offset = template.dtype.fields[name][1]  # type: ignore[index]
        constant[offset : offset + 8] = False
    expected = np.frombuffer(template.tobytes(), dtype=np.uint8)[constant]
    candidates = [view.inputs[view.lengths[view.inputs] == size] for view in views]
    capacity = sum(map(len, candidates))
    names = ("ts", *FIELDS)
    columns = {name: np.empty(capacity, dtype=np.int64 if name == "ts" else np.float64) for name in names}
    row = 0
    plans: list[list[int | Event]] = []  # per block, in input order: a run of n bars (n), or an event
    payloads: list[memoryview] = []  # per block, its bars' payloads back to back
    # Block by block, so each block's records are checked and read while in cache.
    for view, rows in zip(views, candidates, strict=True):
        records = _records(view, rows, size)
        fits = (records[:, constant] == expected).all(axis=1)  # every constant byte is the layout's
        if not fits.all():
            records = records[fits]
        table = records.view(template.dtype).ravel()
        for name in names:
            columns[name][row : row + len(table)] = table[name]
        row += len(table)
        payloads.append(memoryview(records.reshape(-1).data))
        is_bar = np.zeros(len(view.lengths), dtype=bool)
        is_bar[rows[fits]] = True
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
            event = view.decode(i)
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


def _records(view: _Block, rows: np.ndarray, size: int) -> np.ndarray:
    """Records ``rows`` (each ``size`` bytes) as a (rows, size) byte array.

    The body is viewed as one ``size``-byte item starting at every byte, so
    gathering rows of that view copies each record whole (a 2-D gather of a
    sliding window copies it byte by byte, ~1.6x slower)."""
    if not len(rows) or len(view.body) < size:
        return np.empty((0, size), dtype=np.uint8)
    items = len(view.body) - size + 1
    windows = np.ndarray(buffer=view.body, dtype=np.dtype((np.void, size)), shape=(items,), strides=(1,))
    return windows[view.starts[rows]].view(np.uint8).reshape(-1, size)


def _first_bar(views: list[_Block]) -> Bar | None:
    """The first bar input, looked for in the first block only: a backtest's
    first bar follows its header and instrument definitions there, and a
    journal without one (a book session builds its bars) is not for us."""
    for i in views[0].inputs.tolist() if views else ():
        event = views[0].decode(i)
        if type(event) is Bar:
            return event
    return None
