"""The simulated venue for order books (paper trading, book replays).

Orders are matched against the journaled level-2 book (``BookSnapshot`` and
``BookDelta`` events, kept in :class:`tidemark.core.execution.book.OrderBook`) and trade prints.
Rules, all deterministic functions of the journaled inputs:

* Latency: an order sent at bus time T reaches the book at ``T + latency``;
  it is accepted and matched at the first book or trade event of its
  instrument stamped at or after that (with no latency: at once). Commands
  are checked (shape, risk) when sent; post-only crossing is judged on arrival.
* Taker matching walks the levels (VWAP): market orders through the whole
  visible book, limits through the levels at or better than their price.
  Depth consumed by one order is not offered again until the next book
  update. A market order that exhausts the visible book is partially filled
  and the rest canceled (``insufficient_depth``). IOC cancels what it cannot
  fill at once; FOK fills all or nothing.
* Resting limits fill as maker at their price when the opposite side of the
  book reaches them (for the size there) or a trade prints strictly through
  them (for the print's size); a print *at* the price does not fill, since
  the queue position is unknown.
* Stops trigger on a trade print at or through the trigger, then match as a
  market (stop) or limit (stop-limit) order.
* No fill is ever taken from a stale book: while an instrument's book is
  stale (sequence gap, crossed, feed silence reported by a ``FeedGap``, or no
  snapshot yet), its orders wait and nothing matches; the next snapshot
  resynchronises it.

Each fill records its provenance: ``source_seq`` (the bus seq of the book
update whose state was walked, or of the trade print that filled a resting
order), ``levels`` consumed, ``latency`` (ns from sending to
matching) and the fee rate in ``fee_model`` (``exchange@0.0005``);
``slippage`` is the VWAP's distance from the touch.
"""

from __future__ import annotations

from collections.abc import Iterable

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine
from tidemark.core.bus import Handler
from tidemark.core.events import (
    BUY,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Event,
    FeedGap,
    InstrumentDefinition,
    ModifyOrder,
    OrderAccepted,
    OrderRejected,
    RiskRejected,
    SubmitBracketOrder,
    SubmitOrder,
    Trade,
    TradingHalted,
)
from tidemark.core.execution.book import OrderBook
from tidemark.core.execution.orders import (
    LIMIT,
    MARKET,
    MARKET_ON_CLOSE,
    MARKET_ON_OPEN,
    REJECTED,
    STOP,
    STOP_LIMIT,
    Order,
    by_submission,
)
from tidemark.core.execution.venue import ExecutionConfig, SimulatedVenue


