"""Read models built from a journal, as pandas DataFrames.

Everything a report shows comes from here, never from live actors, so any
journal can be reported on. The equity curve is a pure function of journaled
events: it replays fills, funding and closes through the same accounting
(:class:`core.portfolio.Portfolio`) the run used, one point per time step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

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
from journal.reader import JournalReader

_ORDER_KINDS = ["submit", "acc", "rej", "trig", "fill", "cxl", "exp", "risk"]


def _ts(values: Iterable[int]) -> pd.DatetimeIndex:
    return pd.to_datetime(np.fromiter(values, dtype=np.int64), unit="ns", utc=True)


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

    @classmethod
    def build(cls, reader: JournalReader) -> Projections:
        return _Builder(reader).run()


class _Builder:
    def __init__(self, reader: JournalReader) -> None:
        self.reader = reader

    def run(self) -> Projections:
        import msgspec

        header = self.reader.event(1)
        if not isinstance(header, RunStarted):
            raise ValueError(f"{self.reader.path}: seq 1 is not a run header")
        config = msgspec.json.decode(header.config)
        portfolio = Portfolio(float(config.get("initial_cash", 10_000.0)), config.get("currency", "USD"))
        curve = _EquityCurve(portfolio)
        orders: dict[str, dict[str, Any]] = {}
        fills: list[dict[str, Any]] = []
        positions: list[dict[str, Any]] = []
        rejections: list[dict[str, Any]] = []
        funding: list[dict[str, Any]] = []
        bars_by_symbol: dict[str, tuple[list[int], list[float], list[float]]] = {}
        interval = 0
        pending: int | None = None

        def apply_bar(bar: Bar) -> None:
            nonlocal pending, interval
            curve.moving(bar.instrument)
            if pending is not None and bar.ts > pending:
                curve.close(pending)
                pending = None
            portfolio.marks[bar.instrument] = bar.close
            if portfolio.rate_sources:
                portfolio.update_rate(bar.instrument, bar.close)
            columns = bars_by_symbol.get(bar.instrument)
            if columns is None:
                columns = bars_by_symbol[bar.instrument] = ([], [], [])
            columns[0].append(bar.ts)
            columns[1].append(bar.high)
            columns[2].append(bar.low)
            interval = bar.interval
            if bar.last:
                pending = bar.ts  # the step closes once everything at this time is applied

        def apply_bar_run(run: list[Bar]) -> bool:
            """Apply bars of one instrument, each the last of its time step,
            in time order, as :func:`apply_bar` would one by one; False
            (nothing applied) if the run is not of that shape."""
            nonlocal pending, interval
            instrument = run[0].instrument
            if pending is not None and run[0].ts <= pending:
                return False
            if not (all(map(_LAST, run)) and all(map(instrument.__eq__, map(_INSTRUMENT, run)))):
                return False
            times = np.fromiter(map(_TS, run), dtype=np.int64, count=len(run))
            if not bool((times[1:] > times[:-1]).all()) or not curve.moving(instrument):
                return False
            if pending is not None:
                curve.close(pending)
            # every bar but the last closes a step (the next bar is later)
            closes = [bar.close for bar in run]
            curve.close_all(times[:-1].tolist(), closes[:-1])
            portfolio.marks[instrument] = closes[-1]
            columns = bars_by_symbol.get(instrument)
            if columns is None:
                columns = bars_by_symbol[instrument] = ([], [], [])
            columns[0].extend(times.tolist())
            columns[1].extend(map(_HIGH, run))
            columns[2].extend(map(_LOW, run))
            interval = run[-1].interval
            pending = run[-1].ts
            return True

        for seqs, events in self.reader.batches():
            start = 0
            for at in (*(i for i, event in enumerate(events) if type(event) is not Bar), len(events)):
                if at - start > 1:
                    run: list[Bar] = events[start:at]  # type: ignore[assignment]
                    if not apply_bar_run(run):
                        for bar in run:
                            apply_bar(bar)
                elif at > start:
                    apply_bar(events[start])  # type: ignore[arg-type]
                start = at + 1
                if at == len(events):
                    break
                seq, event = seqs[at], events[at]
                if pending is not None and event.ts > pending:
                    curve.close(pending)
                    pending = None
                cls = type(event)
                if cls is OrderFilled:
                    fill: OrderFilled = event  # type: ignore[assignment]
                    curve.changing()
                    change = portfolio.apply_fill(fill)
                    fills.append(_fill_row(seq, fill, change.realized))
                    _order_fill(orders, fill)
                elif cls is InstrumentDefinition:
                    curve.changing()
                    portfolio.add_instrument(event)  # type: ignore[arg-type]
                elif cls is FundingApplied:
                    curve.changing()
                    portfolio.apply_funding(event)  # type: ignore[arg-type]
                    funding.append({"seq": seq, **msgspec.structs.asdict(event)})
                elif cls is SubmitOrder:
                    _order_submit(orders, seq, event)  # type: ignore[arg-type]
                elif cls is PositionChanged:
                    positions.append({"seq": seq, **msgspec.structs.asdict(event)})
                elif cls in (OrderAccepted, OrderTriggered, OrderCanceled, OrderExpired, OrderRejected, RiskRejected):
                    _order_status(orders, seq, event)
                    if cls in (OrderRejected, RiskRejected):
                        rejections.append(
                            {
                                "seq": seq,
                                "ts": event.ts,
                                "source": "risk" if cls is RiskRejected else "venue",
                                **_reason(event),
                            }
                        )
        if pending is not None:
            curve.close(pending)
        equity = curve.frame()
        if len(equity):
            peak = equity["equity"].cummax()
            equity["drawdown"] = equity["equity"] / peak - 1.0
        else:
            equity["drawdown"] = pd.Series(dtype=float)
        fills_df = pd.DataFrame(fills)
        return Projections(
            header,
            config,
            equity,
            _orders_frame(orders),
            fills_df,
            round_trips(
                fills,
                {k: point_value(v) for k, v in portfolio.instruments.items()},
                {
                    k: (np.array(v[0], dtype=np.int64), np.array(v[1]), np.array(v[2]))
                    for k, v in bars_by_symbol.items()
                },
            ),
            pd.DataFrame(positions),
            pd.DataFrame(
                rejections, columns=["seq", "ts", "source", "strategy", "order_id", "instrument", "reason", "detail"]
            ),
            pd.DataFrame(funding),
            portfolio.initial_cash,
            interval,
        )


_TS = attrgetter("ts")
_HIGH = attrgetter("high")
_LOW = attrgetter("low")
_LAST = attrgetter("last")
_INSTRUMENT = attrgetter("instrument")


class _EquityCurve:
    """The account at the close of each time step, as the run's accounting
    (:class:`core.portfolio.Portfolio`) values it.

    Steps are valued lazily: while only one instrument's mark moves (the
    usual stretch between two fills), closed steps are kept as (time, mark)
    and valued together when anything else is about to change, by running
    the accounting once with that mark as an array. Its arithmetic is
    elementwise, so each value is the float a step-by-step valuation gives.
    Invariant: since the first kept step, the portfolio changed only in the
    mark of ``_moving``, whose value at each kept step is in ``_marks``.
    """

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.times: list[int] = []
        self.columns: dict[str, list[float]] = {"equity": [], "cash": [], "exposure": [], "in_market": []}
        self._moving: str | None = None
        self._times: list[int] = []
        self._marks: list[float] = []

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
        if self._times:
            self._value_kept()
        self._moving = None

    def close(self, ts: int) -> None:
        """The step at ``ts`` closes with the portfolio as it is."""
        if self._moving is not None:
            self._times.append(ts)
            self._marks.append(self.portfolio.marks[self._moving])
            return
        portfolio = self.portfolio
        self.times.append(ts)
        self._append(1, portfolio.equity(), portfolio.cash(), portfolio.gross_exposure())

    def close_all(self, times: list[int], marks: list[float]) -> None:
        """Steps at ``times`` close with the moving instrument's mark at
        ``marks`` (after :meth:`moving` returned True)."""
        self._times.extend(times)
        self._marks.extend(marks)

    def frame(self) -> pd.DataFrame:
        self.changing()
        equity = pd.DataFrame(self.columns, index=_ts(self.times))
        equity.index.name = "time"
        return equity

    def _value_kept(self) -> None:
        portfolio = self.portfolio
        instrument = self._moving
        assert instrument is not None
        current = portfolio.marks[instrument]
        portfolio.marks[instrument] = np.array(self._marks)  # type: ignore[assignment]
        try:
            equity, gross = portfolio.equity(), portfolio.gross_exposure()
        finally:
            portfolio.marks[instrument] = current
        self.times.extend(self._times)
        self._append(len(self._times), equity, portfolio.cash(), gross)
        self._times.clear()
        self._marks.clear()

    def _append(self, n: int, equity: Any, cash: float, gross: Any) -> None:
        """``n`` steps; ``equity`` and ``gross`` a float or ``n`` of them."""
        exposed = 1.0 if any(True for _ in self.portfolio.open_positions()) else 0.0
        columns = self.columns
        for name, value in (("equity", equity), ("cash", cash), ("exposure", gross), ("in_market", exposed)):
            columns[name].extend(value.tolist() if type(value) is np.ndarray else [value] * n)


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
        "exec_time": pd.Timestamp(fill.exec_ts, unit="ns", tz="UTC"),
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
        "submitted": pd.Timestamp(cmd.ts, unit="ns", tz="UTC"),
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
    return pd.DataFrame(list(orders.values()), columns=columns)


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


BarArrays = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Per instrument: bar close times (ns), highs, lows."""


