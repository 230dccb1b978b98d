"""Read models built from a journal, as pandas DataFrames.

Everything a report shows comes from here, never from live actors, so any
journal can be reported on. The equity curve is a pure function of journaled
events: it replays fills, funding and closes through the same accounting
(:class:`tidemark.core.accounts.portfolio.Portfolio`) the run used, one point per time step
(:mod:`journal.equity_curve`); round trips come from the fills
(:mod:`journal.round_trips`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tidemark.core.accounts.buying_power import REASONS as ACCOUNT_REASONS
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.codec import EventDecodeError
from tidemark.core.config import parse_stored, trading_start
from tidemark.core.events import (
    Bar,
    Event,
    FundingApplied,
    InstrumentDefinition,
    InterestCharged,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    PositionChanged,
    RiskRejected,
    RunStarted,
    StrategyCount,
    StrategyRecord,
    SubmitBracketOrder,
    SubmitOrder,
    TradingHalted,
)
from tidemark.core.instruments import point_value, settle_currency
from tidemark.journal.bar_columns import DTYPES, NAMES, BarLayout, BlockView
from tidemark.journal.blocks import DecodedBlock, stored_blocks
from tidemark.journal.columns import UTC_TIME, Column, event_dtypes, typed_frame, utc_times
from tidemark.journal.equity_curve import EquityCurve
from tidemark.journal.errors import JournalDecodeError, JournalEmptyError
from tidemark.journal.reader import JournalReader
from tidemark.journal.round_trips import round_trips


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
    interest: pd.DataFrame
    """Interest charged on borrowing (margin accounts), one row per charge."""
    halted: TradingHalted | None
    """The account's halt (equity reached zero), if it happened."""
    currency: str
    """The account currency: every ``*_account`` column and the equity curve."""
    instruments: dict[str, InstrumentDefinition]
    """The run's instruments as defined in the journal."""
    records: pd.DataFrame
    """Values strategies recorded (``ctx.record``): time (UTC), strategy, name, value."""
    counters: pd.DataFrame
    """Counts strategies kept (``ctx.count``): strategy, name, key, count (totals)."""
    rates: dict[str, float]
    """Each currency's rate into the account currency at the end of the run."""

    @classmethod
    def build(cls, reader: JournalReader) -> Projections:
        return Projector(reader.path).run(reader)


