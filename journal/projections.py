"""Read models built from a journal, as pandas DataFrames.

Everything a report shows comes from here, never from live actors, so any
journal can be reported on. The equity curve is a pure function of journaled
events: it replays fills, funding and closes through the same accounting
(:class:`core.portfolio.Portfolio`) the run used, one point per time step.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from core.codec import EventDecodeError
from core.events import (
    Bar,
    Event,
    FundingApplied,
    InstrumentDefinition,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    PositionChanged,
    RiskRejected,
    RunStarted,
    SubmitOrder,
)
from core.instruments import point_value
from core.portfolio import Portfolio
from journal.bar_columns import NAMES, BarLayout, BlockView
from journal.blocks import DecodedBlock, stored_blocks
from journal.errors import JournalDecodeError
from journal.reader import JournalReader

_ORDER_KINDS = ["submit", "acc", "rej", "trig", "fill", "cxl", "exp", "risk"]


@dataclass
class Projections:
    """All read models of one journal, built in one pass over it."""

    header: RunStarted
    config: dict[str, Any]
    equity: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    trades: pd.DataFrame
    positions: pd.DataFrame
    rejections: pd.DataFrame
    funding: pd.DataFrame
    initial_cash: float
    bar_interval: int
    bars: dict[str, pd.DataFrame]
    """Per instrument, the bars the run saw: open, high, low, close, volume
    indexed by close time (UTC)."""

    @classmethod
    def build(cls, reader: JournalReader) -> Projections:
        return _Builder(reader).run()


class _Builder:
    """One pass over a journal's blocks, in seq order.

    The bars of the first instrument whose payloads have a fixed layout are
    read as numpy columns (:class:`journal.bar_columns.BarLayout`, which
    checks every constant byte) and applied a run at a time; every other
    record is decoded and applied as an event. Both paths give the same
    frames, float for float."""

    def __init__(self, reader: JournalReader) -> None:
        self.reader = reader

    def run(self) -> Projections:
        header = self.reader.event(1)
        if not isinstance(header, RunStarted):
            raise ValueError(f"{self.reader.path}: seq 1 is not a run header")
        config = msgspec.json.decode(header.config)
        self.portfolio = portfolio = Portfolio(
            float(config.get("initial_cash", 10_000.0)), config.get("currency", "USD")
        )
        self.curve = _EquityCurve(portfolio)
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.funding: list[dict[str, Any]] = []
        self.bars: dict[str, _BarHistory] = {}
        self.interval = 0
        self.pending: int | None = None  # time of the last bar's step, until the step closes
        layout: BarLayout | None = None
        seen_bar = False
        for block in stored_blocks(self.reader):
            try:
                if layout is None:
                    events = block.events
                    self._apply_events(block.first, events)
                    if not seen_bar:
                        bar = next((event for event in events if type(event) is Bar), None)
                        if bar is not None:
                            seen_bar = True
                            layout = BarLayout.of(bar)
                else:
                    self._apply_block(block, layout)
            except EventDecodeError as exc:
                raise JournalDecodeError(f"{self.reader.path}: block at seq {block.first}: {exc}") from exc
        if self.pending is not None:
            self.curve.close(self.pending)
        equity = self.curve.frame()
        if len(equity):
            peak = equity["equity"].cummax()
            equity["drawdown"] = equity["equity"] / peak - 1.0
        else:
            equity["drawdown"] = pd.Series(dtype=float)
        bars = {instrument: history.frame() for instrument, history in self.bars.items()}
        fills_df = pd.DataFrame(self.fills)
        if len(fills_df):
            fills_df["exec_time"] = _times(fills_df["exec_time"])
        return Projections(
            header,
            config,
            equity,
            _orders_frame(self.orders),
            fills_df,
            round_trips(
                self.fills,
                {k: point_value(v) for k, v in portfolio.instruments.items()},
                bars,
            ),
            pd.DataFrame(self.positions),
            pd.DataFrame(
                self.rejections,
                columns=["seq", "ts", "source", "strategy", "order_id", "instrument", "reason", "detail"],
            ),
            pd.DataFrame(self.funding),
            portfolio.initial_cash,
            self.interval,
            bars,
        )

    # -- a block -----------------------------------------------------------------

    def _apply_block(self, block: DecodedBlock, layout: BarLayout) -> None:
        """A block whose bars of ``layout`` are read as columns."""
        at, records = layout.find(BlockView(block))
        if not len(at):
            self._apply_events(block.first, block.events)
            return
        columns = layout.columns(records)
        times, closes = columns["ts"], columns["close"]
        self._history(layout.instrument).extend(columns)
        increasing = bool((times[1:] > times[:-1]).all())
        stamps = times.tolist()
        is_other = np.ones(len(block), dtype=bool)
        is_other[at] = False
        others = np.flatnonzero(is_other).tolist()
        row = 0  # the next bar, as a row of the columns
        for k, (i, event) in enumerate(zip(others, block.events_at(others), strict=True)):
            stop = i - k  # bars before record i
            if stop > row:
                self._apply_bar_rows(layout, stamps, times, closes, row, stop, increasing)
                row = stop
            self._apply_event(block.first + i, event)
        if row < len(stamps):
            self._apply_bar_rows(layout, stamps, times, closes, row, len(stamps), increasing)

    def _apply_bar_rows(
        self,
        layout: BarLayout,
        stamps: list[int],
        times: np.ndarray,
        closes: np.ndarray,
        row: int,
        stop: int,
        increasing: bool,
    ) -> None:
        """Bars ``row:stop`` of a block's columns (``stamps``: ``times`` as a
        list), each the last of its time step, in time order if
        ``increasing``; as :meth:`_apply_bar` would apply them one by one."""
        instrument, pending, curve = layout.instrument, self.pending, self.curve
        if not (increasing and (pending is None or stamps[row] > pending) and curve.moving(instrument)):
            for ts, close in zip(stamps[row:stop], closes[row:stop].tolist(), strict=True):
                self._apply_bar(instrument, layout.interval, ts, close, True)
            return
        marks = self.portfolio.marks
        start = row
        if pending is not None:
            if row and pending == stamps[row - 1] and marks[instrument] == closes[row - 1]:
                start = row - 1  # the pending step is the row before: close it with the run
            else:
                curve.close(pending)
        curve.close_rows(times, closes, start, stop - 1)  # every bar but the last closes a step
        marks[instrument] = float(closes[stop - 1])
        self.interval = layout.interval
        self.pending = stamps[stop - 1]

    # -- bars --------------------------------------------------------------------

    def _apply_bar(self, instrument: str, interval: int, ts: int, close: float, last: bool) -> None:
        curve, portfolio = self.curve, self.portfolio
        curve.moving(instrument)
        if self.pending is not None and ts > self.pending:
            curve.close(self.pending)
            self.pending = None
        portfolio.marks[instrument] = close
        if portfolio.rate_sources:
            portfolio.update_rate(instrument, close)
        self.interval = interval
        if last:
            self.pending = ts  # the step closes once everything at this time is applied

    def _apply_decoded_bar(self, bar: Bar) -> None:
        self._history(bar.instrument).add(bar)
        self._apply_bar(bar.instrument, bar.interval, bar.ts, bar.close, bar.last)

    def _apply_bar_arrays(self, instrument: str, interval: int, times: np.ndarray, closes: np.ndarray) -> bool:
        """Bars of one instrument, each the last of its time step, as
        :meth:`_apply_bar` would apply them one by one; False (nothing
        applied) unless they are in time order after the pending step and
        the curve can keep their steps as marks."""
        pending = self.pending
        if pending is not None and int(times[0]) <= pending:
            return False
        if not bool((times[1:] > times[:-1]).all()) or not self.curve.moving(instrument):
            return False
        if pending is not None:
            self.curve.close(pending)
        self.curve.close_rows(times, closes, 0, len(times) - 1)  # every bar but the last closes a step
        self.portfolio.marks[instrument] = float(closes[-1])
        self.interval = interval
        self.pending = int(times[-1])
        return True

    def _history(self, instrument: str) -> _BarHistory:
        history = self.bars.get(instrument)
        if history is None:
            history = self.bars[instrument] = _BarHistory()
        return history

    # -- events ------------------------------------------------------------------

    def _apply_events(self, first: int, events: list[Event]) -> None:
        """Records ``first, first + 1, ...``, decoded; runs of bars of one
        instrument go through :meth:`_apply_bar_arrays` when they can."""
        start = 0
        for at in (*(i for i, event in enumerate(events) if type(event) is not Bar), len(events)):
            if at - start > 1:
                run: list[Bar] = events[start:at]  # type: ignore[assignment]
                if not self._apply_bar_list(run):
                    for bar in run:
                        self._apply_decoded_bar(bar)
            elif at > start:
                self._apply_decoded_bar(events[start])  # type: ignore[arg-type]
            start = at + 1
            if at < len(events):
                self._apply_event(first + at, events[at])

    def _apply_bar_list(self, run: list[Bar]) -> bool:
        instrument = run[0].instrument
        if not (all(map(_LAST, run)) and all(map(instrument.__eq__, map(_INSTRUMENT, run)))):
            return False
        columns = {
            name: np.fromiter(
                map(attrgetter(name), run), dtype=np.int64 if name == "ts" else np.float64, count=len(run)
            )
            for name in NAMES
        }
        if not self._apply_bar_arrays(instrument, run[-1].interval, columns["ts"], columns["close"]):
            return False
        self._history(instrument).extend(columns)
        return True

    def _apply_event(self, seq: int, event: Event) -> None:
        """One record other than a bar read as columns."""
        cls = type(event)
        if cls is Bar:
            self._apply_decoded_bar(event)  # type: ignore[arg-type]
            return
        if self.pending is not None and event.ts > self.pending:
            self.curve.close(self.pending)
            self.pending = None
        if cls is OrderFilled:
            fill: OrderFilled = event  # type: ignore[assignment]
            self.curve.changing()
            change = self.portfolio.apply_fill(fill)
            self.fills.append(_fill_row(seq, fill, change.realized))
            _order_fill(self.orders, fill)
        elif cls is InstrumentDefinition:
            self.curve.changing()
            self.portfolio.add_instrument(event)  # type: ignore[arg-type]
        elif cls is FundingApplied:
            self.curve.changing()
            self.portfolio.apply_funding(event)  # type: ignore[arg-type]
            self.funding.append({"seq": seq, **msgspec.structs.asdict(event)})
        elif cls is SubmitOrder:
            _order_submit(self.orders, seq, event)  # type: ignore[arg-type]
        elif cls is PositionChanged:
            self.positions.append({"seq": seq, **msgspec.structs.asdict(event)})
        elif cls in (OrderAccepted, OrderTriggered, OrderCanceled, OrderExpired, OrderRejected, RiskRejected):
            _order_status(self.orders, seq, event)
            if cls in (OrderRejected, RiskRejected):
                self.rejections.append(
                    {
                        "seq": seq,
                        "ts": event.ts,
                        "source": "risk" if cls is RiskRejected else "venue",
                        **_reason(event),
                    }
                )


REJECTION_COLUMNS = ["seq", "ts", "source", "strategy", "order_id", "instrument", "reason", "detail"]

_LAST = attrgetter("last")
_DTYPES: dict[str, type] = {name: np.int64 if name == "ts" else np.float64 for name in NAMES}
_INSTRUMENT = attrgetter("instrument")


class _Column:
    """A growing numpy column: values appended one at a time or as arrays
    (either stays cheap; a list of chunks would cost a concatenation of
    tens of thousands of pieces at the end)."""

    __slots__ = ("_buffer", "_size", "_tail")

    def __init__(self, dtype: type) -> None:
        self._buffer: np.ndarray = np.empty(1024, dtype=dtype)
        self._size = 0
        self._tail: list[Any] = []  # appended one at a time, not yet in the buffer

    def __bool__(self) -> bool:
        return bool(self._size or self._tail)

    def append(self, value: Any) -> None:
        self._tail.append(value)

    def extend(self, values: np.ndarray) -> None:
        if self._tail:
            self._flush()
        self._room(len(values))[:] = values

    def fill(self, value: Any, n: int) -> None:
        """``n`` times ``value``."""
        if self._tail:
            self._flush()
        self._room(n)[:] = value

    def view(self) -> np.ndarray:
        """The values so far (a view: valid until the column changes)."""
        if self._tail:
            self._flush()
        return self._buffer[: self._size]

    def array(self) -> np.ndarray:
        """The values so far (a copy)."""
        return self.view().copy()

    def clear(self) -> None:
        self._size = 0
        self._tail.clear()

    def _room(self, n: int) -> np.ndarray:
        """The next ``n`` slots, now counted in."""
        size = self._size
        if size + n > len(self._buffer):
            grown = np.empty(max(2 * len(self._buffer), size + n), dtype=self._buffer.dtype)
            grown[:size] = self._buffer[:size]
            self._buffer = grown
        self._size = size + n
        return self._buffer[size : size + n]

    def _flush(self) -> None:
        tail = self._tail
        self._room(len(tail))[:] = tail
        tail.clear()


class _BarHistory:
    """One instrument's bars as columns: close times (ns) and the values of
    :data:`core.series.FIELDS`, in the order they were added."""

    __slots__ = ("columns",)

    def __init__(self) -> None:
        self.columns = {name: _Column(_DTYPES[name]) for name in NAMES}

    def add(self, bar: Bar) -> None:
        for name, column in self.columns.items():
            column.append(getattr(bar, name))

    def extend(self, columns: dict[str, np.ndarray]) -> None:
        for name, column in self.columns.items():
            column.extend(columns[name])

    def frame(self) -> pd.DataFrame:
        """Indexed by close time (UTC), in time order (a block's column bars
        are added before any bar of the same instrument decoded one by one
        in that block)."""
        values = {name: column.array() for name, column in self.columns.items()}
        times = values.pop("ts")
        if len(times) > 1 and not bool((times[1:] >= times[:-1]).all()):
            order = np.argsort(times, kind="stable")
            times, values = times[order], {name: value[order] for name, value in values.items()}
        frame = pd.DataFrame(values, index=pd.to_datetime(times, unit="ns", utc=True))
        frame.index.name = "time"
        return frame


class _EquityCurve:
    """The account at the close of each time step, as the run's accounting
    (:class:`core.portfolio.Portfolio`) values it.

    Steps are valued lazily: while only one instrument's mark moves (the
    usual stretch between two fills), closed steps are kept as (time, mark)
    and valued together when anything else is about to change, by running
    the accounting once with that mark as an array. Its arithmetic is
    elementwise, so each value is the float a step-by-step valuation gives.
    Invariant: since the first kept step, the portfolio changed only in the
    mark of ``_moving``, whose values at the kept steps are ``_marks``
    followed by the rows ``_rows`` of the columns ``_columns`` (a stretch of
    a block's bars, kept as a view until it is valued).
    """

    NAMES = ("equity", "cash", "exposure", "in_market")

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.times = _Column(np.int64)
        self.columns = {name: _Column(np.float64) for name in self.NAMES}
        self._moving: str | None = None
        self._times = _Column(np.int64)
        self._marks = _Column(np.float64)
        self._columns: tuple[np.ndarray, np.ndarray] | None = None  # (times, marks) of a block's bars
        self._rows = (0, 0)

    def moving(self, instrument: str) -> bool:
        """``instrument``'s mark is about to move; True if steps closed
        meanwhile are kept for valuing later (its mark is known and sets no
        exchange rate), False if they will be valued one by one."""
        if self._moving == instrument:
            return True
        self.changing()
        portfolio = self.portfolio
        if instrument in portfolio.marks and instrument not in portfolio.rate_sources:
            self._moving = instrument
            return True
        return False

    def changing(self) -> None:
        """The portfolio is about to change other than by a moving mark."""
        if self._times or self._columns is not None:
            self._value_kept()
        self._moving = None

    def close(self, ts: int) -> None:
        """The step at ``ts`` closes with the portfolio as it is."""
        if self._moving is not None:
            self._keep_rows()
            self._times.append(ts)
            self._marks.append(self.portfolio.marks[self._moving])
            return
        portfolio = self.portfolio
        self.times.append(ts)
        equity, cash, gross = portfolio.equity(), portfolio.cash(), portfolio.gross_exposure()
        columns = self.columns
        columns["equity"].append(equity)
        columns["cash"].append(cash)
        columns["exposure"].append(gross)
        columns["in_market"].append(self._in_market())

    def close_rows(self, times: np.ndarray, marks: np.ndarray, start: int, stop: int) -> None:
        """Steps at ``times[start:stop]`` (int64 ns) close with the moving
        instrument's mark at ``marks[start:stop]`` (after :meth:`moving`
        returned True); rows that continue the kept ones are not copied."""
        if stop <= start:
            return
        kept = self._columns
        if kept is not None and kept[0] is times and self._rows[1] == start:
            self._rows = (self._rows[0], stop)
            return
        self._keep_rows()
        self._columns = (times, marks)
        self._rows = (start, stop)

    def frame(self) -> pd.DataFrame:
        self.changing()
        equity = pd.DataFrame(
            {name: column.array() for name, column in self.columns.items()},
            index=pd.to_datetime(self.times.array(), unit="ns", utc=True),
        )
        equity.index.name = "time"
        return equity

    def _keep_rows(self) -> None:
        """Copy the kept rows after the kept marks."""
        if self._columns is not None:
            (times, marks), (start, stop) = self._columns, self._rows
            self._times.extend(times[start:stop])
            self._marks.extend(marks[start:stop])
            self._columns = None

    def _value_kept(self) -> None:
        portfolio = self.portfolio
        instrument = self._moving
        assert instrument is not None
        if self._columns is not None and not self._times:
            (times, marks), (start, stop) = self._columns, self._rows
            times, marks = times[start:stop], marks[start:stop]
        else:
            self._keep_rows()
            times, marks = self._times.view(), self._marks.view()
        current = portfolio.marks[instrument]
        portfolio.marks[instrument] = marks  # type: ignore[assignment]
        try:
            equity, gross = portfolio.equity(), portfolio.gross_exposure()
        finally:
            portfolio.marks[instrument] = current
        n = len(times)
        self.times.extend(times)
        columns = self.columns
        for name, value in (
            ("equity", equity),
            ("cash", portfolio.cash()),
            ("exposure", gross),
            ("in_market", self._in_market()),
        ):
            if type(value) is np.ndarray:
                columns[name].extend(value)
            else:
                columns[name].fill(value, n)
        self._times.clear()
        self._marks.clear()
        self._columns = None

    def _in_market(self) -> float:
        return 1.0 if any(position.quantity != 0.0 for position in self.portfolio.positions.values()) else 0.0


def _reason(event: Any) -> dict[str, Any]:
    return {
        "strategy": event.strategy,
        "order_id": event.order_id,
        "instrument": event.instrument,
        "reason": event.reason,
        "detail": event.detail,
    }


def _fill_row(seq: int, fill: OrderFilled, realized: float) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": fill.ts,
        "exec_time": fill.exec_ts,  # ns; a timestamp column in the frame
        "strategy": fill.strategy,
        "order_id": fill.order_id,
        "fill_id": fill.fill_id,
        "instrument": fill.instrument,
        "side": fill.side,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "liquidity": fill.liquidity,
        "slippage": fill.slippage,
        "slippage_model": fill.slippage_model,
        "fee_model": fill.fee_model,
        "leaves": fill.leaves,
        "realized": realized,
    }


def _order_submit(orders: dict[str, dict[str, Any]], seq: int, cmd: SubmitOrder) -> None:
    orders[cmd.order_id] = {
        "order_id": cmd.order_id,
        "seq": seq,
        "submitted": cmd.ts,  # ns; a timestamp column in the frame
        "strategy": cmd.strategy,
        "instrument": cmd.instrument,
        "side": cmd.side,
        "type": cmd.order_type,
        "quantity": cmd.quantity,
        "price": cmd.price or np.nan,
        "trigger_price": cmd.trigger_price or np.nan,
        "tif": cmd.tif,
        "parent_id": cmd.parent_id,
        "status": "new",
        "filled": 0.0,
        "avg_price": np.nan,
        "reason": "",
    }


STATUS = {
    OrderAccepted: "accepted",
    OrderTriggered: "triggered",
    OrderCanceled: "canceled",
    OrderExpired: "expired",
    OrderRejected: "rejected",
    RiskRejected: "risk_rejected",
}


def _order_status(orders: dict[str, dict[str, Any]], seq: int, event: Event) -> None:
    row = orders.get(event.order_id)  # type: ignore[attr-defined]
    if row is None:
        return
    status = STATUS[type(event)]
    if status == "triggered" and row["status"] == "partially_filled":
        return
    row["status"] = status
    row["reason"] = getattr(event, "reason", "")


def _order_fill(orders: dict[str, dict[str, Any]], fill: OrderFilled) -> None:
    row = orders.get(fill.order_id)
    if row is None:
        return
    filled = row["filled"] + fill.quantity
    previous = 0.0 if np.isnan(row["avg_price"]) else row["avg_price"] * row["filled"]
    row["avg_price"] = (previous + fill.price * fill.quantity) / filled
    row["filled"] = filled
    row["status"] = "filled" if fill.leaves == 0.0 else "partially_filled"


def _orders_frame(orders: dict[str, dict[str, Any]]) -> pd.DataFrame:
    columns = [
        "order_id",
        "seq",
        "submitted",
        "strategy",
        "instrument",
        "side",
        "type",
        "quantity",
        "price",
        "trigger_price",
        "tif",
        "parent_id",
        "status",
        "filled",
        "avg_price",
        "reason",
    ]
    frame = pd.DataFrame(list(orders.values()), columns=columns)
    frame["submitted"] = _times(frame["submitted"])
    return frame


TRADE_COLUMNS = [
    "strategy",
    "instrument",
    "side",
    "size",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "pnl",
    "gross_pnl",
    "fees",
    "return_pct",
    "bars",
    "duration",
    "mae",
    "mfe",
    "open",
]


def round_trips(
    fills: list[dict[str, Any]], point_values: dict[str, float], bars: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """Round-trip trades per (strategy, instrument): from flat to flat (a
    flip closes one trip and opens the next). ``gross_pnl`` is the realized
    PnL the accounting booked on the trip's closing fills (so point values and
    inverse contracts are right); ``pnl`` is net of the trip's fees;
    ``mae``/``mfe`` are the worst/best unrealized PnL (money, linear
    approximation for inverse) seen on bar extremes while the trip was open:
    the bars closing after entry, up to and including the exit time."""
    trips: list[dict[str, Any]] = []
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for fill in fills:
        key = (fill["strategy"], fill["instrument"])
        signed = fill["quantity"] if fill["side"] == "buy" else -fill["quantity"]
        trip = state.get(key)
        if trip is None:
            state[key] = _open_trip(fill, signed)
            continue
        qty = trip["qty"]
        if (qty > 0) == (signed > 0):
            total = abs(qty) + abs(signed)
            trip["entry_price"] = (trip["entry_price"] * abs(qty) + fill["price"] * abs(signed)) / total
            trip["qty"] = qty + signed
            trip["size"] = max(trip["size"], abs(trip["qty"]))
            trip["fees"] += fill["fee"]
            continue
        closed = min(abs(signed), abs(qty))
        fee_share = fill["fee"] * closed / abs(signed)
        trip["gross"] += fill["realized"]
        trip["exit_value"] += closed * fill["price"]
        trip["exit_qty"] += closed
        trip["fees"] += fee_share
        if abs(signed) < abs(qty) - 1e-12 * abs(qty):
            trip["qty"] = qty + signed
            continue
        trips.append(_close_trip(trip, fill["exec_time"], point_values))
        del state[key]
        if abs(signed) > abs(qty) + 1e-12 * abs(qty):
            opened = _open_trip(fill, signed + qty)
            opened["fees"] = fill["fee"] - fee_share
            state[key] = opened
    trips.extend(_close_trip(trip, None, point_values) for trip in state.values())
    frame = pd.DataFrame(trips, columns=[*TRADE_COLUMNS, "_scale"])
    _excursions(frame, bars)
    entry, exit = _times(frame["entry_time"]), _times(frame["exit_time"])
    frame["entry_time"], frame["exit_time"], frame["duration"] = entry, exit, exit - entry
    return frame.drop(columns="_scale")


def _excursions(trips: pd.DataFrame, bars: dict[str, pd.DataFrame]) -> None:
    """Fill ``bars``, ``mae`` and ``mfe`` of ``trips`` (times still integer
    ns; ``_scale``: size times point value), instrument by instrument with
    one search and one max/min reduction over each bar history."""
    bars_held = np.zeros(len(trips), dtype=np.int64)
    mae = np.zeros(len(trips))
    mfe = np.zeros(len(trips))
    instruments = trips["instrument"].to_numpy(dtype=object)
    for instrument, frame in bars.items():
        times = pd.DatetimeIndex(frame.index).asi8
        highs, lows = frame["high"].to_numpy(), frame["low"].to_numpy()
        rows = np.flatnonzero(instruments == instrument)
        if not len(rows) or not len(times):
            continue
        entry = trips["entry_time"].to_numpy(dtype=np.int64)[rows]
        exit = trips["exit_time"].to_numpy(dtype=np.int64)[rows]
        lo = np.searchsorted(times, entry, side="right")
        hi = np.where(exit == NO_TIME, len(times), np.searchsorted(times, exit, side="right"))
        held = np.maximum(hi - lo, 0)
        bars_held[rows] = held
        some = held > 0
        if not some.any():
            continue
        rows, lo, hi = rows[some], lo[some], hi[some]
        top, bottom = _range_max(highs, lo, hi), -_range_max(-lows, lo, hi)
        long = trips["side"].to_numpy(dtype=object)[rows] == "long"
        direction = np.where(long, 1.0, -1.0)
        best, worst = np.where(long, top, bottom), np.where(long, bottom, top)
        entry_price = trips["entry_price"].to_numpy(dtype=np.float64)[rows]
        scale = trips["_scale"].to_numpy(dtype=np.float64)[rows]
        mfe[rows] = direction * (best - entry_price) * scale
        mae[rows] = direction * (worst - entry_price) * scale
    trips["bars"] = bars_held
    trips["mae"] = np.minimum(mae, 0.0)
    trips["mfe"] = np.maximum(mfe, 0.0)


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values[lo[i]:hi[i]].max()`` for each i (every range non-empty)."""
    padded = np.append(values, values[-1])  # reduceat needs every index in range; hi may be len(values)
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2], bounds[1::2] = lo, hi
    return np.maximum.reduceat(padded, bounds)[0::2]