class BookVenue(SimulatedVenue):
    """Accepts commands, matches them on books and prints, books fills."""

    name = "venue"

    def __init__(
        self,
        portfolio: Portfolio,
        risk: RiskEngine,
        config: ExecutionConfig,
        *,
        latency_ns: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(portfolio, risk, config, seed=seed)
        if latency_ns < 0:
            raise ValueError("latency must be >= 0")
        self.latency_ns = latency_ns
        self.books: dict[str, OrderBook] = {}
        self.last_trade: dict[str, float] = {}
        self.pending: dict[str, list[tuple[int, int, Order]]] = {}
        self._taken: dict[str, dict[float, float]] = {}
        self._book_seq: dict[str, int] = {}

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return (
            (InstrumentDefinition, self.on_instrument, False),
            (SubmitOrder, self.on_submit, False),
            (SubmitBracketOrder, self.on_submit, False),
            (CancelOrder, self.on_cancel, False),
            (ModifyOrder, self.on_modify, False),
            (BookSnapshot, self.on_snapshot, False),
            (BookDelta, self.on_delta, False),
            (Trade, self.on_trade, False),
            (FeedGap, self.on_gap, False),
            (TradingHalted, self.on_halt, False),
        )

    def _refusal(self, cmd: SubmitOrder) -> str | None:
        """As on bars, and an order timed to a bar's open or close needs bars."""
        if cmd.order_type in (MARKET_ON_CLOSE, MARKET_ON_OPEN) or cmd.tif == "OPG":
            return "needs_bars"
        return super()._refusal(cmd)

    def working_orders(self) -> list[Order]:
        """Working orders and those still on their way to the book."""
        orders = super().working_orders()
        orders.extend(order for queue in self.pending.values() for _, _, order in queue if order.active)
        orders.sort(key=by_submission)
        return orders

    def _instrument_orders(self, instrument: str) -> list[Order]:
        """The working and in-flight (latency) orders of ``instrument``."""
        orders = [order for order in self.working.get(instrument, ()) if order.active]
        orders.extend(order for _, _, order in self.pending.get(instrument, ()) if order.active)
        return orders

    def book(self, instrument: str) -> OrderBook:
        book = self.books.get(instrument)
        if book is None:
            book = self.books[instrument] = OrderBook(instrument)
        return book

    # -- commands -----------------------------------------------------------------

    def on_submit(self, cmd: SubmitOrder) -> None:
        bus = self.bus
        ts = bus.now()
        reason = self._refusal(cmd)
        if reason is not None:
            bus.publish(OrderRejected(ts, cmd.strategy, cmd.order_id, cmd.instrument, reason))
            return
        price = cmd.price or cmd.trigger_price or self._reference(cmd.instrument)
        risk = self.risk
        refusal = risk.check(
            cmd,
            price,
            self.working_orders() if risk.limits.pending_risk else (),
            self._instrument_orders(cmd.instrument) if risk.check_reversals else (),
        )
        if refusal is not None:
            bus.publish(RiskRejected(ts, cmd.strategy, cmd.order_id, cmd.instrument, refusal[0], refusal[1]))
            return
        refusal = self._unaffordable(cmd, price)
        if refusal is not None:
            bus.publish(OrderRejected(ts, cmd.strategy, cmd.order_id, cmd.instrument, refusal[0], refusal[1]))
            return
        self._n_orders += 1
        order = Order(cmd, self._n_orders, cmd.quantity)
        self.orders[cmd.order_id] = order
        arrive = ts + self.latency_ns
        self.pending.setdefault(cmd.instrument, []).append((arrive, ts, order))
        if not self.latency_ns:
            self._arrivals(cmd.instrument, ts)

    def on_cancel(self, cmd: CancelOrder) -> None:
        order = self.orders.get(cmd.order_id)
        if order is not None and order.active and self._is_pending(order):
            self._drop_pending(order)
            self._cancel(order, "user")
            return
        super().on_cancel(cmd)

    def _is_pending(self, order: Order) -> bool:
        return any(o is order for _, _, o in self.pending.get(order.cmd.instrument, ()))

    def _drop_pending(self, order: Order) -> None:
        queue = self.pending[order.cmd.instrument]
        queue[:] = [item for item in queue if item[2] is not order]

    def cancel_all(self, reason: str = "run_end") -> None:
        for instrument in list(self.pending):
            for _, _, order in self.pending.pop(instrument):
                if order.active:
                    self._cancel(order, reason)
        super().cancel_all(reason)

    # -- market data ----------------------------------------------------------------

    def on_snapshot(self, event: BookSnapshot) -> None:
        self.book(event.instrument).apply_snapshot(event)
        self._book_moved(event.instrument, event.ts)

    def on_delta(self, event: BookDelta) -> None:
        book = self.book(event.instrument)
        if book.apply_delta(event) is None:
            self._book_moved(event.instrument, event.ts)

    def on_gap(self, event: FeedGap) -> None:
        """A feed fault the adapter saw (gap, crossed, silence): the book is
        stale until its next snapshot."""
        if not event.resynced and event.reason.startswith("book:"):
            book = self.book(event.instrument)
            if book.stale_reason is None:
                book.stale_reason = event.reason

    def on_trade(self, trade: Trade) -> None:
        instrument = trade.instrument
        self.last_trade[instrument] = trade.price
        book = self.books.get(instrument)
        if book is None or book.stale:
            return
        self._arrivals(instrument, trade.ts)
        for order in list(self.working.get(instrument, ())):
            if not order.active:
                continue
            cmd = order.cmd
            kind = cmd.order_type
            buy = cmd.side == BUY
            if kind in (STOP, STOP_LIMIT) and not order.triggered:
                if (trade.price >= cmd.trigger_price) if buy else (trade.price <= cmd.trigger_price):
                    self._trigger(order)
                    self._take(order, trade.ts)
                continue
            if kind == LIMIT or (kind == STOP_LIMIT and order.triggered):
                through = (trade.price < cmd.price) if buy else (trade.price > cmd.price)
                if through and trade.side != cmd.side:
                    self._maker_fill(order, min(order.leaves, trade.size), trade.ts)

    def _book_moved(self, instrument: str, ts: int) -> None:
        self._taken.pop(instrument, None)
        self._book_seq[instrument] = self.bus.current
        book = self.books[instrument]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            self.portfolio.marks[instrument] = (bid + ask) / 2.0
        self._arrivals(instrument, ts)
        orders = self.working.get(instrument)
        if not orders:
            return
        for order in list(orders):
            if not order.active:
                continue
            cmd = order.cmd
            if cmd.tif == "GTD" and ts >= cmd.expire_ts:
                self._expire(order)
                continue
            if cmd.order_type == LIMIT or (cmd.order_type == STOP_LIMIT and order.triggered):
                available = self._available(instrument, cmd.side, cmd.price)
                if available > 0.0:
                    self._maker_fill(order, min(order.leaves, available), ts, consume=True)

    # -- arrival and matching -----------------------------------------------------------

    def _arrivals(self, instrument: str, ts: int) -> None:
        queue = self.pending.get(instrument)
        if not queue:
            return
        book = self.books.get(instrument)
        if book is None or book.stale:
            return
        due = [item for item in queue if item[0] <= ts]
        if not due:
            return
        queue[:] = [item for item in queue if item[0] > ts]
        for _, sent, order in due:
            if order.active:
                self._arrive(order, sent, ts)

    def _arrive(self, order: Order, sent: int, ts: int) -> None:
        cmd = order.cmd
        bus = self.bus
        book = self.books[cmd.instrument]
        if cmd.post_only:
            touch = book.best_ask() if cmd.side == BUY else book.best_bid()
            if touch is not None and ((cmd.price >= touch) if cmd.side == BUY else (cmd.price <= touch)):
                order.state = REJECTED
                bus.publish(
                    OrderRejected(bus.now(), cmd.strategy, cmd.order_id, cmd.instrument, "post_only_would_cross")
                )
                return
        bus.publish(OrderAccepted(bus.now(), cmd.strategy, cmd.order_id, cmd.instrument))
        order.wait = 0
        order.sent_ts = sent
        if cmd.parent_id:
            self._link_child(order)
        if cmd.order_type in (MARKET, LIMIT):
            self._take(order, ts)
            return
        self._add_working(order)

    def _take(self, order: Order, ts: int) -> None:
        """Match ``order`` as a taker now, then apply its time in force."""
        cmd = order.cmd
        limit = None if cmd.order_type in (MARKET, STOP) else cmd.price
        levels = self._levels(cmd.instrument, cmd.side, limit)
        available = sum(size for _, size in levels)
        if cmd.tif == "FOK" and available + 1e-12 < order.leaves:
            self._cancel(order, "fok")
            return
        wanted = min(order.leaves, available)
        if wanted > 0.0:
            remaining = wanted
            cost = 0.0
            used = 0
            taken = self._taken.setdefault(cmd.instrument, {})
            for price, size in levels:
                take = min(size, remaining)
                cost += take * price
                taken[price] = taken.get(price, 0.0) + take
                remaining -= take
                used += 1
                if remaining <= 1e-12 * wanted:
                    break
            vwap = cost / wanted
            touch = levels[0][0]
            self._execute(
                order,
                wanted,
                vwap,
                ts,
                maker=False,
                slippage=abs(vwap - touch),
                slippage_model="book",
                source_seq=self._book_seq.get(cmd.instrument, 0),
                levels=used,
                latency=ts - order.sent_ts,
                fee_label=True,
            )
        if not order.active:
            return
        if cmd.order_type in (MARKET, STOP):
            self._cancel(order, "insufficient_depth")
        elif cmd.tif in ("IOC", "FOK"):
            self._cancel(order, cmd.tif.lower())
        elif order not in self.working.get(cmd.instrument, ()):
            order.fresh = False
            self._add_working(order)

    def _maker_fill(self, order: Order, quantity: float, ts: int, *, consume: bool = False) -> None:
        if quantity <= 0.0:
            return
        if consume:
            taken = self._taken.setdefault(order.cmd.instrument, {})
            taken[order.cmd.price] = taken.get(order.cmd.price, 0.0) + quantity
        self._execute(
            order,
            quantity,
            order.cmd.price,
            ts,
            maker=True,
            source_seq=self.bus.current,
            levels=1,
            latency=ts - order.sent_ts,
            fee_label=True,
        )

    def _levels(self, instrument: str, side: str, limit: float | None) -> list[tuple[float, float]]:
        """Opposite-side levels a ``side`` taker may take (best first), net
        of depth already taken at this book state."""
        book = self.books[instrument]
        taken = self._taken.get(instrument, {})
        out = []
        for price, size in book.levels("asks" if side == BUY else "bids"):
            if limit is not None and ((price > limit) if side == BUY else (price < limit)):
                break
            size -= taken.get(price, 0.0)
            if size > 1e-12:
                out.append((price, size))
        return out

    def _available(self, instrument: str, side: str, limit: float) -> float:
        return sum(size for _, size in self._levels(instrument, side, limit))

    def _reference(self, instrument: str) -> float:
        book = self.books.get(instrument)
        if book is not None and not book.stale:
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None:
                return (bid + ask) / 2.0
        return self.last_trade.get(instrument) or self.portfolio.marks.get(instrument, 0.0)