class Projector:
    """One pass over a journal's blocks, in seq order: :meth:`feed` each
    block (from a file, or as a writer commits it), then :meth:`finish`.

    The bars of the first instrument whose payloads have a fixed layout are
    read as numpy columns (:class:`journal.bar_columns.BarLayout`, which
    checks every constant byte) and applied a run at a time; every other
    record is decoded and applied as an event. Both paths give the same
    frames, float for float."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.started = False
        self.layout: BarLayout | None = None
        self.seen_bar = False

    def _start(self, header: Event) -> None:
        """The run header (seq 1) sets the account up."""
        if not isinstance(header, RunStarted):
            raise ValueError(f"{self.path}: seq 1 is not a run header")
        self.started = True
        self.header = header
        self.config = msgspec.json.decode(header.config)
        self.portfolio = Portfolio(
            float(self.config.get("initial_cash", 10_000.0)),
            self.config.get("currency", "USD"),
            snap_to_lot=self.config.get("version", 1) >= 2,
        )
        self.curve = EquityCurve(self.portfolio)
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.funding: list[dict[str, Any]] = []
        self.interest: list[dict[str, Any]] = []
        self.records: list[tuple[int, str, str, float]] = []
        self.counters: dict[tuple[str, str, str], int] = {}
        self.halted: TradingHalted | None = None
        self.bars: dict[str, _BarHistory] = {}
        self.interval = 0
        self.pending: int | None = None  # time of the last bar's step, until the step closes

    def run(self, reader: JournalReader) -> Projections:
        for block in stored_blocks(reader):
            self.feed(block)
        return self.finish()

    def feed(self, block: DecodedBlock) -> None:
        """The next block, in seq order (the first holds the header)."""
        try:
            if not self.started:
                if block.first != 1:
                    raise ValueError(f"{self.path}: the first block starts at seq {block.first}, not 1")
                self._start(block.event(0))
            layout = self.layout
            if layout is None:
                events = block.events
                self._apply_events(block.first, events)
                if not self.seen_bar:
                    bar = next((event for event in events if type(event) is Bar), None)
                    if bar is not None:
                        self.seen_bar = True
                        self.layout = BarLayout.of(bar)
            else:
                self._apply_block(block, layout)
        except EventDecodeError as exc:
            raise JournalDecodeError(f"{self.path}: block at seq {block.first}: {exc}") from exc

    def finish(self) -> Projections:
        """The read models of every block fed."""
        if not self.started:
            raise JournalEmptyError(f"{self.path}: the journal has no records (its run wrote nothing)")
        if self.pending is not None:
            self.curve.close(self.pending)
        equity = self.curve.frame()
        if self.config.get("warmup") is not None and len(equity):
            # The results start where trading did (the bars before only warmed up indicators).
            times = equity.index.to_numpy(dtype="datetime64[ns]").astype(np.int64)
            start = trading_start(parse_stored(self.config), times, self.interval)
            equity = equity[times >= start]
        if len(equity):
            values = equity["equity"]
            equity["drawdown"] = values / values.cummax() - 1.0
            # From the first step at or below zero equity on, no drawdown is defined.
            ruined = (values <= 0.0).cummax()
            equity.loc[ruined.to_numpy(), "drawdown"] = np.nan
        else:
            equity["drawdown"] = pd.Series(dtype=float)
        bars = {instrument: history.frame() for instrument, history in self.bars.items()}
        fills_df = typed_frame(self.fills, FILL_DTYPES)
        if len(fills_df):
            fills_df["exec_time"] = utc_times(fills_df["exec_time"])
        return Projections(
            self.header,
            self.config,
            equity,
            _orders_frame(self.orders),
            fills_df,
            round_trips(
                self.fills,
                {k: point_value(v) for k, v in self.portfolio.instruments.items()},
                bars,
                currencies={k: settle_currency(v) for k, v in self.portfolio.instruments.items()},
                inverse=frozenset(k for k, v in self.portfolio.instruments.items() if v.inverse),
            ),
            typed_frame(self.positions, POSITION_DTYPES),
            pd.DataFrame(self.rejections, columns=REJECTION_COLUMNS)
            if self.rejections
            else typed_frame([], REJECTION_DTYPES),
            typed_frame(self.funding, FUNDING_DTYPES),
            self.portfolio.initial_cash,
            self.interval,
            bars,
            pd.DataFrame(self.interest, columns=INTEREST_COLUMNS)
            if self.interest
            else typed_frame([], INTEREST_DTYPES),
            self.halted,
            self.portfolio.account_currency,
            dict(self.portfolio.instruments),
            _records_frame(self.records),
            typed_frame([(*key, count) for key, count in self.counters.items()], COUNTER_DTYPES),
            {currency: self.portfolio.rate(currency) for currency in self.portfolio.balances},
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
                self._apply_bar_rows(layout.instrument, layout.interval, stamps, times, closes, row, stop, increasing)
                row = stop
            self._apply_event(block.first + i, event)
        if row < len(stamps):
            self._apply_bar_rows(
                layout.instrument, layout.interval, stamps, times, closes, row, len(stamps), increasing
            )

    def _apply_bar_rows(
        self,
        instrument: str,
        interval: int,
        stamps: list[int],
        times: np.ndarray,
        closes: np.ndarray,
        row: int,
        stop: int,
        increasing: bool,
    ) -> None:
        """Bars ``row:stop`` of one instrument's columns (``stamps``: ``times``
        as a list), each the last of its time step, in time order if
        ``increasing``; as :meth:`_apply_bar` would apply them one by one."""
        pending, curve = self.pending, self.curve
        if not (increasing and (pending is None or stamps[row] > pending) and curve.moving(instrument)):
            for ts, close in zip(stamps[row:stop], closes[row:stop].tolist(), strict=True):
                self._apply_bar(instrument, interval, ts, close, True)
            return
        marks = self.portfolio.marks
        start = row
        if pending is not None:
            if row and pending == stamps[row - 1] and marks[instrument] == closes[row - 1]:
                start = row - 1  # the pending step is the row before: close it with the run
            else:
                curve.close(pending)
        curve.close_rows(instrument, times, closes, start, stop - 1)  # every bar but the last closes a step
        marks[instrument] = float(closes[stop - 1])
        self.interval = interval
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

    def _history(self, instrument: str) -> _BarHistory:
        history = self.bars.get(instrument)
        if history is None:
            history = self.bars[instrument] = _BarHistory()
        return history

    # -- events ------------------------------------------------------------------

    def _apply_events(self, first: int, events: list[Event]) -> None:
        """Records ``first, first + 1, ...``, decoded; runs of bars of one
        instrument go through :meth:`_apply_bar_rows` as columns."""
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
        """Decoded bars of one instrument, each the last of its time step,
        as columns; False (nothing applied) if the run is not of that shape."""
        instrument = run[0].instrument
        if not (all(map(_LAST, run)) and all(map(instrument.__eq__, map(_INSTRUMENT, run)))):
            return False
        columns = _as_columns(run)
        times = columns["ts"]
        self._history(instrument).extend(columns)
        increasing = bool((times[1:] > times[:-1]).all())
        self._apply_bar_rows(
            instrument, run[-1].interval, times.tolist(), times, columns["close"], 0, len(run), increasing
        )
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
            rate = self.portfolio.rate(fill.fee_currency or self.portfolio.account_currency)
            currency = settle_currency(self.portfolio.instruments[fill.instrument])
            settle = self.portfolio.rate(currency)
            change = self.portfolio.apply_fill(fill)
            self.fills.append(_fill_row(seq, fill, change.realized, rate, settle, currency))
            _order_fill(self.orders, fill)
        elif cls is InstrumentDefinition:
            self.curve.changing()
            self.portfolio.add_instrument(event)  # type: ignore[arg-type]
        elif cls is FundingApplied:
            self.curve.changing()
            self.portfolio.apply_funding(event)  # type: ignore[arg-type]
            rate = self.portfolio.rate(event.currency or self.portfolio.account_currency)  # type: ignore[attr-defined]
            self.funding.append(
                {"seq": seq, **msgspec.structs.asdict(event), "amount_account": event.amount * rate}  # type: ignore[attr-defined]
            )
        elif cls is InterestCharged:
            self.curve.changing()
            self.portfolio.apply_interest(event)  # type: ignore[arg-type]
            rate = self.portfolio.rate(event.currency)  # type: ignore[attr-defined]
            self.interest.append(
                {"seq": seq, **msgspec.structs.asdict(event), "amount_account": event.amount * rate}  # type: ignore[attr-defined]
            )
        elif cls is TradingHalted:
            self.halted = event  # type: ignore[assignment]
        elif cls is StrategyRecord:
            self.records.append((event.ts, event.strategy, event.name, event.value))  # type: ignore[attr-defined]
        elif cls is StrategyCount:
            key = (event.strategy, event.name, event.key)  # type: ignore[attr-defined]
            self.counters[key] = self.counters.get(key, 0) + event.n  # type: ignore[attr-defined]
        elif cls is SubmitOrder or cls is SubmitBracketOrder:
            _order_submit(self.orders, seq, event)  # type: ignore[arg-type]
        elif cls is PositionChanged:
            inst = self.portfolio.instruments.get(event.instrument)  # type: ignore[attr-defined]
            currency = settle_currency(inst) if inst is not None else self.portfolio.account_currency
            self.positions.append({"seq": seq, **msgspec.structs.asdict(event), "currency": currency})
        elif cls in (OrderAccepted, OrderTriggered, OrderCanceled, OrderExpired, OrderRejected, RiskRejected):
            _order_status(self.orders, seq, event)
            reason = getattr(event, "reason", "")
            if cls in (OrderRejected, RiskRejected) or (cls is OrderCanceled and reason in ACCOUNT_REASONS):
                source = "risk" if cls is RiskRejected else "account" if reason in ACCOUNT_REASONS else "venue"
                self.rejections.append({"seq": seq, "ts": event.ts, "source": source, **_reason(event)})


REJECTION_COLUMNS = ["seq", "ts", "source", "strategy", "order_id", "instrument", "reason", "detail"]
"""Refused orders: by the risk engine, the account (``source="account"``:
at submission, or canceled at fill time when the fill could not be paid),
or the venue."""

INTEREST_COLUMNS = [
    "seq",
    "ts",
    "strategy",
    "instrument",
    "borrowed",
    "rate",
    "since",
    "mark",
    "amount",
    "currency",
    "amount_account",
]

# The columns and dtypes of each result frame, which a run without any row
# (no trades, no funding) still has (:func:`journal.columns.typed_frame`).
FILL_DTYPES: dict[str, Any] = {
    "seq": "int64",
    "ts": "int64",
    "exec_time": UTC_TIME,
    "strategy": "str",
    "order_id": "str",
    "fill_id": "str",
    "instrument": "str",
    "side": "str",
    "quantity": "float64",
    "price": "float64",
    "fee": "float64",
    "fee_currency": "str",
    "fee_account": "float64",
    "liquidity": "str",
    "slippage": "float64",
    "slippage_model": "str",
    "fee_model": "str",
    "leaves": "float64",
    "realized": "float64",
    "currency": "str",
    "settle_rate": "float64",
    "realized_account": "float64",
}
POSITION_DTYPES = event_dtypes(PositionChanged, after={"currency": "str"})
FUNDING_DTYPES = event_dtypes(FundingApplied, after={"amount_account": "float64"})
INTEREST_DTYPES = event_dtypes(InterestCharged, after={"amount_account": "float64"})
REJECTION_DTYPES: dict[str, Any] = {name: "int64" if name in ("seq", "ts") else "str" for name in REJECTION_COLUMNS}
ORDER_DTYPES: dict[str, Any] = {
    "order_id": "str",
    "seq": "int64",
    "submitted": UTC_TIME,
    "strategy": "str",
    "instrument": "str",
    "side": "str",
    "type": "str",
    "quantity": "float64",
    "price": "float64",
    "trigger_price": "float64",
    "tif": "str",
    "parent_id": "str",
    "status": "str",
    "filled": "float64",
    "avg_price": "float64",
    "reason": "str",
}
RECORD_DTYPES: dict[str, Any] = {"time": UTC_TIME, "strategy": "str", "name": "str", "value": "float64"}
COUNTER_DTYPES: dict[str, Any] = {"strategy": "str", "name": "str", "key": "str", "count": "int64"}

_LAST = attrgetter("last")
_INSTRUMENT = attrgetter("instrument")


class _BarHistory:
    """One instrument's bars as columns: close times (ns) and the values of
    :data:`core.series.FIELDS`, in the order they were added. Bars decoded
    one by one wait in a list and join the columns a few thousand at a time."""

    __slots__ = ("_decoded", "columns")

    def __init__(self) -> None:
        self.columns = {name: Column(DTYPES[name]) for name in NAMES}
        self._decoded: list[Bar] = []

    def add(self, bar: Bar) -> None:
        decoded = self._decoded
        decoded.append(bar)
        if len(decoded) >= 4096:
            self._flush()

    def extend(self, columns: dict[str, np.ndarray]) -> None:
        self._flush()
        for name, column in self.columns.items():
            column.extend(columns[name])

    def frame(self) -> pd.DataFrame:
        """Indexed by close time (UTC), in time order (a block's column bars
        are added before any bar of the same instrument decoded one by one
        in that block)."""
        self._flush()
        values = {name: column.array() for name, column in self.columns.items()}
        times = values.pop("ts")
        if len(times) > 1 and not bool((times[1:] >= times[:-1]).all()):
            order = np.argsort(times, kind="stable")
            times, values = times[order], {name: value[order] for name, value in values.items()}
        frame = pd.DataFrame(values, index=pd.to_datetime(times, unit="ns", utc=True))
        frame.index.name = "time"
        return frame

    def _flush(self) -> None:
        decoded = self._decoded
        if decoded:
            columns = _as_columns(decoded)
            decoded.clear()
            for name, column in self.columns.items():
                column.extend(columns[name])


_FIELD = {name: attrgetter(name) for name in NAMES}


def _as_columns(bars: list[Bar]) -> dict[str, np.ndarray]:
    """Decoded bars as the columns :class:`BarLayout` reads (``NAMES``, ``DTYPES``)."""
    return {name: np.fromiter(map(_FIELD[name], bars), dtype=DTYPES[name], count=len(bars)) for name in NAMES}


def _records_frame(rows: list[tuple[int, str, str, float]]) -> pd.DataFrame:
    if not rows:
        return typed_frame(rows, RECORD_DTYPES)
    frame = pd.DataFrame(rows, columns=list(RECORD_DTYPES))
    frame["time"] = utc_times(frame["time"])
    return frame


def _reason(event: Any) -> dict[str, Any]:
    return {
        "strategy": event.strategy,
        "order_id": event.order_id,
        "instrument": event.instrument,
        "reason": event.reason,
        "detail": getattr(event, "detail", ""),
    }


def _fill_row(
    seq: int, fill: OrderFilled, realized: float, rate: float, settle_rate: float, currency: str
) -> dict[str, Any]:
    """One fill; ``rate`` converts its fee currency to the account currency
    at the fill's time (``fee_account``); ``realized`` is in the
    instrument's settlement currency, ``settle_rate`` converts it at the
    fill's time (``realized_account``: the seed's locked convention)."""
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
        "fee_currency": fill.fee_currency,
        "fee_account": fill.fee * rate,
        "liquidity": fill.liquidity,
        "slippage": fill.slippage,
        "slippage_model": fill.slippage_model,
        "fee_model": fill.fee_model,
        "leaves": fill.leaves,
        "realized": realized,
        "currency": currency,
        "settle_rate": settle_rate,
        "realized_account": realized * settle_rate,
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
    if not orders:
        return typed_frame([], ORDER_DTYPES)
    frame = pd.DataFrame(list(orders.values()), columns=columns)
    frame["submitted"] = utc_times(frame["submitted"])
    return frame