NO_TIME = np.iinfo(np.int64).min
"""An open trip's exit time (NaT once converted)."""


def _times(ns: pd.Series) -> pd.Series:
    """Integer nanoseconds as UTC timestamps (NO_TIME: NaT)."""
    return pd.Series(pd.to_datetime(ns.to_numpy(dtype=np.int64), unit="ns", utc=True), index=ns.index)


def _open_trip(fill: dict[str, Any], signed: float) -> dict[str, Any]:
    return {
        "strategy": fill["strategy"],
        "instrument": fill["instrument"],
        "qty": signed,
        "size": abs(signed),
        "side": "long" if signed > 0 else "short",
        "entry_time": fill["exec_time"],
        "entry_price": fill["price"],
        "gross": 0.0,
        "exit_value": 0.0,
        "exit_qty": 0.0,
        "fees": fill["fee"],
    }


def _close_trip(trip: dict[str, Any], exit_time: int | None, point_values: dict[str, float]) -> dict[str, Any]:
    """The trip's row (``bars``, ``mae``, ``mfe`` and ``duration`` are
    filled in for all trips at once)."""
    exit_price = trip["exit_value"] / trip["exit_qty"] if trip["exit_qty"] else np.nan
    scale = trip["size"] * point_values.get(trip["instrument"], 1.0)
    net = trip["gross"] - trip["fees"]
    notional = trip["entry_price"] * scale
    return {
        "strategy": trip["strategy"],
        "instrument": trip["instrument"],
        "side": trip["side"],
        "size": trip["size"],
        "entry_time": trip["entry_time"],
        "exit_time": NO_TIME if exit_time is None else exit_time,
        "entry_price": trip["entry_price"],
        "exit_price": exit_price,
        "pnl": net,
        "gross_pnl": trip["gross"],
        "fees": trip["fees"],
        "return_pct": net / notional if notional else np.nan,
        "open": exit_time is None,
        "_scale": scale,
    }