def round_trips(
    fills: list[dict[str, Any]], point_values: dict[str, float], bars: dict[str, BarArrays]
) -> pd.DataFrame:
    """Round-trip trades per (strategy, instrument): from flat to flat (a
    flip closes one trip and opens the next). ``gross_pnl`` is the realized
    PnL the accounting booked on the trip's closing fills (so point values and
    inverse contracts are right); ``pnl`` is net of the trip's fees;
    ``mae``/``mfe`` are the worst/best unrealized PnL (money, linear
    approximation for inverse) seen on bar extremes while the trip was open."""
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
        trips.append(_close_trip(trip, fill["exec_time"], bars, point_values))
        del state[key]
        if abs(signed) > abs(qty) + 1e-12 * abs(qty):
            opened = _open_trip(fill, signed + qty)
            opened["fees"] = fill["fee"] - fee_share
            state[key] = opened
    trips.extend(_close_trip(trip, None, bars, point_values) for trip in state.values())
    return pd.DataFrame(trips, columns=TRADE_COLUMNS)


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


def _close_trip(
    trip: dict[str, Any], exit_time: Any, bars: dict[str, BarArrays], point_values: dict[str, float]
) -> dict[str, Any]:
    exit_price = trip["exit_value"] / trip["exit_qty"] if trip["exit_qty"] else np.nan
    start = trip["entry_time"].value
    end = exit_time.value if exit_time is not None else None
    series = bars.get(trip["instrument"])
    direction = 1.0 if trip["side"] == "long" else -1.0
    size = trip["size"] * point_values.get(trip["instrument"], 1.0)
    held = 0
    mfe = mae = 0.0
    if series is not None:
        times, highs, lows = series
        lo = int(np.searchsorted(times, start, side="right"))
        hi = int(np.searchsorted(times, end, side="right")) if end is not None else len(times)
        held = max(0, hi - lo)
        if held:
            top = float(highs[lo:hi].max())
            bottom = float(lows[lo:hi].min())
            best, worst = (top, bottom) if direction > 0 else (bottom, top)
            mfe = direction * (best - trip["entry_price"]) * size
            mae = direction * (worst - trip["entry_price"]) * size
    net = trip["gross"] - trip["fees"]
    notional = trip["entry_price"] * size
    return {
        "strategy": trip["strategy"],
        "instrument": trip["instrument"],
        "side": trip["side"],
        "size": trip["size"],
        "entry_time": trip["entry_time"],
        "exit_time": exit_time,
        "entry_price": trip["entry_price"],
        "exit_price": exit_price,
        "pnl": net,
        "gross_pnl": trip["gross"],
        "fees": trip["fees"],
        "return_pct": net / notional if notional else np.nan,
        "bars": held,
        "duration": (exit_time - trip["entry_time"]) if exit_time is not None else pd.NaT,
        "mae": min(mae, 0.0),
        "mfe": max(mfe, 0.0),
        "open": exit_time is None,
    }
